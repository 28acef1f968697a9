"""Property tests: any valid orders build a file that passes its XSD with exact counts and sums,
and a status report about that file reads back every id."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.commands.iso import _batches
from gateway.domain.money import MINOR_UNITS, Money
from gateway.domain.orders import Account, Budget, Category, ClearingMember, Party, PaymentOrder
from gateway.domain.text import LATIN_SET
from gateway.iso20022 import xsd
from gateway.iso20022.model import OutboundBatch, PaymentGroup, StatusReport, TxStatus
from gateway.iso20022.pain001 import build_pain001, read_pain001, write_pain001
from gateway.iso20022.pain002 import build_pain002
from gateway.iso20022.reading import read_file
from gateway.iso20022.xml import file_of, to_bytes
from gateway.service.intake import group_key
from tests.unit.factories import CREATED_AT, TREASURY

VIETNAMESE = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ"
)
ALPHABET = VIETNAMESE + VIETNAMESE.upper() + "0123456789 /-?:().,'+&<>\"%#@_"
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-?:().,'+"
BICS = ("VBAAVNVX", "BFTVVNVX", "BIDVVNVX", "ICBVVNVX", "DEUTDEFF500")


def _iban(n: int) -> str:
    bban = f"37040044{n:010d}"
    digits = "".join(str(int(c, 36)) for c in bban + "DE00")
    return f"DE{98 - int(digits) % 97:02d}{bban}"


def texts(max_size: int) -> st.SearchStrategy[str]:
    """Vietnamese text, sometimes decomposed (NFD), that is at most max_size long in NFC."""
    return st.builds(
        lambda text, form: unicodedata.normalize(form, text).strip() or "x",
        st.text(ALPHABET, min_size=1, max_size=max_size),
        st.sampled_from(["NFC", "NFD"]),
    )


@st.composite
def orders(draw: st.DrawFn, index: int) -> PaymentOrder:
    """One valid order, its id unique by `index`."""
    currency = draw(st.sampled_from(sorted(MINOR_UNITS)))
    units = MINOR_UNITS[currency]
    minor = draw(st.integers(min_value=1, max_value=10**14))
    amount = Decimal(minor).scaleb(-units)
    tail = draw(st.text(ID_CHARS, min_size=0, max_size=26))
    if draw(st.booleans()):
        account = Account(iban=_iban(draw(st.integers(0, 10**9))))
    else:
        account = Account(number=draw(st.from_regex(r"[0-9A-Z]{6,20}", fullmatch=True)))
        account = Account(number=account.number, scheme=draw(st.sampled_from(["BBAN", "CITAD"])))
    member = draw(st.none() | st.just(ClearingMember("CITAD", "01204001")))
    budget = draw(
        st.none()
        | st.builds(
            Budget,
            chapter=st.from_regex(r"[0-9]{3}", fullmatch=True),
            economic_code=st.from_regex(r"[0-9]{4}", fullmatch=True),
            treasury_code=st.none() | st.from_regex(r"[0-9]{4}", fullmatch=True),
        )
    )
    return PaymentOrder(
        order_id=f"O{index:05d}{tail}",
        category=draw(st.sampled_from(list(Category))),
        debtor=TREASURY,
        creditor=Party(draw(texts(140)), account, draw(st.sampled_from(BICS)), member),
        money=Money.parse(format(amount, "f"), currency),
        requested_execution_date=date(2025, 3, 17),
        remittance=draw(st.just("") | texts(140)),
        budget=budget,
    )


@st.composite
def batches(draw: st.DrawFn) -> OutboundBatch:
    """One to three PmtInf of one to eight orders each, ids unique across the file."""
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))
    groups, index = [], 0
    for number, size in enumerate(sizes, start=1):
        members = []
        for _ in range(size):
            members.append(draw(orders(index)))
            index += 1
        groups.append(
            PaymentGroup(
                pmt_inf_id=f"PMT-{number:03d}",
                debtor=TREASURY,
                execution_date=date(2025, 3, 17),
                category=members[0].category,
                orders=tuple(members),
            )
        )
    return OutboundBatch(
        "KBNN-20250314-PROP-0000001", CREATED_AT, "Kho bạc Nhà nước", tuple(groups)
    )


VERSIONS = st.sampled_from(["pain.001.001.09", "pain.001.001.03"])
CHARSETS = st.sampled_from(["utf8", "latin"])


def exclusive_c14n(root: etree._Element) -> bytes:
    canonical: bytes = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    return canonical


# Beside the alphabet: line ends, a tab, blanks that are not spaces, a character outside the
# Basic Multilingual Plane, and text that is only blanks.
AWKWARD = ALPHABET + "\r\n\t\u00a0\u2028\u0085\U0001f600"


@st.composite
def awkward_batches(draw: st.DrawFn) -> OutboundBatch:
    """`batches`, every name and remittance replaced by text of `AWKWARD`, outer blanks kept."""
    batch = draw(batches())
    awkward = st.text(AWKWARD, min_size=1, max_size=60) | st.sampled_from([" ", "\r\n", "\t "])
    groups = []
    for group in batch.groups:
        orders = []
        for order in group.orders:
            name = unicodedata.normalize("NFC", draw(awkward))
            creditor = replace(order.creditor, name=name)
            remittance = unicodedata.normalize("NFC", draw(awkward))
            orders.append(replace(order, creditor=creditor, remittance=remittance))
        groups.append(replace(group, orders=tuple(orders)))
    return replace(batch, groups=tuple(groups))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=awkward_batches(), version=VERSIONS, charset=CHARSETS)
def test_the_written_text_is_the_documents_exclusive_canonical_form(
    batch: OutboundBatch, version: str, charset: str
) -> None:
    """What an enveloped signature digests: the builder's text is exactly libxml2's exclusive
    C14N of the tree, and of the file as a bank parses it (line ends turned to CR LF on the
    way included); the tree's own file differs at most in how a carriage return is written."""
    written = write_pain001(batch, version, charset=charset)
    root = written.parse()
    assert exclusive_c14n(root) == written.canonical
    as_received = etree.fromstring(file_of(written.canonical))
    assert exclusive_c14n(as_received) == written.canonical
    crlf = etree.fromstring(file_of(written.canonical).replace(b"\n", b"\r\n"))
    assert exclusive_c14n(crlf) == written.canonical
    assert file_of(written.canonical).replace(b"&#xD;", b"&#13;") == to_bytes(root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), version=VERSIONS, charset=CHARSETS)
def test_any_valid_batch_builds_a_valid_exact_file(
    batch: OutboundBatch, version: str, charset: str
) -> None:
    """XSD-valid; NbOfTxs and CtrlSum exact per file and per PmtInf; amounts read back exactly."""
    root = build_pain001(batch, version, charset=charset)
    xsd.validate(root)
    content = read_pain001(root)
    every = [order for group in batch.groups for order in group.orders]
    assert content.nb_of_txs == len(every) == len(content.transfers)
    assert content.ctrl_sum == sum((o.money.amount for o in every), Decimal(0))
    namespace = {"p": f"urn:iso:std:iso:20022:tech:xsd:{version}"}
    for group, element in zip(batch.groups, root.iterfind(".//p:PmtInf", namespace), strict=True):
        assert element.findtext("p:NbOfTxs", namespaces=namespace) == str(len(group.orders))
        expected = sum((o.money.amount for o in group.orders), Decimal(0))
        assert Decimal(element.findtext("p:CtrlSum", namespaces=namespace) or "") == expected
    for order, transfer in zip(every, content.transfers, strict=True):
        assert (transfer.end_to_end_id, transfer.amount, transfer.currency) == (
            order.order_id,
            order.money.amount,
            order.money.currency,
        )
        decimals = -transfer.amount.as_tuple().exponent  # type: ignore[operator]
        assert decimals == MINOR_UNITS[order.money.currency]
    if charset == "latin":
        assert to_bytes(root).isascii()
        assert all(LATIN_SET.fullmatch(t.creditor_name) for t in content.transfers)
    else:
        assert [t.creditor_name for t in content.transfers] == [
            unicodedata.normalize("NFC", o.creditor.name) for o in every
        ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(), statuses=st.lists(st.sampled_from(["ACSC", "RJCT", "ACCP"]), min_size=1))
def test_a_status_report_about_a_built_file_round_trips_every_id(
    batch: OutboundBatch, statuses: list[str]
) -> None:
    """Build → the bank's pain.002 about it → parse: MsgId, PmtInfIds, InstrIds, EndToEndIds."""
    content = read_pain001(build_pain001(batch))
    lines = tuple(
        TxStatus(
            original_end_to_end_id=t.end_to_end_id,
            status=statuses[n % len(statuses)],
            original_instr_id=t.instr_id,
            original_pmt_inf_id=t.pmt_inf_id,
            reason_code="AC01" if statuses[n % len(statuses)] == "RJCT" else None,
        )
        for n, t in enumerate(content.transfers)
    )
    report = StatusReport("BANK-0001", CREATED_AT, content.msg_id, "pain.001.001.09", None, lines)
    parsed = read_file(to_bytes(build_pain002(report)))
    assert parsed.xsd == "valid"
    read = parsed.content
    assert isinstance(read, StatusReport)
    assert read.original_msg_id == batch.msg_id
    assert [
        (t.original_pmt_inf_id, t.original_instr_id, t.original_end_to_end_id, t.status)
        for t in read.transactions
    ] == [
        (t.pmt_inf_id, t.instr_id, t.end_to_end_id, s.status)
        for t, s in zip(content.transfers, lines, strict=True)
    ]


@settings(max_examples=40, deadline=None)
@given(
    keys=st.lists(
        st.tuples(
            st.sampled_from(list(Category)), st.sampled_from([None, "RUN-1"]), st.integers(1, 2)
        ),
        min_size=1,
        max_size=40,
    ),
    limit=st.integers(1, 7),
)
def test_grouping_respects_keys_and_the_file_limit(
    keys: list[tuple[Category, str | None, int]], limit: int
) -> None:
    """Each file holds one group key and at most `limit` orders; all orders land exactly once;
    the same orders give the same MsgIds."""
    base = PaymentOrder(
        order_id="X",
        category=Category.SALARY,
        debtor=TREASURY,
        creditor=TREASURY,
        money=Money.parse("1000", "VND"),
        requested_execution_date=date(2025, 3, 17),
        remittance="",
    )
    every = [
        replace(
            base,
            order_id=f"O-{n}",
            category=category,
            batch_ref=batch_ref,
            requested_execution_date=date(2025, 3, 16 + day),
        )
        for n, (category, batch_ref, day) in enumerate(keys)
    ]
    files = _batches(every, "agribank", limit)
    assert sorted(o.order_id for _, chunk in files for o in chunk) == sorted(
        o.order_id for o in every
    )
    for _, chunk in files:
        assert 1 <= len(chunk) <= limit
        assert len({group_key("agribank", o) for o in chunk}) == 1
    msg_ids = [msg_id for msg_id, _ in files]
    assert len(set(msg_ids)) == len(msg_ids)
    assert all(len(msg_id) <= 35 for msg_id in msg_ids)
    assert [msg_id for msg_id, _ in _batches(every, "agribank", limit)] == msg_ids
