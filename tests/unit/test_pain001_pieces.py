"""A large pain.001 is XSD-checked in pieces side by side: the same verdict as the whole file.

`WrittenPain001.check` cuts the written text every `piece` transactions into documents of their
own (the same GrpHdr, the PmtInf each piece continues, the end tags), validates them on several
threads, and validates the whole tree whenever a piece fails, so a fault is named as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022 import xsd
from gateway.iso20022.namespaces import MessageType
from gateway.iso20022.pain001 import CHECK_PIECE, WrittenPain001, write_pain001
from gateway.iso20022.xml import PARSER
from gateway.iso20022.xmltext import parse_own_bytes
from tests.unit.factories import batch, group, order

WHOLE = 10**9  # a piece larger than any file here: checked whole


def groups_of(*sizes: int, broken: int | None = None) -> list:  # type: ignore[type-arg]
    """Groups of these many orders, numbered on across groups; order `broken` has a bad BIC."""
    groups, number = [], 0
    for index, size in enumerate(sizes):
        orders = []
        for _ in range(size):
            number += 1
            made = order(number)
            if number == broken:
                made = replace(made, creditor=replace(made.creditor, agent_bic="NOTABIC"))
            orders.append(made)
        groups.append(group(orders, f"PMT-{index:03d}"))
    return groups


def piece_documents(written: WrittenPain001) -> list[bytes]:
    return [
        piece.opening + written.canonical[piece.start : piece.stop] + piece.closing
        for piece in written.pieces
    ]


def end_to_end_ids(document: bytes) -> list[str]:
    root = parse_own_bytes(document)
    return [str(text) for text in root.xpath("//*[local-name()='EndToEndId']/text()")]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=5),
    piece=st.integers(min_value=1, max_value=12),
    version=st.sampled_from(["pain.001.001.09", "pain.001.001.03"]),
)
def test_pieces_are_valid_documents_that_hold_every_transaction_once(
    sizes: list[int], piece: int, version: str
) -> None:
    """Whatever the groups and the piece size (cuts inside a group and at a group's start): the
    text is the bytes written whole, each piece is a valid document of the same GrpHdr, and the
    pieces hold every transaction once, in order."""
    content = batch(*groups_of(*sizes))
    whole = write_pain001(content, version, piece=WHOLE)
    written = write_pain001(content, version, piece=piece)
    assert written.canonical == whole.canonical
    assert whole.pieces == ()
    total = sum(sizes)
    if total <= piece:
        assert written.pieces == ()
        return
    assert len(written.pieces) == -(-total // piece)
    kind = written.kind
    schema = xsd.schema_for(kind)
    documents = piece_documents(written)
    for document in documents:
        assert schema.validate(parse_own_bytes(document)), document
    ids = [item for document in documents for item in end_to_end_ids(document)]
    assert ids == end_to_end_ids(written.canonical)
    starts = [piece.start for piece in written.pieces]
    stops = [piece.stop for piece in written.pieces]
    assert starts[0] == 0 and stops[-1] == len(written.canonical)
    assert starts[1:] == stops[:-1]
    with whole_validation_counted() as whole_checks:
        written.check()
    assert whole_checks == []


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=4),
    piece=st.integers(min_value=1, max_value=6),
    told_every=st.integers(min_value=1, max_value=4),
)
def test_pieces_checked_as_they_are_written_are_the_same_pieces(
    sizes: list[int], piece: int, told_every: int
) -> None:
    """check=True, the writer telling its parts every 1 to 4 transactions: the same text and
    pieces as written without the check, and a yes from the pieces alone."""
    content = batch(*groups_of(*sizes))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("gateway.iso20022.pain001._TOLD_EVERY", told_every)
        written = write_pain001(content, piece=piece, check=True)
    plain = write_pain001(content, piece=piece)
    assert (written.canonical, written.pieces) == (plain.canonical, plain.pieces)
    assert (written.verdict is None) == (plain.pieces == ())
    with whole_validation_counted() as whole_checks:
        written.check()
    assert whole_checks == ([] if written.pieces else [1])  # one piece: the file checked whole
    if written.verdict is not None:
        assert written.verdict() is True


@contextmanager
def whole_validation_counted() -> Iterator[list[int]]:
    """The whole-tree validations made inside, counted (they still run)."""
    calls: list[int] = []
    real = xsd.validate

    def counted(root: etree._Element) -> None:
        calls.append(1)
        real(root)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xsd, "validate", counted)
        yield calls


@pytest.mark.parametrize("broken", [1, 6, 7, 12, 20])
def test_a_fault_in_any_piece_is_named_as_the_whole_file_names_it(broken: int) -> None:
    """A bad BIC in the first, a middle (either side of a cut) or the last piece: refused with
    the whole file's message, its path counted in the whole file."""
    content = batch(*groups_of(4, 9, 7, broken=broken))
    written = write_pain001(content, piece=3)
    assert len(written.pieces) == 7
    with pytest.raises(InvalidMessage) as whole:
        xsd.validate(write_pain001(content, piece=WHOLE).parse())
    with pytest.raises(InvalidMessage) as pieces:
        written.check()
    assert str(pieces.value) == str(whole.value)
    assert f"(EndToEndId 'ORD-2025-{broken:07d}')" in str(pieces.value)


def test_text_that_does_not_parse_names_its_order_as_before() -> None:
    """A control character in the fifth order's name: the check names that order."""
    orders = [order(n, name="Lê\x01Văn" if n == 5 else None) for n in range(1, 9)]
    written = write_pain001(batch(group(orders)), piece=2)
    assert len(written.pieces) == 4
    with pytest.raises(InvalidMessage, match=r"cannot write order ORD-2025-0000005"):
        written.check()


def test_the_official_pain001_xsds_allow_the_pieces() -> None:
    for kind in (MessageType.PAIN_001_001_09, MessageType.PAIN_001_001_03):
        assert xsd.splittable(kind, ("PmtInf", "CdtTrfTxInf"))


@pytest.mark.parametrize(
    "change",
    [
        (
            'maxOccurs="unbounded" minOccurs="1" name="CdtTrfTxInf"',
            'maxOccurs="9999" minOccurs="1" name="CdtTrfTxInf"',
        ),
        (
            'maxOccurs="unbounded" minOccurs="1" name="PmtInf"',
            'maxOccurs="5" minOccurs="1" name="PmtInf"',
        ),
        (
            '<xs:element name="Document" type="Document"/>',
            '<xs:element name="Document" type="Document"><xs:unique name="ids">'
            '<xs:selector xpath=".//*"/><xs:field xpath="@x"/></xs:unique></xs:element>',
        ),
        ('type="Max35Text"/>', 'type="xs:ID"/>'),
        (
            '<xs:element name="Document" type="Document"/>',
            '<xs:simpleType name="Reference"><xs:restriction base="xs:ID"/></xs:simpleType>'
            '<xs:element name="Document" type="Document"/>',
        ),
        (
            '<xs:element name="Document" type="Document"/>',
            '<xs:include schemaLocation="more.xsd"/><xs:element name="Document" type="Document"/>',
        ),
    ],
    ids=[
        "transactions-bounded",
        "groups-bounded",
        "identity-constraint",
        "id-type",
        "derived-id-type",
        "include",
    ],
)
def test_an_xsd_that_ties_pieces_together_has_the_file_checked_whole(
    change: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner's XSD that bounds the repeats or ties elements across the file: no pieces, the
    whole tree is validated (its verdict is the file's)."""
    official = xsd.schemas_dir() / MessageType.PAIN_001_001_09.schema_file
    text = official.read_text(encoding="utf-8")
    old, new = change
    assert old in text
    (tmp_path / official.name).write_text(text.replace(old, new, 1), encoding="utf-8")
    namespace = 'targetNamespace="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"'
    (tmp_path / "more.xsd").write_text(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" {namespace}/>', encoding="utf-8"
    )
    etree.XMLSchema(etree.parse(str(tmp_path / official.name), PARSER))  # still an XSD
    monkeypatch.setenv(xsd.SCHEMAS_ENV, str(tmp_path))
    assert not xsd.splittable(MessageType.PAIN_001_001_09, ("PmtInf", "CdtTrfTxInf"))
    calls: list[int] = []

    def all_valid(*args: object) -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(xsd, "all_valid", all_valid)
    written = write_pain001(batch(*groups_of(5, 5)), piece=3)
    with whole_validation_counted() as whole_checks:
        written.check()
    assert calls == [] and whole_checks == [1]
    assert write_pain001(batch(*groups_of(5, 5)), piece=3, check=True).verdict is None


def test_pieces_run_on_several_threads_each_with_a_schema_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(xsd, "CHECK_THREADS", 3)
    written = write_pain001(batch(*groups_of(10, 10)), piece=2)
    documents = piece_documents(written)
    threads: dict[int, str] = {}

    def piece(number: int) -> Callable[[], bytes]:
        def make() -> bytes:
            threads[number] = threading.current_thread().name
            time.sleep(0.01)
            return documents[number]

        return make

    kind = written.kind
    assert xsd.all_valid(kind, [piece(n) for n in range(len(documents))], parse_own_bytes)
    assert set(threads) == set(range(len(documents)))
    assert len(set(threads.values())) >= 2  # a helper at least, beside the caller
    spares = xsd._spare[(xsd.schemas_dir(), kind)]
    assert len(spares) >= 2 and len({id(schema) for schema in spares}) == len(spares)


def test_a_piece_a_helper_cannot_check_makes_the_answer_no(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A helper thread failing on its piece (out of memory, say) leaves that piece unchecked:
    the answer is no, never yes, and the file is then validated whole."""
    monkeypatch.setattr(xsd, "CHECK_THREADS", 2)
    written = write_pain001(batch(*groups_of(10, 10)), piece=2)
    documents = piece_documents(written)

    def piece(number: int) -> Callable[[], bytes]:
        def make() -> bytes:
            time.sleep(0.01)
            if threading.current_thread() is not threading.main_thread():
                raise MemoryError("no memory for this piece")
            return documents[number]

        return make

    pieces = [piece(n) for n in range(len(documents))]
    assert not xsd.all_valid(written.kind, pieces, parse_own_bytes)

    def parse_in_main_thread_only(data: bytes) -> etree._Element:
        if threading.current_thread() is not threading.main_thread():
            raise MemoryError("no memory for this piece")
        return parse_own_bytes(data)

    monkeypatch.setattr("gateway.iso20022.pain001.parse_own_bytes", parse_in_main_thread_only)
    monkeypatch.setattr("gateway.iso20022.pain001._TOLD_EVERY", 1)
    checked = write_pain001(batch(*groups_of(10, 10)), piece=2, check=True)
    assert checked.verdict is not None
    time.sleep(0.2)  # the helper takes pieces while the caller does not
    with whole_validation_counted() as whole_checks:
        checked.check()
    assert checked.verdict() is False and whole_checks == [1]


def test_files_up_to_one_piece_are_checked_whole() -> None:
    written = write_pain001(batch(*groups_of(CHECK_PIECE)))
    assert written.pieces == ()
    assert len(write_pain001(batch(*groups_of(CHECK_PIECE, 1))).pieces) == 2


def _piece_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("xsd-piece")]


def _no_piece_threads_within(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _piece_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _piece_threads()


@pytest.mark.parametrize("broken", [None, 2, 11])
def test_pieces_checked_while_written_give_the_same_verdict(broken: int | None) -> None:
    """With check=True the pieces are checked from the time each is written: a valid file
    passes on their verdict, a fault is named as the whole file names it."""
    content = batch(*groups_of(4, 9, broken=broken))
    written = write_pain001(content, piece=3, check=True)
    assert written.verdict is not None
    assert written.canonical == write_pain001(content, piece=WHOLE).canonical
    if broken is None:
        written.check()
        assert written.verdict() is True
    else:
        with pytest.raises(InvalidMessage) as whole:
            xsd.validate(write_pain001(content, piece=WHOLE).parse())
        with pytest.raises(InvalidMessage) as pieces:
            written.check()
        assert str(pieces.value) == str(whole.value)
    assert _no_piece_threads_within(5)


def test_a_file_that_cannot_be_written_stops_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer refusing an order after pieces went to the check: the refusal is raised and
    the check's threads end; a written file nobody checks leaves no thread either."""
    monkeypatch.setattr(xsd, "CHECK_THREADS", 3)
    monkeypatch.setattr("gateway.iso20022.pain001._TOLD_EVERY", 2)
    orders = [order(n, name="N" * 141 if n == 9 else None) for n in range(1, 13)]
    with pytest.raises(InvalidMessage, match="order ORD-2025-0000009 creditor name is 141"):
        write_pain001(batch(group(orders)), piece=2, check=True)
    assert _no_piece_threads_within(5)
    write_pain001(batch(*groups_of(6, 6)), piece=2, check=True)  # never checked
    assert _no_piece_threads_within(5)


def test_without_check_nothing_runs_beside_the_writer() -> None:
    written = write_pain001(batch(*groups_of(6, 6)), piece=2)
    assert written.verdict is None and len(written.pieces) == 6
    assert _piece_threads() == []
    written.check()
