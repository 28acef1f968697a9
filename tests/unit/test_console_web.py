"""The console's web app on the in-memory storage: sessions, CSRF, throttling, roles, and the
actions an operator takes, each in the audit trail."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from gateway.adapters.persistence.memory import MemoryStorage
from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.quarantine_folder import QuarantineFolder
from gateway.adapters.web.app import Console, create_app
from gateway.adapters.web.auth import Sessions, Throttle
from gateway.adapters.web.passwords import Argon2Hasher
from gateway.bootstrap import console_actions
from gateway.config import Settings
from gateway.domain.audit import verify
from gateway.domain.states import TxState
from gateway.service.channels import TO_BANK_EXCHANGE
from gateway.service.ports import (
    BankAnswer,
    NewOrder,
    OutboundFile,
    OutboxMessage,
    StatementEntryRecord,
    StatementRecord,
)
from gateway.service.users import add_user, set_disabled

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
DAY = date(2026, 11, 2)
PASSWORD = "mật-khẩu-đủ-dài-1"
FILE_BYTES = b"<?xml version='1.0'?><Document>exact \xc4\x91 bytes</Document>"


class Clock:
    """A monotonic clock the throttle reads, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def payload(n: int, name: str, account: str, amount: str) -> str:
    order = {
        "order_id": f"ORD-{n}",
        "creditor": {"name": name, "account": {"number": account, "scheme": "BBAN"}},
        "debtor": {"name": "Kho bạc Nhà nước Phú Lương", "account": {"number": "3761"}},
        "amount": amount,
        "remittance": "Trợ cấp xã hội tháng 11",
    }
    return json.dumps(order, ensure_ascii=False)


@pytest.fixture
def storage() -> MemoryStorage:
    """Two orders (one settled, in a sent file), a parked outbox message, two users."""
    store = MemoryStorage()
    hasher = Argon2Hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    with store.unit_of_work() as uow:
        for n, name, account, amount in (
            (1, "Nguyễn Thị Hường", "101010", "2752515310"),
            (2, "Trần Văn Đức", "202020", "606000"),
        ):
            text = payload(n, name, account, amount)
            order = NewOrder(
                f"ORD-{n}", f"h{n}", text, "agribank", "g", "social", Decimal(amount), "VND"
            )
            uow.orders.add(order, T0)
        uow.files.add(
            OutboundFile("MSG-1", "agribank", "pain.001.001.09", 1, Decimal("2752515310"), "x"), T0
        )
        uow.orders.mark_batched([("ORD-1", "PMT-1")], "MSG-1", T0)
        uow.outbox.enqueue(OutboxMessage("MSG-1", TO_BANK_EXCHANGE, "agribank", FILE_BYTES, {}), T0)
        uow.outbox.enqueue(OutboxMessage("P-parked", "treasury.ledger", "posting.x", b"{}", {}), T0)
    with store.unit_of_work() as uow:
        claimed = uow.outbox.claim("t", 10, T0, T0 + timedelta(minutes=1))
        for pending in claimed:
            if pending.message.message_id == "P-parked":
                uow.outbox.park(pending.row_id, "NO_ROUTE: nobody bound", T0)
        uow.outbox.mark_sent([p.row_id for p in claimed if p.message.message_id == "MSG-1"], T0)
        uow.files.sent("MSG-1", T0)
    with store.unit_of_work() as uow:
        current = uow.orders.get("ORD-1")
        assert current is not None
        answer = BankAnswer("ACSC", bank_ref="B1", value_date=DAY)
        uow.orders.move(current, TxState.SETTLED, answer, T0)
        opening = Decimal("10000000000")
        kept = StatementRecord(
            "agribank", "STMT-1", "C53-1", "3761", DAY, "VND", opening,
            opening - Decimal("2752515310"), [],
        )  # fmt: skip
        uow.evidence.add_statement(kept, T0)
        line = StatementEntryRecord(
            "agribank", "B1", "STMT-1", "DBIT", "BOOK", Decimal("2752515310"), "VND", DAY,
            "ORD-1", None,
        )  # fmt: skip
        uow.evidence.add_statement_entry(line)
    for name, role in (("lan", "operator"), ("an", "viewer")):
        add_user(store, hasher, name=name, role=role, password=PASSWORD, actor="root", via="cli")
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_client(
    settings: Settings, storage: MemoryStorage, clock: Clock, *, secure: bool = False
) -> TestClient:
    deps = Console(
        settings=settings,
        storage=storage,
        actions=console_actions(settings, storage, broker=False),
        hasher=Argon2Hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)),
        sessions=Sessions(b"k" * 32, secure=secure),
        throttle=Throttle(limit=3, address_limit=5, window=60, clock=clock),
        clock=lambda: T0 + timedelta(minutes=5),
    )
    return TestClient(
        create_app(deps), base_url="https://testserver" if secure else "http://testserver"
    )


@pytest.fixture
def client(settings: Settings, storage: MemoryStorage, clock: Clock) -> Iterator[TestClient]:
    with make_client(settings, storage, clock) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> int:
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"csrf": token, "username": name, "password": password, "next": "/"},
        follow_redirects=False,
    )  # fmt: skip
    return response.status_code


def test_no_page_and_no_download_without_a_session(client: TestClient) -> None:
    """Pages and downloads send a visitor to the login page; a POST gets 401."""
    for path in ("/", "/files", "/files/MSG-1/sent", "/audit", "/orders/ORD-1", "/parked"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    response = client.post("/parked/replay", data={"queue": "outbox", "id": "P-parked"})
    assert response.status_code == 401


def test_a_forged_cookie_is_no_session(client: TestClient) -> None:
    """A cookie not signed with the console's secret is ignored."""
    client.cookies.set("kbnn_console", "eyJ1IjoibGFuIiwiYyI6IngifQ.forged.sig")
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_needs_the_csrf_token(client: TestClient) -> None:
    """A login form without (or with a wrong) CSRF token is refused with 403."""
    client.get("/login")
    data = {"username": "lan", "password": PASSWORD}
    assert client.post("/login", data=data).status_code == 403
    assert client.post("/login", data=data | {"csrf": "wrong"}).status_code == 403


def test_session_cookie_is_httponly_samesite_strict(client: TestClient) -> None:
    """The session cookie cannot be read by scripts nor sent by other sites."""
    token = csrf_of(client.get("/login").text)
    form = {"csrf": token, "username": "lan", "password": PASSWORD, "next": "/"}
    cookie = client.post("/login", data=form, follow_redirects=False).headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie


def test_session_cookie_is_secure_over_tls(
    settings: Settings, storage: MemoryStorage, clock: Clock
) -> None:
    """Served over TLS, the cookie is Secure too."""
    with make_client(settings, storage, clock, secure=True) as c:
        assert "secure" in c.get("/login").headers["set-cookie"].lower()


def test_wrong_passwords_are_throttled(client: TestClient, clock: Clock) -> None:
    """After 3 failures (the test's limit) even the right password waits for the window."""
    for _ in range(3):
        assert login(client, "lan", "wrong password!") == 401
    assert login(client, "lan") == 429
    clock.now += 61
    assert login(client, "lan") == 303


def test_one_address_is_throttled_across_user_names(client: TestClient, clock: Clock) -> None:
    """Guessing many user names from one address meets the address's limit (5 in the test)."""
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert login(client, name, "wrong password!") == 401
    assert login(client, "an") == 429
    clock.now += 61
    assert login(client, "an") == 303


def test_disabled_user_cannot_log_in_and_loses_the_session(
    client: TestClient, storage: MemoryStorage
) -> None:
    """Disabling a user ends their session at the next request."""
    assert login(client, "an") == 303
    assert client.get("/", follow_redirects=False).status_code == 200
    set_disabled(storage, name="an", disabled=True, actor="root", via="cli")
    assert client.get("/", follow_redirects=False).status_code == 303
    assert login(client, "an") == 401


def test_overview_search_and_timeline_speak_vietnamese(client: TestClient) -> None:
    """Amounts as 2.752.515.310 ₫, names with diacritics, the order's file in its timeline."""
    login(client, "an")
    home = client.get("/")
    assert home.status_code == 200
    assert "2.752.515.310 ₫" in home.text
    assert 'http-equiv="refresh"' in home.text
    found = client.get("/search", params={"q": "101010"})
    assert "Nguyễn Thị Hường" in found.text and "ORD-1" in found.text and "ORD-2" not in found.text
    by_msg = client.get("/search", params={"q": "MSG-1"})
    assert "ORD-1" in by_msg.text
    timeline = client.get("/orders/ORD-1").text
    for step in ("received", "batched", "MSG-1", "sent", "ACSC"):
        assert step in timeline, step
    assert "2.752.515.310 ₫" in timeline


def test_download_gives_the_exact_bytes_sent(client: TestClient) -> None:
    """A file's download is byte for byte what was handed to the bank."""
    login(client, "an")
    response = client.get("/files/MSG-1/sent")
    assert response.status_code == 200
    assert response.content == FILE_BYTES
    assert "attachment" in response.headers["content-disposition"]
    assert client.get("/files/NOPE/sent").status_code == 404


def test_viewer_is_refused_operator_actions_on_the_server(
    client: TestClient, storage: MemoryStorage
) -> None:
    """A viewer's replay, drop and reprocess are refused with 403, even with a valid token."""
    login(client, "an")
    token = csrf_of(client.get("/parked").text)
    assert "Gửi lại" not in client.get("/parked").text  # no buttons for a viewer ...
    form = {"csrf": token, "queue": "outbox", "id": "P-parked", "reason": "x"}
    for path in ("/parked/replay", "/parked/drop", "/quarantine/1/reprocess"):
        assert client.post(path, data=form).status_code == 403, path  # ... and no action
    assert client.get("/parked/confirm?action=replay&queue=outbox&id=P-parked").status_code == 403
    assert [p.message_id for p in storage.queries.outbox_parked()] == ["P-parked"]
    refused = [r for r in storage.queries.audit_trail() if r.action == "console.refused"]
    assert [(r.actor, r.subject) for r in refused] == [
        ("an", "/parked/replay"),
        ("an", "/parked/drop"),
        ("an", "/quarantine/1/reprocess"),
        ("an", "/parked/confirm"),
    ]


def test_operator_needs_the_csrf_token_to_act(client: TestClient, storage: MemoryStorage) -> None:
    """An operator's POST without the session's CSRF token is refused with 403."""
    login(client, "lan")
    response = client.post("/parked/replay", data={"queue": "outbox", "id": "P-parked"})
    assert response.status_code == 403
    assert [p.message_id for p in storage.queries.outbox_parked()] == ["P-parked"]


def test_operator_replays_after_confirming_and_it_is_audited(
    client: TestClient, storage: MemoryStorage
) -> None:
    """Replay goes through a confirmation page; the message is back in line and the action is
    in the audit trail, whose chain holds."""
    login(client, "lan")
    page = client.get(
        "/parked/confirm", params={"action": "replay", "queue": "outbox", "id": "P-parked"}
    )
    assert page.status_code == 200 and "P-parked" in page.text
    form = {"csrf": csrf_of(page.text), "queue": "outbox", "id": "P-parked"}
    done = client.post("/parked/replay", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert storage.queries.outbox_parked() == []
    last = storage.queries.audit_trail()[-1]
    assert (last.actor, last.via, last.action, last.subject) == (
        "lan",
        "console",
        "dlq.replay",
        "P-parked",
    )
    assert verify(storage.queries.audit_trail(), storage.queries.audit_head()) is None
    trail = client.get("/audit").text
    assert "dlq.replay" in trail and "Chuỗi nguyên vẹn" in trail


def test_drop_needs_a_reason(client: TestClient, storage: MemoryStorage) -> None:
    """Dropping without a reason is refused; with one, it is dropped and audited with it."""
    login(client, "lan")
    token = csrf_of(client.get("/parked").text)
    form = {"csrf": token, "queue": "outbox", "id": "P-parked"}
    assert client.post("/parked/drop", data=form | {"reason": "  "}).status_code == 400
    assert len(storage.queries.outbox_parked()) == 1
    done = client.post(
        "/parked/drop", data=form | {"reason": "sai tài khoản"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert storage.queries.outbox_parked() == []
    last = storage.queries.audit_trail()[-1]
    assert last.action == "dlq.drop" and json.loads(last.detail_json)["reason"] == "sai tài khoản"


def test_logout_ends_the_session(client: TestClient) -> None:
    """After logout, pages need a login again."""
    login(client, "an")
    token = csrf_of(client.get("/").text)
    assert client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_login_goes_back_only_to_this_console(client: TestClient) -> None:
    """`next` pointing to another site is ignored."""
    token = csrf_of(client.get("/login").text)
    form = {"csrf": token, "username": "an", "password": PASSWORD, "next": "//evil.example/"}
    response = client.post("/login", data=form, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_reconciliation_of_a_day(client: TestClient) -> None:
    """A day's statement per partner and account, reconciled as `gateway reconcile` does."""
    login(client, "an")
    page = client.get("/reconcile", params={"date": "2026-11-02"})
    assert page.status_code == 200
    assert "agribank · tài khoản 3761 · 02/11/2026" in page.text
    assert "KHỚP (reconciled)" in page.text
    assert "2.752.515.310 ₫" in page.text
    assert client.get("/reconcile", params={"date": "2026-12-01"}).status_code == 200


def test_quarantined_files_listed_downloaded_and_reprocess_confirmed(
    client: TestClient, storage: MemoryStorage, settings: Settings
) -> None:
    """A refused bank file is shown with its reason, downloaded byte for byte, and its
    reprocessing goes through a confirmation page."""
    raw = b"<Document>\x00 refused</Document>"
    sha = QuarantineFolder(settings.quarantine_path).keep(raw)
    with storage.unit_of_work() as uow:
        uow.inbound.quarantine("agribank", sha, len(raw), "signature: digest mismatch", T0)
    login(client, "lan")
    listed = client.get("/quarantine")
    assert "signature: digest mismatch" in listed.text and "Xử lý lại" in listed.text
    assert client.get("/quarantine/1/download").content == raw
    confirm = client.get("/quarantine/1/confirm")
    assert confirm.status_code == 200 and "/quarantine/1/reprocess" in confirm.text
    assert client.get("/quarantine/9/confirm").status_code == 404


def test_overview_numbers_link_to_their_orders(client: TestClient) -> None:
    """An order count of the overview links to the list of those orders."""
    login(client, "an")
    assert "/orders?partner=agribank&amp;state=settled" in client.get("/").text
    listed = client.get("/orders", params={"state": "settled", "partner": "agribank"})
    assert "ORD-1" in listed.text and "ORD-2" not in listed.text
    assert "ORD-2" in client.get("/orders", params={"state": "received"}).text


def test_sessions_expire_and_cannot_be_forged() -> None:
    """A cookie past its age, or signed with another secret, is no session."""
    sessions = Sessions(b"k" * 32, secure=False)
    value = sessions.dump(sessions.new("lan"))
    loaded = sessions.load(value)
    assert loaded is not None and loaded.user == "lan"
    assert Sessions(b"k" * 32, max_age=-1, secure=False).load(value) is None
    assert Sessions(b"other" * 8, secure=False).load(value) is None
    assert sessions.load(value[:-2] + "xx") is None


def test_the_audit_page_names_a_row_changed_beyond_reading(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    """On SQLite, a row whose time was overwritten with text and one whose detail is no longer
    JSON: the page still serves, shows the rows it can read, names the one it cannot, and says
    the chain is broken there."""
    store = SqliteStorage(tmp_path / "gateway.db")
    hasher = Argon2Hasher(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    for name in ("lan", "an", "minh"):
        add_user(
            store, hasher, name=name, role="operator", password=PASSWORD, actor="root", via="cli"
        )
    with closing(sqlite3.connect(tmp_path / "gateway.db")) as conn, conn:
        conn.execute("UPDATE audit_trail SET detail = 'sửa tay' WHERE seq = 1")
        conn.execute("UPDATE audit_trail SET at = 'garbage' WHERE seq = 3")
    try:
        with make_client(settings, store, clock) as client:  # type: ignore[arg-type]
            login(client, "lan")
            page = client.get("/audit")
    finally:
        store.close()
    assert page.status_code == 200
    assert re.search(
        r'id="unreadable">[^<]*row 3 cannot be read back \(Invalid isoformat string:', page.text
    )
    assert re.search(r'id="chain">Chuỗi bị phá tại dòng 1 ', page.text)
    assert "(not JSON): sửa tay" in page.text
