"""The pain.001 reader follows each transaction's paths by hand (the bank simulator reads 100,000
of them a run): it must read what the generic `Picker` reads, transfer for transfer, and refuse
what it refuses with the same words, on real files and on odd or broken transactions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from gateway.errors import InvalidMessage
from gateway.iso20022.apphdr import document_of
from gateway.iso20022.model import CreditTransfer
from gateway.iso20022.namespaces import namespace_of
from gateway.iso20022.pain001 import _transaction_reader, build_pain001, read_pain001
from gateway.iso20022.xml import (
    findall,
    parse_amount,
    parse_currency,
    parse_xml,
    picker,
    read_account,
    text,
    to_bytes,
)
from tests.unit.factories import batch, benefits_batch, group, order

V09 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"


_TRANSACTION_PATHS = (
    "PmtId/EndToEndId",
    "PmtId/InstrId",
    "Amt/InstdAmt",
    "Amt/EqvtAmt/Amt",
    "RmtInf/Ustrd",
    "CdtrAgt/FinInstnId",
    "Cdtr/Nm",
    "CdtrAcct",
    "Purp/Cd",
)


def _read_transaction_by_paths(
    tx: etree._Element, ns: str | None, pmt_inf_id: str, debtor_account: str
) -> CreditTransfer:
    """One CdtTrfTxInf, its paths picked by the generic `Picker`: the reference the reader
    (`_transaction_reader`) is held to (the reader the gateway had before)."""
    at = picker(ns, _TRANSACTION_PATHS).pick(tx)
    end_to_end_id = at.required("PmtId/EndToEndId", f"PmtInf {pmt_inf_id}")
    where = f"transaction {end_to_end_id}"
    amount = at.first("Amt/InstdAmt")
    if amount is None:
        amount = at.first("Amt/EqvtAmt/Amt")
    if amount is None or not amount.text:
        raise InvalidMessage(f"{where}: <Amt/InstdAmt> (or <Amt/EqvtAmt/Amt>) is missing")
    currency = parse_currency(amount.get("Ccy"), f"{where} <InstdAmt>")
    remittance = at.texts("RmtInf/Ustrd")
    agent = at.first("CdtrAgt/FinInstnId")
    return CreditTransfer(
        pmt_inf_id=pmt_inf_id,
        instr_id=at.text("PmtId/InstrId"),
        end_to_end_id=end_to_end_id,
        amount=parse_amount(amount.text, f"{where} amount"),
        currency=currency,
        creditor_name=at.text("Cdtr/Nm") or "",
        creditor_account=read_account(at.first("CdtrAcct"), ns) or "",
        creditor_agent_bic=text(agent, ns, "BICFI") or text(agent, ns, "BIC"),
        debtor_account=debtor_account,
        purpose=at.text("Purp/Cd"),
        remittance=" ".join(remittance) if remittance else None,
    )


# A transaction as the gateway writes it; the cases below change one part of it.
PLAIN = {
    "PmtId": "<PmtId><InstrId>B0000001</InstrId><EndToEndId>B0000001</EndToEndId></PmtId>",
    "Amt": '<Amt><InstdAmt Ccy="VND">606000</InstdAmt></Amt>',
    "CdtrAgt": "<CdtrAgt><FinInstnId><BICFI>VBAAVNVX</BICFI></FinInstnId></CdtrAgt>",
    "Cdtr": "<Cdtr><Nm>Nguyễn Văn An</Nm></Cdtr>",
    "CdtrAcct": (
        "<CdtrAcct><Id><Othr><Id>8613000000001</Id><SchmeNm><Cd>BBAN</Cd></SchmeNm></Othr></Id>"
        "</CdtrAcct>"
    ),
    "Purp": "<Purp><Cd>SSBE</Cd></Purp>",
    "RmtInf": "<RmtInf><Ustrd>Chi trả tháng 11</Ustrd></RmtInf>",
}

CASES: dict[str, dict[str, str]] = {
    "plain": {},
    "no InstrId": {"PmtId": "<PmtId><EndToEndId>B1</EndToEndId></PmtId>"},
    "no EndToEndId": {"PmtId": "<PmtId><InstrId>B1</InstrId></PmtId>"},
    "blank EndToEndId": {"PmtId": "<PmtId><EndToEndId>  </EndToEndId></PmtId>"},
    "empty first EndToEndId": {
        "PmtId": "<PmtId><EndToEndId/><EndToEndId>B2</EndToEndId></PmtId>",
    },
    "EndToEndId in a second PmtId": {
        "PmtId": "<PmtId><InstrId>I</InstrId></PmtId><PmtId><EndToEndId>B2</EndToEndId></PmtId>",
    },
    "EndToEndId too long": {"PmtId": f"<PmtId><EndToEndId>{'E' * 36}</EndToEndId></PmtId>"},
    "InstrId too long": {
        "PmtId": f"<PmtId><InstrId>{'I' * 36}</InstrId><EndToEndId>B1</EndToEndId></PmtId>",
    },
    "ids with spaces and a comment": {
        "PmtId": "<PmtId><!-- x --><EndToEndId> B1 <!-- y -->tail</EndToEndId></PmtId>",
    },
    "no Amt": {"Amt": ""},
    "empty amount": {"Amt": '<Amt><InstdAmt Ccy="VND"></InstdAmt></Amt>'},
    "bad amount": {"Amt": '<Amt><InstdAmt Ccy="VND">-5</InstdAmt></Amt>'},
    "amount with spaces": {"Amt": '<Amt><InstdAmt Ccy="VND"> 606000 </InstdAmt></Amt>'},
    "no currency": {"Amt": "<Amt><InstdAmt>606000</InstdAmt></Amt>"},
    "bad currency": {"Amt": '<Amt><InstdAmt Ccy="vnd">606000</InstdAmt></Amt>'},
    "equivalent amount": {
        "Amt": '<Amt><EqvtAmt><Amt Ccy="CHF">12.50</Amt><CcyOfTrf>EUR</CcyOfTrf></EqvtAmt></Amt>',
    },
    "equivalent amount in a second EqvtAmt": {
        "Amt": '<Amt><EqvtAmt/></Amt><Amt><EqvtAmt><Amt Ccy="CHF">1</Amt></EqvtAmt></Amt>',
    },
    "instructed after equivalent": {
        "Amt": (
            '<Amt><EqvtAmt><Amt Ccy="CHF">1</Amt></EqvtAmt></Amt>'
            '<Amt><InstdAmt Ccy="EUR">2.00</InstdAmt></Amt>'
        ),
    },
    "two remittance lines": {
        "RmtInf": "<RmtInf><Ustrd>a</Ustrd><Ustrd> </Ustrd><Ustrd/></RmtInf><RmtInf><Ustrd>b"
        "</Ustrd></RmtInf>",
    },
    "no remittance line": {"RmtInf": "<RmtInf><Strd><AddtlRmtInf>x</AddtlRmtInf></Strd></RmtInf>"},
    "blank remittance": {"RmtInf": "<RmtInf><Ustrd>   </Ustrd></RmtInf>"},
    "remittance too long": {"RmtInf": f"<RmtInf><Ustrd>{'r' * 141}</Ustrd></RmtInf>"},
    "no creditor name": {"Cdtr": "<Cdtr><PstlAdr><Ctry>VN</Ctry></PstlAdr></Cdtr>"},
    "name in a second Cdtr": {"Cdtr": "<Cdtr/><Cdtr><Nm>Trần Thị Bình</Nm></Cdtr>"},
    "name too long": {"Cdtr": f"<Cdtr><Nm>{'N' * 141}</Nm></Cdtr>"},
    "IBAN": {"CdtrAcct": "<CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct>"},
    "IBAN too long": {"CdtrAcct": f"<CdtrAcct><Id><IBAN>{'D' * 35}</IBAN></Id></CdtrAcct>"},
    "blank IBAN and a number": {
        "CdtrAcct": "<CdtrAcct><Id><IBAN> </IBAN></Id><Id><Othr><Id>42</Id></Othr></Id></CdtrAcct>",
    },
    "proprietary scheme": {
        "CdtrAcct": (
            "<CdtrAcct><Id><Othr><Id>42</Id><SchmeNm><Cd> </Cd><Prtry>CITAD</Prtry></SchmeNm>"
            "</Othr></Id></CdtrAcct>"
        ),
    },
    "no scheme": {"CdtrAcct": "<CdtrAcct><Id><Othr><Id>42</Id></Othr></Id></CdtrAcct>"},
    "no account number": {"CdtrAcct": "<CdtrAcct><Id><Othr><Issr>X</Issr></Othr></Id></CdtrAcct>"},
    "account number too long": {
        "CdtrAcct": f"<CdtrAcct><Id><Othr><Id>{'9' * 36}</Id></Othr></Id></CdtrAcct>",
    },
    "second account ignored": {
        "CdtrAcct": (
            "<CdtrAcct><Id><Othr><Id>1</Id></Othr></Id></CdtrAcct>"
            "<CdtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></CdtrAcct>"
        ),
    },
    "BIC of .03": {"CdtrAgt": "<CdtrAgt><FinInstnId><BIC>VBAAVNVX</BIC></FinInstnId></CdtrAgt>"},
    "blank BICFI and a BIC": {
        "CdtrAgt": "<CdtrAgt><FinInstnId><BICFI/><BIC>VBAAVNVX</BIC></FinInstnId></CdtrAgt>",
    },
    "BIC too long": {
        "CdtrAgt": "<CdtrAgt><FinInstnId><BICFI>VBAAVNVX0001</BICFI></FinInstnId></CdtrAgt>",
    },
    "agent without institution": {"CdtrAgt": "<CdtrAgt><BrnchId><Id>1</Id></BrnchId></CdtrAgt>"},
    "no agent": {"CdtrAgt": ""},
    "purpose proprietary": {"Purp": "<Purp><Prtry>X</Prtry></Purp>"},
    "purpose too long": {"Purp": f"<Purp><Cd>{'P' * 36}</Cd></Purp>"},
    "unknown elements and a processing instruction": {
        "Purp": "<Purp><?pi x?><Cd>SSBE</Cd></Purp><Tax><Cdtr><Nm>Tax</Nm></Cdtr></Tax>",
    },
    "empty": {part: "" for part in PLAIN},
    # The first at each path counts, in document order, across repeated parents.
    "two of each id": {
        "PmtId": (
            "<PmtId><InstrId>I1</InstrId><EndToEndId>E1</EndToEndId><InstrId>I2</InstrId>"
            "<EndToEndId>E2</EndToEndId></PmtId><PmtId><EndToEndId>E3</EndToEndId></PmtId>"
        ),
    },
    "two instructed amounts": {
        "Amt": '<Amt><InstdAmt Ccy="EUR">1.00</InstdAmt><InstdAmt Ccy="USD">2.00</InstdAmt></Amt>',
    },
    "two equivalent amounts": {
        "Amt": (
            '<Amt><EqvtAmt><Amt Ccy="CHF">1</Amt><Amt Ccy="EUR">2</Amt></EqvtAmt>'
            '<EqvtAmt><Amt Ccy="USD">3</Amt></EqvtAmt></Amt>'
        ),
    },
    "two creditors": {"Cdtr": "<Cdtr><Nm>A</Nm><Nm>B</Nm></Cdtr><Cdtr><Nm>C</Nm></Cdtr>"},
    "two agents": {
        "CdtrAgt": (
            "<CdtrAgt><FinInstnId><BICFI>AAAAVNVX</BICFI><BICFI>BBBBVNVX</BICFI></FinInstnId>"
            "<FinInstnId><BICFI>CCCCVNVX</BICFI></FinInstnId></CdtrAgt>"
            "<CdtrAgt><FinInstnId><BICFI>DDDDVNVX</BICFI></FinInstnId></CdtrAgt>"
        ),
    },
    "two purposes": {"Purp": "<Purp><Cd>A</Cd><Cd>B</Cd></Purp><Purp><Cd>C</Cd></Purp>"},
    "two account numbers": {
        "CdtrAcct": (
            "<CdtrAcct><Id><Othr><Id>1</Id><Id>2</Id><SchmeNm><Prtry>X</Prtry></SchmeNm>"
            "<SchmeNm><Cd>BBAN</Cd></SchmeNm></Othr><Othr><Id>3</Id></Othr></Id></CdtrAcct>"
        ),
    },
    "two IBANs": {
        "CdtrAcct": (
            "<CdtrAcct><Id><Othr><Id>1</Id></Othr></Id><Id><IBAN>DE89370400440532013000</IBAN>"
            "<IBAN>FR1420041010050500013M02606</IBAN></Id></CdtrAcct>"
        ),
    },
    "an account's other parts": {
        "CdtrAcct": (
            "<CdtrAcct><Nm><Othr><Id>9</Id></Othr><IBAN>DE89370400440532013000</IBAN></Nm>"
            "<Id><Othr><Id>1</Id><Issr>I</Issr></Othr></Id></CdtrAcct>"
        ),
    },
    "two schemes codes": {
        "CdtrAcct": (
            "<CdtrAcct><Id><Othr><Id>1</Id><SchmeNm><Prtry>P1</Prtry><Cd>C1</Cd><Cd>C2</Cd>"
            "<Prtry>P2</Prtry></SchmeNm></Othr></Id></CdtrAcct>"
        ),
    },
}


def _document(transactions: list[str], namespace: str | None = V09) -> etree._Element:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    body = "".join(f"<CdtTrfTxInf>{tx}</CdtTrfTxInf>" for tx in transactions)
    return etree.fromstring(
        f"<Document{xmlns}><CstmrCdtTrfInitn><GrpHdr><MsgId>M</MsgId>"
        "<CreDtTm>2026-11-20T09:00:00+07:00</CreDtTm><NbOfTxs>1</NbOfTxs></GrpHdr>"
        f"<PmtInf><PmtInfId>P</PmtInfId>{body}</PmtInf></CstmrCdtTrfInitn></Document>"
    )


def _transaction(changes: dict[str, str]) -> str:
    return "".join(changes.get(part, plain) for part, plain in PLAIN.items())


def _outcome(read: Callable[[], CreditTransfer]) -> CreditTransfer | str:
    """The transfer read, or the words of the refusal."""
    try:
        return read()
    except InvalidMessage as exc:
        return f"refused: {exc}"


def _assert_same_transfers(root: etree._Element) -> int:
    """Every transaction of every PmtInf read both ways, the same; returns how many."""
    root = document_of(root)
    ns = namespace_of(root)
    fast = _transaction_reader(ns)
    count = 0
    for pmt in root.iter(f"{{{ns}}}PmtInf" if ns else "PmtInf"):
        for tx in findall(pmt, ns, "CdtTrfTxInf"):
            expected = _outcome(lambda tx=tx: _read_transaction_by_paths(tx, ns, "P", "BBAN:1"))
            assert _outcome(lambda tx=tx: fast(tx, "P", "BBAN:1")) == expected
            count += 1
    return count


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("namespace", [V09, None])
def test_odd_and_broken_transactions_read_or_refused_as_the_generic_reader(
    case: str, namespace: str | None
) -> None:
    root = _document([_transaction(CASES[case])], namespace)
    assert _assert_same_transfers(root) == 1


def test_the_refusals_name_what_is_wrong() -> None:
    """A sample of the refusals, worded as before (the transaction's line, the path)."""
    refused = {
        "no EndToEndId": "line 1: PmtInf P: <PmtId/EndToEndId> is missing or empty",
        "no Amt": "transaction B0000001: <Amt/InstdAmt> (or <Amt/EqvtAmt/Amt>) is missing",
        "name too long": "<Nm> is 141 characters long; ISO 20022 allows 140",
        "bad currency": "transaction B0000001 <InstdAmt>: currency 'vnd' is not three capital",
    }
    for case, words in refused.items():
        with pytest.raises(InvalidMessage) as refusal:
            read_pain001(_document([_transaction(CASES[case])]))
        assert words in str(refusal.value)


def test_built_files_read_the_same(samples: Path) -> None:
    """The gateway's own files (.09 and .03, account forms) and third-party ones."""
    files = [
        build_pain001(benefits_batch(50)),
        build_pain001(benefits_batch(20), "pain.001.001.03"),
        build_pain001(
            batch(
                group([order(1), order(2, amount="12.5", currency="EUR")], "PMT-1"),
                group([order(3, name="Đỗ & <Minh>")], "PMT-2"),
            )
        ),
    ]
    files.extend(
        parse_xml((samples / name).read_bytes())
        for name in (
            "24_pain001_ch02_postfinance_muster.xml",
            "25_pain001_00103_lt_intl_usd.xml",
            "26_pain001_00109_cbprplus_with_apphdr.xml",
        )
    )
    assert sum(_assert_same_transfers(root) for root in files) > 70
    content = read_pain001(parse_xml(to_bytes(files[0])))
    assert len(content.transfers) == 50
