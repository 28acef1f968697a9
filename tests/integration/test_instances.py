"""Several gateway instances on one database: work is claimed, never done twice; a dead
instance's claims are taken over; SQLite takes one instance; intake never waits on a signature."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.adapters.persistence.postgres import PostgresStorage
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.bootstrap import build_gateway
from gateway.config import Settings
from gateway.domain.states import TxState
from gateway.service.batcher import GROUP_CLAIM, BatchService
from gateway.service.overview import overview
from gateway.service.ports import Storage
from tests.doubles import Msg
from tests.unit.test_intake import order

# slow: several instances on PostgreSQL.
pytestmark = pytest.mark.slow

GATEWAY = str(Path(sys.executable).parent / "gateway")


def _orders(count: int, batches: int) -> list[Msg]:
    """`count` valid orders spread over `batches` batch references (one group each)."""
    return [
        Msg(
            json.dumps(
                order(order_id=f"INST-{n:06d}", batch_ref=f"B-{n % batches}"), ensure_ascii=False
            ).encode()
        )
        for n in range(count)
    ]


def _file_of_each_order(storage: Storage) -> dict[str, str | None]:
    return {o.order_id: o.msg_id for o in storage.queries.orders_in_state()}


def test_two_instances_on_postgres_never_build_one_order_into_two_files(
    settings: Settings, postgres_url: str
) -> None:
    """Two batchers on one PostgreSQL, ticking at once, put every order in exactly one file,
    and each file holds only its own orders."""
    settings = replace(settings, batch_quiet_seconds=0.0)
    settings = replace(
        settings,
        partners={
            name: replace(p, messages=replace(p.messages, max_txs_per_file=40))
            for name, p in settings.partners.items()
        },
    )
    first, second = PostgresStorage(postgres_url), PostgresStorage(postgres_url)
    try:
        one = build_gateway(settings, storage=first)
        two = build_gateway(settings, storage=second)
        assert one.owner != two.owner
        one.intake.handle(_orders(400, batches=4))
        built = Counter[str]()

        def batch(name: str, service: BatchService) -> None:
            for _ in range(30):
                built[name] += service.tick()

        threads = [
            threading.Thread(target=batch, args=(name, g.batcher))
            for name, g in (("one", one), ("two", two))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        files = _file_of_each_order(first)
        assert len(files) == 400
        assert all(msg_id is not None for msg_id in files.values())
        per_file = Counter(files.values())
        # 4 groups of 100 orders, 40 per file: 40 + 40 + 20 each, whoever built them.
        assert sorted(per_file.values()) == sorted([40, 40, 20] * 4)
        assert sum(built.values()) == len(per_file) == 12
        assert first.queries.files_by_state() == {"built": 12}
        assert first.queries.orders_by_state() == {"batched": 400}
    finally:
        first.close()
        second.close()


def test_a_build_longer_than_its_claim_keeps_its_group(
    settings: Settings, postgres_url: str
) -> None:
    """An instance whose file takes longer to build than its claim lasts (a starved machine, a
    slow signing token) renews the claim meanwhile: the other instance, ticking all along,
    never takes the group over, and the file commits."""
    settings = replace(settings, batch_quiet_seconds=0.0, claim_seconds=0.6)
    first, second = PostgresStorage(postgres_url), PostgresStorage(postgres_url)
    try:
        slow = build_gateway(settings, storage=first)
        other = build_gateway(settings, storage=second)
        slow.intake.handle(_orders(5, batches=1))
        building, built = threading.Event(), threading.Event()
        build = slow.batcher._build

        def slow_build(*args, **kwargs):  # type: ignore[no-untyped-def]
            building.set()
            time.sleep(2.0)  # more than three claims' length
            return build(*args, **kwargs)

        slow.batcher._build = slow_build  # type: ignore[method-assign]
        files: list[int] = []
        cutting = threading.Thread(target=lambda: (files.append(slow.batcher.tick()), built.set()))
        cutting.start()
        assert building.wait(30)
        taken_over = 0
        while not built.wait(0.1):
            taken_over += other.batcher.tick()
        cutting.join(30)
        assert (files, taken_over) == ([1], 0)
        [msg_id] = set(_file_of_each_order(first).values())
        assert msg_id is not None
        assert first.queries.orders_by_state() == {"batched": 5}
    finally:
        first.close()
        second.close()


def test_a_dead_instance_claim_holds_its_group_until_it_expires(settings: Settings) -> None:
    """A group claimed by an instance that died is left alone until the claim expires, then
    another instance builds it."""
    settings = replace(settings, batch_quiet_seconds=0.0, claim_seconds=30.0)
    storage = MemoryStorage()
    gateway = build_gateway(settings, storage=storage)
    gateway.intake.handle(_orders(5, batches=1))
    now = [datetime.now(UTC) + timedelta(seconds=1)]  # intake stamped the orders just now
    [group] = {o.group_key for o in storage.queries.orders_in_state()}
    with storage.unit_of_work() as uow:
        assert uow.claims.claim(GROUP_CLAIM, group, "dead", now[0], now[0] + timedelta(seconds=30))
    survivor = BatchService(
        storage, settings, gateway.batcher._keys, clock=lambda: now[0], owner="survivor"
    )
    assert survivor.tick() == 0
    assert storage.queries.orders_by_state() == {"received": 5}
    [held] = overview(storage.queries, settings, now[0])["claims"]
    assert (held["kind"], held["owner"], held["expired"]) == (GROUP_CLAIM, "dead", False)
    now[0] += timedelta(seconds=31)
    [held] = overview(storage.queries, settings, now[0])["claims"]
    assert held["expired"] is True
    assert survivor.tick() == 1
    assert storage.queries.orders_by_state() == {"batched": 5}


def test_intake_commits_while_a_file_is_signed(settings: Settings) -> None:
    """On SQLite (one writer), an order is taken in while the batcher builds and signs a file:
    the file is built between the claim's commit and the file's, outside any transaction."""
    settings = replace(settings, batch_quiet_seconds=0.0)
    storage = SqliteStorage(settings.db_file)
    gateway = build_gateway(settings, storage=storage)
    gateway.intake.handle(_orders(3, batches=1))
    taken_in = threading.Event()
    build = gateway.batcher._build
    waited: list[bool] = []

    def slow_build(*args, **kwargs):  # type: ignore[no-untyped-def]
        # A write transaction held here would block intake below: the wait would time out.
        late = order(order_id="INST-LATE", batch_ref="B-other")
        intake = threading.Thread(
            target=lambda: (
                gateway.intake.handle([Msg(json.dumps(late, ensure_ascii=False).encode())]),
                taken_in.set(),
            )
        )
        intake.start()
        waited.append(taken_in.wait(10))
        intake.join(40)
        return build(*args, **kwargs)

    gateway.batcher._build = slow_build  # type: ignore[method-assign]
    assert gateway.batcher.tick() >= 1
    assert waited and waited[0], "intake waited for the file being signed"
    late = storage.queries.order("INST-LATE")
    assert late is not None
    assert late.state in (TxState.RECEIVED, TxState.BATCHED)
    storage.close()


def test_a_second_instance_on_one_sqlite_file_is_refused_with_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    """`gateway run` on a SQLite file another instance holds stops at once, naming why."""
    holder = SqliteStorage(settings.db_file)
    holder.claim_instance()
    keys = tmp_path / "keys"
    env = {
        **os.environ,
        "GATEWAY_DB_PATH": str(settings.db_file),
        "GATEWAY_DB_URL": "",
        "GATEWAY_KEYS_DIR": str(keys),
        "GATEWAY_METRICS_PORT": "0",
    }
    result = subprocess.run(
        [GATEWAY, "run"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    holder.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "another gateway instance" in line
    assert "SQLite takes one instance" in line
    assert f"pid {os.getpid()}" in line
