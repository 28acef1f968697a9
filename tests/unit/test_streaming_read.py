"""A large camt.054 read streaming (bounded memory) gives exactly what its whole tree gives, and
is refused for the same faults."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.banksim.messages import StatementBalances, build_camt053
from gateway.errors import InvalidMessage
from gateway.iso20022 import streaming
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.profile import PartnerProfile
from gateway.signing import KeyPair, generate_keypair, sign, trusted
from gateway.signing.receipt import ReceivedFile, entry_problems, receive

NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
PARTNER = PartnerProfile(name="bank", bic="VBAAVNVX")


@pytest.fixture(scope="module")
def bank() -> KeyPair:
    """The bank's key."""
    return KeyPair(*generate_keypair("Streaming bank", valid_from=datetime(2024, 1, 1, tzinfo=UTC)))


def _notification(count: int) -> Notification:
    day = date(2026, 11, 10)
    return Notification(
        msg_id="VBA-N-STREAM",
        created_at=NOW - timedelta(minutes=5),
        account="7411058271001",
        entries=tuple(
            Entry(
                amount=Decimal(606000 + i),
                currency="VND",
                credit_debit="DBIT" if i % 3 else "CRDT",
                status="BOOK",
                booking_date=day,
                value_date=day,
                account_servicer_ref=f"VBA-{i:06d}",
                details=(
                    EntryDetail(
                        amount=Decimal(606000 + i) if i != 7 else Decimal(1),
                        currency="VND",
                        end_to_end_id=f"BTXH-{i:07d}",
                        counterparty_name="Nguyễn Thị Hương",
                        remittance="Trợ cấp & <tháng> 11",
                    ),
                ),
            )
            for i in range(count)
        ),
    )


def _both(
    data: bytes, bank: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> tuple[ReceivedFile, ReceivedFile]:
    """The file received streaming, then from its whole tree."""
    monkeypatch.setattr(streaming, "STREAM_FROM", 0)
    streamed = receive(data, PARTNER, [trusted(bank.cert_pem)], NOW)
    monkeypatch.setattr(streaming, "STREAM_FROM", 1 << 40)
    whole = receive(data, PARTNER, [trusted(bank.cert_pem)], NOW)
    return streamed, whole


def test_streamed_read_is_the_tree_read(bank: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every entry, detail, amount and the header read streaming equal the tree's reading, and
    the entry/detail checks find the same disagreement."""
    data = sign(build_camt054(_notification(60)), bank)
    streamed, whole = _both(data, bank, monkeypatch)
    assert streamed.content == whole.content
    assert len(streamed.content.entries) == 60  # type: ignore[union-attr]
    assert streamed.verified.key_id == whole.verified.key_id
    assert streamed.verified.created_at == whole.verified.created_at
    assert (streamed.kind, streamed.schema_checked) == (whole.kind, whole.schema_checked)
    assert entry_problems(streamed.content) == entry_problems(whole.content)
    assert len(entry_problems(streamed.content)) == 1
    # The streamed tree keeps no entry.
    assert not list(streamed.verified.document.iter("{*}Ntry"))


def test_streamed_read_refuses_schema_faults_and_comments(
    bank: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value the XSD refuses, a comment and an XInclude element are refused streaming too."""
    monkeypatch.setattr(streaming, "STREAM_FROM", 0)
    built = build_camt054(_notification(5))
    for element in built.iter("{*}CdtDbtInd"):
        element.text = "XXXX"
        break
    with pytest.raises(InvalidMessage, match=r"camt.054.001.08 fails its XSD: .*CdtDbtInd"):
        receive(sign(built, bank), PARTNER, [trusted(bank.cert_pem)], NOW)
    good = sign(build_camt054(_notification(5)), bank)
    commented = re.sub(rb"(<Ntry>)", rb"<!-- x -->\1", good, count=1)
    with pytest.raises(InvalidMessage, match="comment inside <Ntfctn>"):
        receive(commented, PARTNER, [trusted(bank.cert_pem)], NOW)


def test_streamed_statement_is_the_tree_read(
    bank: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A camt.053 read streaming gives the statement its whole tree gives: its balances, its
    entries in order, and the same entry/detail disagreements."""
    balances = StatementBalances(date(2026, 11, 10), Decimal(10**9), Decimal(10**9 - 1))
    root = build_camt053(_notification(40), "STMT-STREAM", balances)
    data = sign(root, bank)
    streamed, whole = _both(data, bank, monkeypatch)
    assert streamed.content == whole.content
    assert streamed.kind.family == "camt.053"
    assert len(streamed.content.statements[0].entries) == 40  # type: ignore[union-attr]
    assert not list(streamed.verified.document.iter("{*}Ntry"))  # it was read streaming
    assert list(whole.verified.document.iter("{*}Ntry"))
    assert entry_problems(streamed.content) == entry_problems(whole.content)
    assert len(entry_problems(streamed.content)) == 1
