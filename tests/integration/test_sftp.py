"""File exchange over SFTP against a real OpenSSH server on loopback, with a pinned host key."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from gateway.adapters.sftp import HostKeyRefusedError, SftpFolder
from gateway.banksim.bank import AccountBook
from gateway.banksim.files import FileBank
from gateway.banksim.wiring import build_bank
from gateway.bootstrap import build_gateway, partner_folders
from gateway.config import Settings
from gateway.errors import TransientError
from gateway.profile import SftpAccess
from gateway.service.file_relay import FileRelay
from gateway.service.file_scanner import CLAIMED, PROCESSED, FileScanner
from tests.doubles import FakeClock
from tests.integration.test_files import PARTNER, Exchange, batch_bills

# slow: a real sshd and whole flows over SFTP.
pytestmark = pytest.mark.slow

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    """A private sshd on a loopback port, with its own host key and our client key."""

    port: int
    host_key_fingerprint: str
    client_key: Path
    other_fingerprint: str  # of a key the server does not have


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        timeout=30,
    )
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{path}.pub"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return listed.stdout.split()[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """OpenSSH's sshd with a config of its own under a temporary folder (never the system's)."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        message = "OpenSSH server is not installed (Debian: apt-get install openssh-server)"
        if os.environ.get("CI"):
            pytest.fail(message + ", and CI is set: scripts/test installs it")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("sshd")
    host_fp = _keygen(root / "host_ed25519")
    _keygen(root / "client_ed25519")
    other_fp = _keygen(root / "other_ed25519")
    shutil.copy(root / "client_ed25519.pub", root / "authorized_keys")
    port = _free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {root / 'host_ed25519'}\n"
        f"PidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
        f"AllowUsers {getpass.getuser()}\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\n"
        "UsePAM no\n"
        "StrictModes no\n"
        "Subsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
    server = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    if probe.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                errors = server.stderr.read() if server.stderr else ""
                pytest.fail(f"sshd did not start on port {port}: {errors[-2000:]}")
            time.sleep(0.1)
        yield SshServer(port, host_fp, root / "client_ed25519", other_fp)
    finally:
        server.terminate()
        server.wait(10)


def sftp_settings(settings: Settings, server: SshServer, root: Path, fingerprint: str) -> Settings:
    """VietinBank reached over SFTP; its folders are paths on the (loopback) host."""
    profile = settings.partners[PARTNER]
    assert profile.files is not None
    access = SftpAccess(
        host="127.0.0.1",
        port=server.port,
        user=getpass.getuser(),
        key=str(server.client_key),
        host_key=fingerprint,
        timeout=5.0,
    )
    files = replace(
        profile.files,
        access="sftp",
        outbound=str(root / "to-bank"),
        inbound=str(root / "from-bank"),
        settle_seconds=0.0,
        sftp=access,
    )
    return replace(settings, partners={**settings.partners, PARTNER: replace(profile, files=files)})


@pytest.fixture
def over_sftp(settings: Settings, sshd: SshServer, tmp_path: Path) -> Exchange:
    """Gateway and bank simulator sharing folders through the SFTP server."""
    root = tmp_path / "sftp-root"
    (root / "to-bank").mkdir(parents=True)
    (root / "from-bank").mkdir()
    settings = sftp_settings(settings, sshd, root, sshd.host_key_fingerprint)
    gateway = build_gateway(settings, clock=FakeClock())
    partner = settings.partners[PARTNER]
    bank = build_bank(settings, partner, AccountBook(), tmp_path / "bank.db")
    outbound, inbound = partner_folders(settings, partner)
    assert isinstance(outbound, SftpFolder)
    return Exchange(settings, gateway, bank, outbound, inbound)


def test_payment_file_is_written_over_sftp_whole(over_sftp: Exchange) -> None:
    """The relay writes <MsgId>.xml on the host through a temporary name and a rename."""
    msg_id = batch_bills(over_sftp, "DV2611-0001")
    relay = FileRelay(over_sftp.gateway.storage, {PARTNER: over_sftp.outbound})
    try:
        assert relay.drain() == 1
    finally:
        relay.close()
    files = over_sftp.settings.partners[PARTNER].files
    assert files is not None
    out = Path(files.outbound)
    assert sorted(p.name for p in out.iterdir()) == [f"{msg_id}.xml"]
    [(body,)] = over_sftp.gateway.storage.query(
        "SELECT body FROM outbox WHERE message_id = ?", (msg_id,)
    )
    assert (out / f"{msg_id}.xml").read_bytes() == bytes(body)
    assert over_sftp.gateway.storage.query("SELECT state FROM files") == [("sent",)]


def test_reports_are_read_over_sftp_once_partial_ones_later(over_sftp: Exchange) -> None:
    """Over SFTP too: a .part file waits, each report is applied once, then sits in processed/."""
    inbound = over_sftp.inbound_path
    msg_id, body = over_sftp.revenue_report("VTB2611R000201")
    (inbound / f"{msg_id}.xml.part").write_bytes(body[:100])
    over_sftp.drop(f"{msg_id}.xml", body)
    over_sftp.drop(f"{msg_id}-again.xml", body)
    scanner = over_sftp.scanner()
    assert scanner.scan() == Counter(applied=1, duplicate=1)
    assert over_sftp.revenue_rows() == ["VTB2611R000201"]
    assert over_sftp.listing() == [f"{msg_id}.xml.part"]
    assert len(over_sftp.listing(PROCESSED)) == 2


def test_two_sftp_scanners_at_once_read_each_file_once(over_sftp: Exchange) -> None:
    """Two scanners on two SFTP connections race over 20 reports: each is applied once."""
    refs = [f"VTB2611R{n:06d}" for n in range(300, 320)]
    for ref in refs:
        msg_id, body = over_sftp.revenue_report(ref)
        over_sftp.drop(f"{msg_id}.xml", body)
    scanners = [over_sftp.scanner(), over_sftp.scanner()]
    start = threading.Barrier(2)
    results: list[Counter[str]] = []

    def run(scanner: FileScanner) -> None:
        start.wait()
        results.append(scanner.scan())

    threads = [threading.Thread(target=run, args=(s,)) for s in scanners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum((r["applied"] for r in results), 0) == len(refs)
    assert over_sftp.revenue_rows() == refs
    assert len(over_sftp.listing(PROCESSED)) == len(refs)
    assert over_sftp.listing(CLAIMED) == []


def test_round_trip_through_the_bank_over_sftp(over_sftp: Exchange) -> None:
    """Relay, bank simulator and scanner all over SFTP: the bills end settled."""
    batch_bills(over_sftp, "DV2611-0001", "DV2611-0002")
    relay = FileRelay(over_sftp.gateway.storage, {PARTNER: over_sftp.outbound})
    assert relay.drain() == 1
    bank_side = FileBank(over_sftp.bank, over_sftp.outbound, over_sftp.inbound)
    assert bank_side.poll() == 1
    scan = over_sftp.scanner().scan()
    assert scan == Counter(applied=2)
    states = {s for (s,) in over_sftp.gateway.storage.query("SELECT state FROM orders")}
    assert states == {"settled"}
    bank_side.close()


def test_an_unknown_host_key_is_refused(
    settings: Settings, sshd: SshServer, tmp_path: Path
) -> None:
    """A host showing another key than the pinned one gets nothing, and the error says so."""
    root = tmp_path / "sftp-root"
    (root / "to-bank").mkdir(parents=True)
    settings = sftp_settings(settings, sshd, root, sshd.other_fingerprint)
    outbound, _ = partner_folders(settings, settings.partners[PARTNER])
    with pytest.raises(HostKeyRefusedError) as refused:
        outbound.write_atomic("KBNN-TEST.xml", b"<Document/>")
    message = str(refused.value)
    assert sshd.host_key_fingerprint in message
    assert sshd.other_fingerprint in message
    assert "refusing to connect" in message
    assert list((root / "to-bank").iterdir()) == []


def test_a_relay_facing_a_wrong_host_key_keeps_the_file_pending(
    settings: Settings, sshd: SshServer, tmp_path: Path
) -> None:
    """The relay logs the refusal and leaves the file for later; nothing is marked sent."""
    root = tmp_path / "sftp-root"
    (root / "to-bank").mkdir(parents=True)
    (root / "from-bank").mkdir()
    settings = sftp_settings(settings, sshd, root, sshd.other_fingerprint)
    gateway = build_gateway(settings, clock=FakeClock())
    outbound, inbound = partner_folders(settings, settings.partners[PARTNER])
    exchange = Exchange(
        settings,
        gateway,
        build_bank(settings, settings.partners[PARTNER], AccountBook(), tmp_path / "b.db"),
        outbound,
        inbound,
    )
    batch_bills(exchange, "DV2611-0001")
    assert FileRelay(gateway.storage, {PARTNER: outbound}).drain() == 0
    assert gateway.storage.query("SELECT state FROM files") == [("built",)]
    assert list((root / "to-bank").iterdir()) == []


def test_an_unreachable_host_is_a_transient_fault(
    settings: Settings, sshd: SshServer, tmp_path: Path
) -> None:
    """No server on the port: a transient error (retried later), not a crash."""
    closed = replace(sshd, port=_free_port())
    settings = sftp_settings(settings, closed, tmp_path, sshd.host_key_fingerprint)
    outbound, _ = partner_folders(settings, settings.partners[PARTNER])
    with pytest.raises(TransientError, match="unreachable"):
        outbound.files()
