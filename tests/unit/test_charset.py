"""Charset policy: NFC for utf8 partners, transliteration to the restricted Latin set for latin."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

import pytest

from gateway.domain.orders import Account, ClearingMember
from gateway.domain.text import LATIN_SET, Charset, check_identifier, fit, to_latin
from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.pain001 import build_pain001
from gateway.iso20022.xml import to_bytes
from tests.unit.factories import batch, group, order


@pytest.mark.parametrize(
    ("text", "latin"),
    [
        ("Đặng Minh Khôi", "Dang Minh Khoi"),
        ("Nguyễn Thị Hồng Nhung", "Nguyen Thi Hong Nhung"),
        ("Trợ cấp xã hội tháng 3/2025", "Tro cap xa hoi thang 3/2025"),
        ("đường Điện Biên Phủ", "duong Dien Bien Phu"),
        ("Công ty A&B; hóa đơn #12", "Cong ty A+B, hoa don .12"),
        ("Müller_Straße “Nord”", "Muller-Strasse 'Nord'"),
    ],
)
def test_latin_transliteration(text: str, latin: str) -> None:
    """đ/Đ become d/D, marks are stripped, others map to a stand-in or '.'."""
    result = to_latin(unicodedata.normalize("NFD", text))
    assert result == latin
    assert LATIN_SET.fullmatch(result)


def test_lengths_are_counted_after_normalisation() -> None:
    """A decomposed 140-letter name is 140 characters in NFC: accepted; 141 is refused."""
    decomposed = unicodedata.normalize("NFD", "ễ" * 140)
    assert len(decomposed) > 140
    assert fit(decomposed, Charset.UTF8, "name", 140) == "ễ" * 140
    assert fit(decomposed, Charset.LATIN, "name", 140) == "e" * 140
    with pytest.raises(InvalidMessage, match="name is 141 characters after NFC; at most 140"):
        fit("ễ" * 141, Charset.UTF8, "name", 140)
    with pytest.raises(InvalidMessage, match="after transliteration"):
        fit("ß" * 71, Charset.LATIN, "name", 140)


@pytest.mark.parametrize("value", ["", "A" * 36, "ORD 1 ", "ORD_1", "ĐƠN-1"])
def test_identifiers_outside_the_rules_are_refused(value: str) -> None:
    """Ids are 1-35 characters of the restricted set with no outer spaces."""
    with pytest.raises(InvalidMessage):
        check_identifier(value, "EndToEndId")


def test_a_latin_partner_gets_only_the_restricted_set() -> None:
    """Every text node of a latin file is in the restricted set, and the file is XSD-valid."""
    orders = [order(n, remittance="Trợ cấp xã hội tháng 3/2025 & phụ cấp") for n in range(1, 7)]
    root = build_pain001(batch(group(orders)), charset="latin")
    xsd.validate(root)
    texts = [node.text for node in root.iter() if node.text and node.text.strip()]
    assert "Nguyen Thi Hong Nhung" in texts
    assert "Dang Minh Khoi" in texts
    assert "Tro cap xa hoi thang 3/2025 + phu cap" in texts
    assert all(LATIN_SET.fullmatch(t) for t in texts)
    assert to_bytes(root).isascii()


def test_account_policies_and_clearing_members() -> None:
    """iban refuses domestic numbers; other writes an IBAN as Othr/Id; members go to ClrSysMmbId."""
    domestic = order(1)
    with pytest.raises(InvalidMessage, match="is not an IBAN, and this partner takes only IBANs"):
        build_pain001(batch(group([domestic])), account_id="iban")
    iban = order(2, account=Account(iban="DE89370400440532013000"))
    root = build_pain001(batch(group([iban])), account_id="other")
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
    assert root.xpath("//p:CdtrAcct/p:Id/p:Othr/p:Id/text()", namespaces=ns) == [
        "DE89370400440532013000"
    ]
    member = replace(
        domestic,
        creditor=replace(domestic.creditor, agent_member=ClearingMember("CITAD", "01204001")),
    )
    for version in ("pain.001.001.09", "pain.001.001.03"):
        root = build_pain001(batch(group([member])), version)
        xsd.validate(root)
        namespace = {"p": f"urn:iso:std:iso:20022:tech:xsd:{version}"}
        assert root.xpath(
            "//p:CdtrAgt/p:FinInstnId/p:ClrSysMmbId/p:MmbId/text()", namespaces=namespace
        ) == ["01204001"]
        assert root.xpath("//p:CdtrAgt//p:ClrSysId/p:Prtry/text()", namespaces=namespace) == [
            "CITAD"
        ]


def test_duplicate_ids_in_one_file_are_refused() -> None:
    """The same order twice, or two PmtInf with one id, never reach the bank."""
    with pytest.raises(InvalidMessage, match="order ORD-2025-0000001 appears twice"):
        build_pain001(batch(group([order(1), order(1)])))
    with pytest.raises(InvalidMessage, match="PmtInfId PMT-1 appears twice"):
        build_pain001(batch(group([order(1)], "PMT-1"), group([order(2)], "PMT-1")))
