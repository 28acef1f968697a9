"""A large pain.001 is XSD-checked in pieces side by side: the same verdict as the whole file.

`WrittenPain001.check` cuts the written text every `piece` transactions into documents of their
own (the same GrpHdr, the PmtInf each piece continues, the end tags), validates them on several
threads, and validates the whole tree whenever a piece fails, so a fault is named as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
    written.check()


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
    ],
    ids=["transactions-bounded", "groups-bounded", "identity-constraint", "id-type"],
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
    etree.XMLSchema(etree.parse(str(tmp_path / official.name), PARSER))  # still an XSD
    monkeypatch.setenv(xsd.SCHEMAS_ENV, str(tmp_path))
    assert not xsd.splittable(MessageType.PAIN_001_001_09, ("PmtInf", "CdtTrfTxInf"))
    calls: list[int] = []

    def all_valid(*args: object) -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(xsd, "all_valid", all_valid)
    written = write_pain001(batch(*groups_of(5, 5)), piece=3)
    written.check()
    assert calls == []


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
    assert len(set(threads.values())) == 3
    spares = xsd._spare[(xsd.schemas_dir(), kind)]
    assert len(spares) >= 3 and len({id(schema) for schema in spares}) == len(spares)


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
    checked: list[bool] = []
    monkeypatch.setattr(xsd, "validate", lambda root: checked.append(True))
    monkeypatch.setattr(xsd, "all_valid", lambda *args: False)
    written.check()
    assert checked == [True]


def test_files_up_to_one_piece_are_checked_whole() -> None:
    written = write_pain001(batch(*groups_of(CHECK_PIECE)))
    assert written.pieces == ()
    assert len(write_pain001(batch(*groups_of(CHECK_PIECE, 1))).pieces) == 2
