"""The operations console in a real browser (Debian's headless Chromium, driven by Selenium
through /usr/bin/chromedriver), on the database the demo month leaves behind.

An operator logs in, sees the month's numbers, finds one beneficiary's order and its timeline
and replays a parked message; a viewer is refused the same action (403, on the server); both are
in the audit trail; `gateway audit verify` then catches a row edited in the database. The run
writes screenshots of the main pages to docs/screenshots/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

from gateway.adapters.persistence.sqlite import SqliteStorage
from gateway.adapters.web.display import count, money
from gateway.adapters.web.passwords import Argon2Hasher
from gateway.bootstrap import console_server
from gateway.config import Settings, load_settings
from gateway.domain.states import TxState
from gateway.service.channels import LEDGER_EXCHANGE
from gateway.service.ports import OutboxMessage
from gateway.service.users import add_user
from tests.conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.broker, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "mật-khẩu-đủ-dài-1"
PARKED_ID = "P-demo-parked-posting"


def required(path: Path) -> None:
    """The browser and its driver: scripts/test installs them; CI fails without them."""
    if not path.exists():
        message = f"{path} missing: scripts/test installs Debian's chromium and chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo_home(broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway home after `gateway demo` (the month of Phú Lương), with its SQLite database."""
    home = tmp_path_factory.mktemp("console")
    shutil.copytree(ROOT / "conf", home / "conf")
    shutil.copytree(ROOT / "schemas", home / "schemas")
    env = {**os.environ, "GATEWAY_HOME": str(home), "GATEWAY_AMQP_URL": broker_url}
    env.pop("GATEWAY_DB_URL", None)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "gateway"), "demo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return home


@pytest.fixture(scope="module")
def console(demo_home: Path, broker_url: str) -> Iterator[tuple[str, Settings, SqliteStorage]]:
    """The console served on a free port over the demo's database, with an operator (lan), a
    viewer (an) and one outbox message parked (a posting the broker could not route)."""
    db = demo_home / "var" / "demo" / "gateway.db"
    settings = replace(
        load_settings(demo_home),
        db_path=str(db),
        db_url="",
        amqp_url=broker_url,
        console_secret_file=str(demo_home / "var" / "console.secret"),
    )
    storage = SqliteStorage(db)
    hasher = Argon2Hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for name, role in (("lan", "operator"), ("an", "viewer")):
        add_user(storage, hasher, name=name, role=role, password=PASSWORD, actor="root", via="cli")
    now = datetime.now(UTC)
    with storage.unit_of_work() as uow:
        body = json.dumps({"kind": "payment_settled", "order_id": "demo"}).encode()
        uow.outbox.enqueue(OutboxMessage(PARKED_ID, LEDGER_EXCHANGE, "posting.x", body, {}), now)
    with storage.unit_of_work() as uow:
        for pending in uow.outbox.claim("browser-test", 1000, now, now):
            if pending.message.message_id == PARKED_ID:
                uow.outbox.park(pending.row_id, "NO_ROUTE: no queue bound to posting.x", now)
            else:
                uow.outbox.release([pending.row_id], "browser-test")
    port = free_port()
    server = console_server(settings, storage, address="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", settings, storage
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        storage.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    required(CHROMIUM)
    required(CHROMEDRIVER)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    options.add_argument("--lang=vi-VN")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: WebDriver, name: str) -> None:
    """A screenshot of the whole page (up to 2,400 pixels high) for docs/operations.md."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = min(int(driver.execute_script("return document.body.scrollHeight")) + 20, 2400)
    driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Emulation.setDeviceMetricsOverride",
        {"width": 1400, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]


def follow(driver: WebDriver, element: WebElement) -> None:
    """Click a link or a form's button and wait until the page it leads to has replaced this
    one (a click returns before the browser has navigated)."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 30).until(lambda _: _replaced(old))


def _replaced(old: WebElement) -> bool:
    """Whether the page holding `old` is gone. While the browser swaps documents chromedriver
    may answer a question about the old one's element with "does not belong to the document"
    (an unknown error, not a stale reference): the page is gone then too."""
    try:
        old.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def sign_in(driver: WebDriver, base: str, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/")
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    follow(driver, driver.find_element(By.ID, "signin"))
    assert (
        driver.find_element(By.ID, "who").text
        == f"{name} ({'operator' if name == 'lan' else 'viewer'})"
    )


def text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_console_in_a_browser(console: Any, browser: WebDriver, demo_home: Path) -> None:
    """Operator and viewer through the console, the audit trail, and a tampered row caught."""
    base, settings, storage = console
    queries = storage.queries
    driver = browser

    # The login page, then the operator's overview with the month's numbers.
    driver.get(f"{base}/login")
    shot(driver, "login")
    sign_in(driver, base, "lan")
    settled = queries.orders_by_state()["settled"]
    assert settled > 3000
    assert driver.find_element(By.ID, "settled").text == count(settled)
    total = sum(o.amount for o in queries.orders_in_state(TxState.SETTLED))
    assert driver.find_element(By.ID, "settled-amount").text == money(total)
    assert "₫" in driver.find_element(By.ID, "settled-amount").text
    shot(driver, "overview")

    # One beneficiary's order, found by the creditor's account, and its timeline.
    order = queries.orders_in_state(TxState.SETTLED, limit=1)[0]
    creditor = json.loads(order.payload)["creditor"]
    account = creditor["account"].get("number") or creditor["account"].get("iban")
    follow(driver, driver.find_element(By.LINK_TEXT, "Tra cứu"))
    driver.find_element(By.ID, "q").send_keys(account)
    follow(driver, driver.find_element(By.ID, "find"))
    results = text(driver)
    assert order.order_id in results and creditor["name"] in results
    shot(driver, "search")
    follow(driver, driver.find_element(By.LINK_TEXT, order.order_id))
    timeline = driver.find_element(By.ID, "timeline").text
    assert order.msg_id is not None and order.msg_id in timeline
    for step in ("received", "batched", "sent", "settled", "posting"):
        assert step in timeline, step
    assert driver.find_element(By.ID, "amount").text == money(order.amount, order.currency)
    shot(driver, "order-timeline")

    # Its file: transactions, reports, and the exact bytes sent.
    follow(driver, driver.find_element(By.PARTIAL_LINK_TEXT, f"in file {order.msg_id}"))
    assert order.order_id in driver.find_element(By.ID, "transactions").text
    shot(driver, "file")
    session = {c["name"]: c["value"] for c in driver.get_cookies()}
    sent = httpx.get(f"{base}/files/{order.msg_id}/sent", cookies=session)
    assert sent.status_code == 200
    assert sent.content == queries.outbox_messages([order.msg_id])[0].body

    # The reconciliation of a day, as `gateway reconcile` shows it.
    driver.get(f"{base}/reconcile")
    assert "KHỚP" in text(driver) or "Không có sao kê" in text(driver), text(driver)
    shot(driver, "reconcile")

    # Replay the parked message as the operator, through the confirmation.
    driver.get(f"{base}/parked")
    assert PARKED_ID in text(driver)
    shot(driver, "parked")
    # (other parked messages, on the broker, may be listed too: this one is chosen by its id)
    replay = f'a[href*="action=replay"][href*="id={PARKED_ID}"]'
    follow(driver, driver.find_element(By.CSS_SELECTOR, replay))
    assert driver.find_element(By.ID, "message-id").text == PARKED_ID
    follow(driver, driver.find_element(By.ID, "confirm"))
    assert PARKED_ID not in text(driver)
    assert all(p.message_id != PARKED_ID for p in queries.outbox_parked())
    follow(driver, driver.find_element(By.ID, "logout"))

    # The viewer: no buttons, and the action refused on the server with 403.
    sign_in(driver, base, "an")
    driver.get(f"{base}/parked/confirm?action=drop&queue=outbox&id={PARKED_ID}")
    assert "403" in driver.find_element(By.ID, "refused").text
    viewer = {c["name"]: c["value"] for c in driver.get_cookies()}
    page = httpx.get(f"{base}/parked", cookies=viewer)
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    refused = httpx.post(
        f"{base}/parked/replay",
        data={"csrf": token, "queue": "outbox", "id": PARKED_ID},
        cookies=viewer,
    )
    assert refused.status_code == 403

    # Both actions in the audit trail, shown by the console; the chain is intact.
    driver.get(f"{base}/audit")
    trail = driver.find_element(By.ID, "audit").text
    assert "dlq.replay" in trail and PARKED_ID in trail and "console.refused" in trail
    assert "nguyên vẹn" in driver.find_element(By.ID, "chain").text
    shot(driver, "audit")
    env = {**os.environ, "GATEWAY_HOME": str(demo_home), "GATEWAY_DB_PATH": settings.db_path}
    env.pop("GATEWAY_DB_URL", None)
    gateway = str(Path(sys.executable).parent / "gateway")
    intact = subprocess.run(
        [gateway, "audit", "verify"], capture_output=True, text=True, env=env, check=False
    )
    assert intact.returncode == 0, intact.stdout + intact.stderr

    # Someone edits the replay's row in the database: verify names it and exits 1.
    replayed = next(r for r in queries.audit_trail() if r.action == "dlq.replay")
    with closing(sqlite3.connect(settings.db_path, isolation_level=None)) as conn:
        conn.execute("UPDATE audit_trail SET actor = 'an' WHERE seq = ?", (replayed.seq,))
    broken = subprocess.run(
        [gateway, "audit", "verify"], capture_output=True, text=True, env=env, check=False
    )
    assert broken.returncode == 1
    assert f"BROKEN at row {replayed.seq} (changed)" in broken.stdout
    driver.get(f"{base}/audit")
    assert f"dòng {replayed.seq}" in driver.find_element(By.ID, "chain").text
