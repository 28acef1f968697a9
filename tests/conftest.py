"""Shared fixtures: settings in a temporary home, and the real broker when a test needs one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import urllib.parse
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.adapters.softhsm import init_token, softhsm_conf, softhsm_module
from gateway.config import DEFAULT_AMQP_URL, Settings, load_settings
from gateway.profile import PartnerProfile, PinnedCertificate
from tests.cluster import cluster
from tests.postgres import postgres_base_url, postgres_url

# PostgreSQL fixtures (tests/postgres.py) and the RabbitMQ cluster's (tests/cluster.py).
__all__ = ["cluster", "postgres_base_url", "postgres_url"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C (SIGINT) at its usual meaning, for pytest and the gateways the tests start: a
    shell's background job starts its commands with SIGINT ignored, which children inherit, and
    the test that stops a gateway by SIGINT would then wait for nothing."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def amqp_url() -> str:
    """The broker the tests use."""
    return os.environ.get("GATEWAY_AMQP_URL", DEFAULT_AMQP_URL)


def _broker_answers(url: str) -> bool:
    parsed = urllib.parse.urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5672), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker_url() -> str:
    """A RabbitMQ that answers; on CI (GATEWAY_REQUIRE_BROKER or CI set) its absence fails."""
    url = amqp_url()
    if not _broker_answers(url):
        message = f"no RabbitMQ at {url}: run `scripts/broker start`"
        if os.environ.get("GATEWAY_REQUIRE_BROKER") or os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def samples() -> Path:
    """The third-party ISO 20022 samples in ../shared/iso20022/samples.

    Absent (a clone without ../shared) they are skipped; under CI their absence fails the run.
    """
    path = SHARED / "iso20022" / "samples"
    if not path.is_dir():
        message = f"third-party samples not found at {path} (../shared is absent)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def pin_certificate(profile: PartnerProfile, cert: Path) -> PartnerProfile:
    """The profile trusting only the certificate at `cert`."""
    pinned = replace(profile.signature, certificates=(PinnedCertificate(path=str(cert)),))
    return replace(profile, signature=pinned)


# Reports of the demo's month (November 2026) keep their dates whenever the tests run: their
# creation time is not held to the receipt tolerance (tests/security checks that tolerance).
ANY_CREATION_TIME = timedelta(days=100 * 365)


def any_creation_time(profile: PartnerProfile) -> PartnerProfile:
    """The profile accepting files whatever creation time they state."""
    inbound = replace(profile.inbound, max_age=ANY_CREATION_TIME, max_ahead=ANY_CREATION_TIME)
    return replace(profile, inbound=inbound)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The project's settings with the database, keys and bank certificate under tmp_path."""
    base = load_settings(ROOT)
    partners = {
        name: any_creation_time(
            pin_certificate(profile, tmp_path / "keys" / f"banksim-{name}.cert.pem")
        )
        for name, profile in base.partners.items()
    }
    return replace(
        base,
        db_path=str(tmp_path / "gateway.db"),
        db_url="",  # SQLite under tmp_path, whatever GATEWAY_DB_URL the shell has
        keys_dir=str(tmp_path / "keys"),
        quarantine_dir=str(tmp_path / "quarantine"),
        partners=partners,
        batch_quiet_seconds=0.3,
        amqp_url=amqp_url(),
        # Tests never bind the production metrics port; the metrics tests choose their own.
        metrics_port=0,
        # Orders of the demo's month (November 2026) arrive before its first cut-off.
        as_of="2026-11-02T08:00:00+07:00",
    )


@pytest.fixture(scope="session")
def xmlsec1() -> str:
    """The xmlsec1 binary: a failure under CI, a skip elsewhere, when it is missing."""
    path = shutil.which("xmlsec1")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("xmlsec1 is not installed, and CI is set: install the xmlsec1 package")
        pytest.skip("xmlsec1 is not installed (Debian: apt-get install xmlsec1)")
    return path


def xmlsec1_verify(xmlsec1: str, document: Path, cert: Path) -> subprocess.CompletedProcess[str]:
    """Verify an enveloped signature (reference URI "") trusting only `cert`."""
    return subprocess.run(
        [
            xmlsec1,
            "--verify",
            "--trusted-pem",
            str(cert),
            "--enabled-reference-uris",
            "empty",
            str(document),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private SoftHSM2 configuration (tokens in a temporary folder), selected for this
    process and its children by SOFTHSM2_CONF; SoftHSM2 missing fails under CI, else skips."""
    if softhsm_module() is None or shutil.which("softhsm2-util") is None:
        message = "SoftHSM2 is not installed (Debian: apt-get install softhsm2)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    conf = softhsm_conf(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


_TOKENS = iter(range(1, 1_000_000))


@pytest.fixture
def token_settings(settings: Settings, softhsm: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """`settings` with our keys in a fresh SoftHSM2 token of their own (no key in it yet); its
    user PIN in GATEWAY_PKCS11_PIN."""
    token = init_token(softhsm, f"kbnn-test-{next(_TOKENS)}", "246810")
    monkeypatch.setenv("GATEWAY_PKCS11_PIN", token.pin)
    return replace(
        settings,
        key_source="pkcs11",
        pkcs11_module=token.module,
        pkcs11_token=token.label,
    )
