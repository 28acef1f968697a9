"""The streaming pass of cheap limits: each limit refuses by its name, before any tree is built."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022.limits import InboundLimits, LimitExceeded, check_limits
from gateway.iso20022.xml import parse_xml, to_bytes
from gateway.profile import load_partner
from tests.security.corpus import notification

SMALL = InboundLimits(
    max_bytes=10_000,
    max_elements=50,
    max_depth=5,
    max_attributes=3,
    max_text=100,
    max_attribute_length=20,
)


@pytest.mark.parametrize(
    ("data", "limit"),
    [
        (b"<a>" + b"<b/>" * 60 + b"</a>", "max_elements"),
        (b"<a><b><c><d><e><f/></e></d></c></b></a>", "max_depth"),
        (b'<a w="1" x="2" y="3" z="4"/>', "max_attributes"),
        (b'<a xmlns="urn:x" xmlns:p="urn:p" xmlns:q="urn:q" x="1"/>', "max_attributes"),
        (b"<a>" + b"x" * 101 + b"</a>", "max_text"),
        (b"<a><b/>" + b"x" * 60 + b"<![CDATA[" + b"y" * 41 + b"]]></a>", "max_text"),
        (b'<a x="' + b"v" * 21 + b'"/>', "max_attribute_length"),
        (b"<a>" + b"x" * 10_000 + b"</a>", "max_bytes"),
    ],
)
def test_each_limit_refuses_by_its_name(data: bytes, limit: str) -> None:
    """A file over a limit is refused with a reason naming that limit."""
    with pytest.raises(LimitExceeded, match=rf"\(limit {limit}\)"):
        check_limits(data, SMALL)


def test_a_file_within_every_limit_passes() -> None:
    """A real camt.054 passes the default limits and the small ones above it."""
    check_limits(to_bytes(notification(1)))
    check_limits(b'<a x="1"><b>text</b><c/></a>', SMALL)


def test_the_refusal_comes_at_the_first_element_over_the_limit() -> None:
    """The pass stops at the element over the limit: its line is named."""
    data = b"<a>\n" + b"<b/>\n" * 100 + b"</a>"
    with pytest.raises(LimitExceeded, match=r"^line 51: more than 50 elements"):
        check_limits(data, SMALL)


def test_forty_thousand_attributes_are_refused_by_count() -> None:
    """The attribute bomb (libxml2 and C14N handle it in quadratic time) is refused by count."""
    attributes = b" ".join(b'a%d="1"' % i for i in range(40_000))
    with pytest.raises(LimitExceeded, match=r"<Document> has 40000 attributes; the limit is 16"):
        parse_xml(b"<Document " + attributes + b"/>")


def test_a_long_name_is_refused() -> None:
    """An element name longer than any schema's is refused without being echoed."""
    with pytest.raises(LimitExceeded, match=r"an element name of 5000 characters") as refused:
        check_limits(b"<" + b"n" * 5000 + b"/>")
    assert "nnnnn" not in str(refused.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<?pi x?><a/>", r"processing instruction; payment files have none"),
        (b"<a/><?pi x?>", r"processing instruction; payment files have none"),
        (b"<a><?pi x?></a>", r"processing instruction; payment files have none"),
        (b"<!DOCTYPE a><a/>", r"DOCTYPE"),
        (b"<a>", r"malformed XML at line 1: no element found"),
        (b"<a/><b/>", r"malformed XML at line 1: junk after document element"),
    ],
)
def test_what_the_pass_refuses_on_the_way(data: bytes, reason: str) -> None:
    """Processing instructions anywhere, DTDs and broken XML are refused by the same pass."""
    with pytest.raises(InvalidMessage, match=reason):
        check_limits(data)


def test_a_partner_profile_sets_its_own_limits(tmp_path: Path) -> None:
    """The [inbound] table sets each limit and the creation-time tolerance."""
    path = tmp_path / "bank.toml"
    path.write_text(
        'name = "bank"\nbic = "VBAAVNVX"\n[signature]\nmode = "none"\n'
        "[inbound]\nmax_bytes = 2000000\nmax_elements = 100000\nmax_depth = 30\n"
        "max_attributes = 8\nmax_text = 10000\nmax_attribute_length = 512\n"
        "max_age_hours = 24\nmax_ahead_minutes = 5\n"
    )
    inbound = load_partner(path).inbound
    assert inbound.limits == InboundLimits(2_000_000, 100_000, 30, 8, 10_000, 512)
    assert inbound.max_age.total_seconds() == 24 * 3600
    assert inbound.max_ahead.total_seconds() == 5 * 60


def test_the_defaults_hold_without_an_inbound_table(tmp_path: Path) -> None:
    """Without [inbound] a partner gets the defaults; a misspelt key is refused by name."""
    path = tmp_path / "bank.toml"
    path.write_text('name = "bank"\nbic = "VBAAVNVX"\n[signature]\nmode = "none"\n')
    assert load_partner(path).inbound.limits == InboundLimits()
    path.write_text(path.read_text() + "[inbound]\nmax_element = 5\n")
    with pytest.raises(ConfigError, match=r"\[inbound\] unknown key\(s\) max_element"):
        load_partner(path)
