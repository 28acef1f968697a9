"""A PostgreSQL URL the gateway cannot use: a mistake in the URL is refused at once, naming it;
a server that does not answer is named with libpq's reason, not only "the pool waited"."""

from __future__ import annotations

import pytest

from gateway.adapters.persistence.postgres import PostgresStorage
from gateway.errors import ConfigError, TransientError


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://gw@127.0.0.1:notaport/x", "port 'notaport' is not a number"),
        ("postgresql://gw@127.0.0.1/x?bogus=1", 'invalid URI query parameter: "bogus"'),
    ],
)
def test_a_url_libpq_cannot_read_is_refused_at_once(url: str, named: str) -> None:
    with pytest.raises(ConfigError) as refused:
        PostgresStorage(url, connect_timeout=1)
    assert str(refused.value) == f"database URL {url}: {named}"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://gw:secret@127.0.0.1:1/x", "port 1 failed: Connection refused"),
        ("postgresql://gw:secret@127.0.0.1/x?sslmode=bogus", 'invalid sslmode value: "bogus"'),
    ],
)
def test_a_server_that_cannot_be_reached_is_named_with_the_reason(url: str, reason: str) -> None:
    """libpq's reason in the error, the password not."""
    with pytest.raises(TransientError) as refused:
        PostgresStorage(url, connect_timeout=1)
    message = str(refused.value)
    assert message.startswith("database unavailable: postgresql://gw:***@127.0.0.1")
    assert reason in message
    assert "secret" not in message


def test_a_pool_busy_to_its_last_connection_says_so(postgres_url: str) -> None:
    """Every connection the pool may open held by other work: the wait is said to be the pool's
    (busy), without a connection opened beside the pool to ask the server."""
    storage = PostgresStorage(postgres_url, pool_size=1, connect_timeout=1)
    try:
        # The pool's one connection held while a second is asked for.
        with storage.connection(), pytest.raises(TransientError) as waited:
            _one_transaction(storage)
        assert str(waited.value).startswith(
            "database unavailable: all 1 connections of the pool in use for 1 s:"
        )
    finally:
        storage.close()


def _one_transaction(storage: PostgresStorage) -> None:
    with storage.connection():
        pass
