"""`gateway build` and `gateway parse` as an admin runs them: files written, JSON printed,
one-line errors, nothing sent and nothing stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.iso20022.reading import read_file
from gateway.signing import verify
from tests.conftest import ROOT
from tests.integration.test_cli import run


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A gateway home with the project's configuration and schemas."""
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    return tmp_path


def payload(n: int, **changes: Any) -> dict[str, Any]:
    """A benefit order in contract payment-order/1."""
    order: dict[str, Any] = {
        "schema": "payment-order/1",
        "order_id": f"BTXH2611-{n:06d}",
        "batch_ref": "BTXH-PL-2026-11",
        "category": "social_benefit",
        "debtor": {
            "name": "Kho bạc Nhà nước Phú Lương",
            "account": {"number": "7411058271001", "scheme": "BBAN"},
            "agent_bic": "VBAAVNVX",
        },
        "creditor": {
            "name": "Nguyễn Thị Hương",
            "account": {"number": f"85062051{n:05d}", "scheme": "BBAN"},
            "agent_bic": "VBAAVNVX",
            "agent_member": {"clearing_system": "CITAD", "member_id": "01204001"},
        },
        "amount": "606000",
        "currency": "VND",
        "requested_execution_date": "2026-11-25",
        "remittance": "Trợ cấp xã hội tháng 11/2026",
        "budget": {"chapter": "624", "economic_code": "7151"},
    }
    order.update(changes)
    return order


def test_build_writes_a_signed_valid_file_and_the_same_msg_id_again(home: Path) -> None:
    """Three orders → one file, signed by our key, XSD-valid; building again keeps the MsgId."""
    orders = home / "orders.json"
    orders.write_text(json.dumps([payload(n) for n in range(1, 4)], ensure_ascii=False))
    first = run(home, "build", str(orders), "--partner", "agribank", "--out", str(home / "a"))
    assert first.returncode == 0, first.stderr
    (written,) = sorted((home / "a").glob("*.xml"))
    assert str(written) in first.stdout
    assert "3 transactions\tCtrlSum 1818000" in first.stdout
    certificate = (home / "keys" / "kbnn-gateway.cert.pem").read_bytes()
    verify(written.read_bytes(), certificate)
    parsed = read_file(written.read_bytes())
    assert parsed.xsd == "valid"
    assert parsed.signature == "enveloped in Document (not verified by parse)"
    assert parsed.message == "pain.001.001.09"
    again = run(home, "build", str(orders), "--partner", "agribank", "--out", str(home / "b"))
    assert again.returncode == 0, again.stderr
    assert [p.name for p in (home / "b").glob("*.xml")] == [written.name]


def test_build_refuses_an_amount_with_decimals_vnd_has_not(home: Path) -> None:
    """Refused, never rounded: one line naming the order and what is wrong; no file."""
    orders = home / "orders.json"
    orders.write_text(json.dumps([payload(1), payload(2, amount="606000.50")]))
    result = run(home, "build", str(orders), "--partner", "agribank", "--out", str(home / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "order 1 (BTXH2611-000002)" in result.stderr
    assert "VND allows 0" in result.stderr
    assert not (home / "out").exists() or not list((home / "out").iterdir())


def test_help_lists_build_and_parse(home: Path) -> None:
    """Both commands are registered and describe themselves."""
    result = run(home, "--help")
    assert result.returncode == 0
    assert "build" in result.stdout
    assert "parse" in result.stdout
    assert "--no-validate" in run(home, "parse", "--help").stdout


def test_build_for_an_unknown_partner_is_one_line(home: Path) -> None:
    """The known partners are named."""
    orders = home / "orders.json"
    orders.write_text(json.dumps(payload(1)))
    result = run(home, "build", str(orders), "--partner", "nobank")
    assert result.returncode == 1
    assert (
        "no partner profile named 'nobank' in conf/partners/ (known: agribank, vietinbank)"
        in result.stderr
    )


def test_parse_prints_json_and_refuses_a_faulty_file_in_one_line(home: Path, samples: Path) -> None:
    """A valid sample prints its JSON; an XSD-faulty one gets one line with element and line."""
    good = run(home, "parse", str(samples / "12_camt054_00104_postfinance_returns.xml"))
    assert good.returncode == 0, good.stderr
    result = json.loads(good.stdout)
    assert (result["kind"], result["xsd"]) == ("notification", "valid")
    detail = result["content"]["entries"][0]["details"][0]
    assert (detail["end_to_end_id"], detail["return_reason"]) == ("EndToEndId-001-03-04", "AC01")
    assert detail["return_reason_text"] == "Kontonummer falsch"
    faulty = samples / "22_camt053_00102_camt_parser.xml"
    bad = run(home, "parse", str(faulty))
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0
    assert "line 62: BkToCstmrStmt/Stmt/Ntry[1]/NtryRef: This element is not expected" in bad.stderr
    lenient = run(home, "parse", "--no-validate", str(faulty))
    assert lenient.returncode == 0
    assert (
        json.loads(lenient.stdout)["content"]["statements"][0]["balances"][1]["amount"] == "23.06"
    )


def test_parse_refuses_a_dtd_in_one_line(home: Path) -> None:
    """Hardened parsing: a DOCTYPE is refused, clearly, without a traceback."""
    evil = home / "evil.xml"
    evil.write_text('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><Document>&e;</Document>')
    result = run(home, "parse", str(evil))
    assert result.returncode == 1
    assert "DOCTYPE" in result.stderr
    assert "Traceback" not in result.stderr
