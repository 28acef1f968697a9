"""Inbound files of the versions whose XSDs now ship are checked against them after their
signature: a faulty third-party pain.002.001.10 is quarantined, a good one applied."""

from __future__ import annotations

import pytest

from gateway.banksim.wiring import bank_keypair
from gateway.bootstrap import build_gateway
from gateway.config import Settings
from gateway.iso20022.xml import parse_xml
from gateway.signing import sign
from tests.conftest import SHARED


def test_pain002_001_10_is_checked_against_its_shipped_xsd(settings: Settings) -> None:
    """08 is verified, XSD-checked and applied; 07, whose anonymised BIC breaks the XSD, is
    quarantined with the element and line."""
    samples = SHARED / "iso20022" / "samples"
    if not samples.is_dir():
        pytest.skip(f"third-party samples not present at {samples}")
    gateway = build_gateway(settings)
    keypair = bank_keypair(settings, settings.partners["agribank"])
    assert keypair is not None
    good = sign(parse_xml((samples / "08_pain002_00110_de_vop_03.xml").read_bytes()), keypair)
    assert gateway.inbound.apply("agribank", good) == "applied"
    faulty = sign(parse_xml((samples / "07_pain002_00110_de_vop_02.xml").read_bytes()), keypair)
    assert gateway.inbound.apply("agribank", faulty) == "quarantined"
    [(reason,)] = gateway.storage.query("SELECT reason FROM quarantine")
    assert reason.startswith("pain.002.001.10 fails its XSD: line ")
    assert "BICFI" in reason
