"""PostgreSQL for tests: a fresh schema per test in the database at GATEWAY_TEST_POSTGRES_URL

Without that variable the PostgreSQL tests are skipped with the reason, unless
GATEWAY_REQUIRE_POSTGRES=1 (CI sets it): then its absence fails the test, never a silent skip.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ENV = "GATEWAY_TEST_POSTGRES_URL"
REQUIRE_ENV = "GATEWAY_REQUIRE_POSTGRES"
EXAMPLE_URL = "postgresql://gateway@127.0.0.1:55432/gateway_test"


def postgres_required() -> bool:
    """True when a missing PostgreSQL must fail the run (CI) rather than skip."""
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def redacted(url: str) -> str:
    """The URL without its password, fit for a message."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def with_search_path(url: str, schema: str) -> str:
    """The URL with libpq's `options=-csearch_path=<schema>`, keeping its other parameters."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    options = [value for key, value in query if key == "options" and value]
    rest = [(key, value) for key, value in query if key != "options"]
    option = " ".join([*options, f"-csearch_path={schema}"])
    # libpq decodes %XX only (a `+` stays a plus), so spaces must travel as %20.
    encoded = urllib.parse.urlencode([*rest, ("options", option)], quote_via=urllib.parse.quote)
    return urllib.parse.urlunsplit(parts._replace(query=encoded))


def unavailable(message: str) -> None:
    """Skip the test, or fail it when PostgreSQL is required."""
    if postgres_required():
        pytest.fail(f"{REQUIRE_ENV} is set but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_base_url() -> str:
    """The database the tests may create schemas in (skip, or fail on CI, when unset)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        unavailable(
            f"{POSTGRES_ENV} is not set: PostgreSQL storage tests need a database they may"
            f" create schemas in, e.g. {EXAMPLE_URL}"
        )
    return url


@pytest.fixture
def postgres_url(postgres_base_url: str) -> Iterator[str]:
    """A URL whose search_path is a fresh, empty schema, dropped (CASCADE) after the test.

    Close every connection to it before the test ends: fixtures that build storage on it
    depend on this one, so they are torn down first.
    """
    try:
        import psycopg  # noqa: PLC0415 - only PostgreSQL tests need the driver
        from psycopg import sql  # noqa: PLC0415
    except ImportError as exc:
        unavailable(f"psycopg is not installed ({exc}): pip install 'psycopg[binary]'")
        raise  # unreachable: unavailable() skips or fails
    schema = f"t_{uuid.uuid4().hex}"
    try:
        admin = psycopg.connect(postgres_base_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unavailable(f"no PostgreSQL answers at {redacted(postgres_base_url)}: {exc}")
        raise  # unreachable
    with admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield with_search_path(postgres_base_url, schema)
        finally:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )
