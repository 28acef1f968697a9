"""The corpus's second half: what a file costs before it is trusted, when trust is judged, what a
reader accepts without an XSD, whether an entry agrees with its details, and what a refusal may
echo back. Each case is built the way an attacker (or a broken bank) would build it; the ones
that need a valid signature are signed with the bank's key, as an insider or a compromised bank
system could.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from lxml import etree

from gateway.banksim.messages import ReturnLine, StatementBalances, build_camt053, build_pacs004
from gateway.iso20022.camt054 import build_camt054
from gateway.iso20022.model import Entry, EntryDetail, Notification
from gateway.iso20022.xml import to_bytes
from gateway.signing import KeyPair, sign

CAMT054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
HEAD = f'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="{CAMT054}">'.encode()
MIB = 1024 * 1024

Add = Callable[..., None]


def _sub(data: bytes, old: bytes, new: bytes) -> bytes:
    """`data` with the first `old` replaced (which must be there)."""
    assert old in data, old
    return data.replace(old, new, 1)


def copied_signature(signed_file: bytes) -> bytes:
    """The ds:Signature of a genuine bank file, as bytes to paste into another file."""
    start = signed_file.index(b"<ds:Signature")
    end = signed_file.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    return signed_file[start:end]


def with_signature(body: bytes, signature: bytes) -> bytes:
    """A camt.054-looking document holding `body` and a signature copied from a genuine file:
    it passes every shape check, so only the cheap limits stand before the expensive work."""
    return HEAD + body + signature + b"</Document>"


def build_more(
    add: Add,
    keys: object,
    counter: Iterator[int],
    notification: Callable[..., etree._Element],
    at: datetime,
) -> None:
    """Add every case of the second half through `add` (see `corpus.build`)."""
    bank: KeyPair = keys.bank  # type: ignore[attr-defined]

    def signed(n: int | None = None, **kw: object) -> bytes:
        return sign(notification(next(counter) if n is None else n, **kw), bank)

    genuine = copied_signature(signed())
    _limits(add, genuine, signed)
    _parser(add, signed)
    _trust(add, keys, counter, notification, at)
    _values(add, bank, counter, at)
    _consistency(add, bank, counter, at)
    _echo(add, bank, counter, at, signed)


def _limits(add: Add, genuine: bytes, signed: Callable[..., bytes]) -> None:
    """Files built to be expensive, each carrying a genuine signature copied from a bank file."""
    many = b" ".join(b'a%d="1"' % i for i in range(40_000))
    add(
        "attributes-40k",
        "limits",
        "one element with 40,000 attributes (0.4 MB), a copied genuine signature",
        with_signature(b"<GrpHdr " + many + b"/>", genuine),
        r"<GrpHdr> has 40000 attributes; the limit is 16 \(limit max_attributes\)",
    )
    many = b" ".join(b'a%d="1"' % i for i in range(300_000))
    add(
        "attributes-300k",
        "limits",
        "one element with 300,000 attributes (3.6 MB): refused before its tag ends",
        with_signature(b"<GrpHdr " + many + b"/>", genuine),
        r"a single tag or comment longer than 1048576 bytes",
    )
    add(
        "attributes-utf16",
        "limits",
        "40,000 attributes in a UTF-16 document",
        with_signature(b"<GrpHdr " + b" ".join(b'a%d="1"' % i for i in range(40_000)) + b"/>", b"")
        .replace(b'encoding="UTF-8"', b'encoding="UTF-16"')
        .decode()
        .encode("utf-16"),
        r"has 40000 attributes",
    )
    add(
        "prefixed-flood",
        "limits",
        "200,000 elements each declaring and using its own prefix, with a copied signature",
        with_signature(b"".join(b'<p:a xmlns:p="urn:p%d"/>' % i for i in range(200_000)), genuine),
        # Not in plain layout, and over what the streaming pass reads before trust: refused at
        # C speed by the general pass's bound.
        r"not in plain canonical layout .*\(limit max_nodes_general\)",
    )
    add(
        "nesting-250x2000",
        "limits",
        "250 blocks of 2,000 nested elements (2 MB)",
        with_signature((b"<a>" * 2000 + b"</a>" * 2000) * 250, genuine),
        r"elements nested deeper than 48 \(limit max_depth\)",
    )
    add(
        "nesting-in-signature",
        "limits",
        "100 levels nested inside the signature's KeyInfo",
        with_signature(
            b"<GrpHdr/>",
            genuine.replace(b"<ds:KeyName>", b"<ds:X>" * 100 + b"</ds:X>" * 100 + b"<ds:KeyName>"),
        ),
        r"limit max_depth",
    )
    add(
        "empty-elements-20mb",
        "limits",
        "20 MB of empty elements (5.2 million)",
        with_signature(b"<a/>" * (5 * MIB + 100_000), genuine),
        r"more than 5000000 elements \(limit max_elements\)",
    )
    add(
        "size-190mb",
        "limits",
        "a 190 MB file (under the former 200 MiB cap, over the partner's 128 MiB)",
        with_signature(b"<Ustrd>" + b"x" * (190 * 1000 * 1000) + b"</Ustrd>", genuine),
        r"document is 19\d{7} bytes; the limit is 134217728 \(limit max_bytes\)",
    )
    add(
        "text-10mb",
        "limits",
        "a 10 MB remittance text",
        with_signature(b"<Ustrd>" + b"x" * (10 * MIB) + b"</Ustrd>", genuine),
        r"a text of more than 65536 characters \(limit max_text\)",
    )
    add(
        "cdata-10mb",
        "limits",
        "a 10 MB CDATA section",
        with_signature(b"<Ustrd><![CDATA[" + b"x" * (10 * MIB) + b"]]></Ustrd>", genuine),
        r"limit max_text",
    )
    add(
        "text-in-pieces",
        "limits",
        "one text of 100,000 characters written as 10,000 character references",
        with_signature(b"<Ustrd>" + b"&#120;" * 10_000 + b"y" * 90_000 + b"</Ustrd>", genuine),
        r"limit max_text",
    )
    add(
        "attribute-1mb",
        "limits",
        "a 1 MB Ccy attribute",
        with_signature(b'<Amt Ccy="' + b"V" * MIB + b'">1</Amt>', genuine),
        r"attribute Ccy of <Amt> is 1048576 characters; the limit is 2048",
    )
    add(
        "element-name-1mb",
        "limits",
        "an element name of 1 MB",
        with_signature(b"<" + b"N" * MIB + b"/>", genuine),
        r"an element name of 1048576 characters; the limit is 256",
    )
    add(
        "attribute-name-100kb",
        "limits",
        "an attribute name of 100 kB",
        with_signature(b"<GrpHdr " + b"n" * 100_000 + b'="1"/>', genuine),
        r"an attribute name of 100000 characters",
    )
    add(
        "namespace-declarations",
        "limits",
        "200 namespace declarations on the root",
        HEAD.replace(
            b"<Document ",
            b"<Document " + b" ".join(b'xmlns:p%d="urn:p:%d"' % (i, i) for i in range(200)) + b" ",
        )
        + genuine
        + b"</Document>",
        r"<Document> has 201 attributes",
    )
    add(
        "key-name-5mb",
        "limits",
        "a 5 MB KeyName",
        re.sub(rb"<ds:KeyName>[^<]*", b"<ds:KeyName>" + b"K" * (5 * MIB), signed(), count=1),
        r"limit max_text",
    )
    add(
        "certificate-5mb",
        "limits",
        "a 5 MB X509Certificate",
        re.sub(
            rb"<ds:X509Certificate>[^<]*",
            b"<ds:X509Certificate>" + b"QUJD" * (5 * MIB // 4),
            signed(),
            count=1,
        ),
        r"limit max_text",
    )
    add(
        "signature-value-1mb",
        "limits",
        "a 1 MB SignatureValue",
        re.sub(
            rb"<ds:SignatureValue>[^<]*",
            b"<ds:SignatureValue>" + b"QUJD" * (MIB // 4),
            signed(),
            count=1,
        ),
        r"limit max_text",
    )


def _parser(add: Add, signed: Callable[..., bytes]) -> None:
    """Around the root, and files a streaming parser meets before any tree."""
    data = signed()
    add(
        "pi-before-root",
        "parser",
        "a processing instruction before the root of a signed file",
        _sub(data, b"?>\n", b"?>\n<?xml-stylesheet href='x.xsl'?>"),
        r"processing instruction; payment files have none",
    )
    data = signed()
    add(
        "comment-after-root",
        "parser",
        "a comment after the root of a signed file",
        data + b"<!-- approved by the bank -->",
        r"comment after the document's root element",
    )
    data = signed()
    add(
        "comment-before-root",
        "parser",
        "a comment before the root of a signed file",
        _sub(data, b"?>\n", b"?>\n<!-- x -->"),
        r"comment before the document's root element",
    )
    data = signed()
    add(
        "unknown-encoding",
        "parser",
        "an encoding nobody knows (x-bogus-8)",
        _sub(data, b"encoding='UTF-8'", b"encoding='x-bogus-8'"),
        r"malformed XML at line 1: unknown encoding",
    )
    data = signed()
    add(
        "latin1-redeclared",
        "parser",
        "a genuine signed file re-declared ISO-8859-1 (its signature still verifies by bytes)",
        _sub(data, b"encoding='UTF-8'", b"encoding='ISO-8859-1'"),
        r"a signed file is read in UTF-8 only; this one declares encoding 'ISO-8859-1'",
    )
    data = signed()
    add(
        "xml-1.1",
        "parser",
        "a genuine signed file re-declared XML 1.1 (other line ends and characters)",
        _sub(data, b"version='1.0'", b"version='1.1'"),
        r"a signed file is XML 1.0; this one declares version '1.1'",
    )
    data = signed()
    add(
        "truncated",
        "parser",
        "a signed file cut in half",
        data[: len(data) // 2],
        r"malformed XML at line \d+",
    )
    data = signed()
    add(
        "nul-byte",
        "parser",
        "a NUL character inside a signed amount",
        _sub(data, b">540000<", b">540\x00000<"),
        r"malformed XML at line \d+",
    )


def _trust(
    add: Add,
    keys: object,
    counter: Iterator[int],
    notification: Callable[..., etree._Element],
    at: datetime,
) -> None:
    """Trust judged at receipt; the stated creation time within the partner's tolerance."""
    bank: KeyPair = keys.bank  # type: ignore[attr-defined]
    expired: KeyPair = keys.expired  # type: ignore[attr-defined]

    def dated(created: datetime, pair: KeyPair = bank) -> bytes:
        return sign(notification(next(counter), created=created), pair)

    add(
        "expired-certificate-backdated",
        "trust",
        "a certificate expired on 2025-01-01 signing a new file dated 2024-06-01",
        dated(datetime(2024, 6, 1, tzinfo=UTC), expired),
        r"certificate [0-9a-f]{16} is expired at receipt",
        partner="bank-old",
    )
    add(
        "pin-window-backdated",
        "trust",
        "a pin window ended on 2026-06-30, a file dated 2026-06-01",
        dated(datetime(2026, 6, 1, tzinfo=UTC)),
        r"is expired at receipt .* \(trusted 2024-01-01 00:00 to 2026-06-30 00:00 UTC\)",
        partner="bank-window",
    )
    add(
        "backdated-file",
        "trust",
        "a genuine file dated 2023-06-01 (before its certificate)",
        dated(datetime(2023, 6, 1, tzinfo=UTC)),
        r"created 2023-06-01 00:00 UTC, more than 168 hours before its receipt",
    )
    add(
        "stale-file",
        "trust",
        "a genuine file created eight days before its receipt (a replay)",
        dated(at - timedelta(days=8)),
        r"more than 168 hours before its receipt .*\(limit max_age_hours\)",
    )
    add(
        "future-file",
        "trust",
        "a genuine file dated one day ahead",
        dated(at + timedelta(days=1)),
        r"more than 15 minutes after its receipt .*\(limit max_ahead_minutes\)",
    )

    def stated(value: str) -> bytes:
        root = notification(next(counter), created=at)
        for element in root.iter("{*}CreDtTm"):
            element.text = value
        return sign(root, bank)

    add(
        "year-0001",
        "trust",
        "a genuine file stating CreDtTm 0001-01-01T00:00:00 (an OverflowError once)",
        stated("0001-01-01T00:00:00"),
        r"CreDtTm: '0001-01-01T00:00:00' is out of range",
    )
    add(
        "year-9999",
        "trust",
        "a genuine file stating CreDtTm 9999-12-31T23:59:59+14:00",
        stated("9999-12-31T23:59:59+14:00"),
        r"CreDtTm: '9999-12-31T23:59:59\+14:00' is out of range",
    )
    add(
        "offset-25h",
        "trust",
        "a genuine file stating a CreDtTm offset of +25:00",
        stated("2026-11-10T09:00:00+25:00"),
        r"CreDtTm: .* (offset|not an ISO date-time)",
    )
    add(
        "certificate-not-yet-valid",
        "trust",
        "a pinned certificate whose window opens next month",
        dated(at),
        r"is not yet valid at receipt",
        partner="bank-next",
    )


def _return(bank: KeyPair, n: int, at: datetime, **changes: str) -> bytes:
    """A pacs.004.001.11 (read without an XSD) signed by the bank, with its values replaced."""
    line = ReturnLine(
        return_id=f"RTR-{n}",
        original_msg_id="KBNN-20261101-0001",
        original_end_to_end_id=f"SEC-E2E-{n}",
        amount=Decimal(540000),
        currency="VND",
        settlement_date=at.date(),
        reason_code="AC04",
        reason_text="Tài khoản đã đóng",
    )
    root = build_pacs004(f"SEC-RTR-{n:03d}", at, [line])
    for local, value in changes.items():
        if local == "Ccy":
            next(root.iter("{*}RtrdIntrBkSttlmAmt")).set("Ccy", value)
        else:
            next(root.iter(f"{{*}}{local}")).text = value
    # As .001.11, a version read without an XSD: the reader's own rules are all that stand.
    data = to_bytes(root).replace(b"pacs.004.001.09", b"pacs.004.001.11")
    return sign(etree.fromstring(data), bank)


def _values(add: Add, bank: KeyPair, counter: Iterator[int], at: datetime) -> None:
    """ISO 20022 value rules in a file read without an XSD (pacs.004.001.11), signed by the
    bank."""
    amounts = (
        ("amount-abc", "abc", r"'abc' is not an amount"),
        ("amount-negative", "-540000", r"'-540000' is not an amount"),
        ("amount-exponent-huge", "1E+999999999999999999", r"is not an amount .*no exponent"),
        ("amount-exponent-300m", "1E+300000000", r"'1E\+300000000' is not an amount"),
        ("amount-lower-exponent", "5.4e5", r"is not an amount"),
        ("amount-nan", "NaN", r"'NaN' is not an amount"),
        ("amount-infinity", "Infinity", r"'Infinity' is not an amount"),
        ("amount-plus", "+540000", r"is not an amount"),
        ("amount-underscore", "540_000", r"is not an amount"),
        ("amount-fullwidth", "５４００００", r"is not an amount"),
        ("amount-19-digits", "1234567890123456789", r"is not an amount"),
        ("amount-6-decimals", "540000.123456", r"has 6 fraction digits; at most 5"),
        ("amount-empty-point", "540000.", r"is not an amount"),
    )
    for name, value, reason in amounts:
        add(
            name,
            "values",
            f"pacs.004 returned amount {value!r} (no XSD to catch it)",
            _return(bank, next(counter), at, RtrdIntrBkSttlmAmt=value),
            reason,
        )
    others = (
        ("currency-lower", {"Ccy": "vnd"}, r"currency 'vnd' is not three capital letters"),
        ("currency-four", {"Ccy": "VNDX"}, r"currency 'VNDX' is not three capital letters"),
        (
            "end-to-end-36",
            {"OrgnlEndToEndId": "E" * 36},
            r"<OrgnlEndToEndId> is 36 characters long; ISO 20022 allows 35",
        ),
        ("end-to-end-5mb", {"OrgnlEndToEndId": "E" * (5 * MIB)}, r"limit max_text"),
        (
            "end-to-end-60kb",
            {"OrgnlEndToEndId": "E" * 60_000},
            r"<OrgnlEndToEndId> is 60000 characters long",
        ),
        ("msg-id-36", {"MsgId": "M" * 36}, r"<MsgId> is 36 characters long"),
        ("return-id-36", {"RtrId": "R" * 36}, r"<RtrId> is 36 characters long"),
        (
            "settlement-year-0001",
            {"IntrBkSttlmDt": "0001-01-01"},
            r"IntrBkSttlmDt: '0001-01-01' is out of range",
        ),
        (
            "settlement-february-30",
            {"IntrBkSttlmDt": "2026-02-30"},
            r"IntrBkSttlmDt: '2026-02-30' is not an ISO date",
        ),
        ("reason-text-long", {"AddtlInf": "x" * 106}, r"<AddtlInf> is 106 characters long"),
    )
    for name, changes, reason in others:
        shown = ", ".join(f"{key} of {len(value)} characters" for key, value in changes.items())
        add(
            name,
            "values",
            f"pacs.004 with {shown}",
            _return(bank, next(counter), at, **changes),
            reason,
        )
    camt = to_bytes(_notification(next(counter), at, "540000", "VND", (("540000", "VND"),)))
    add(
        "camt054-amount-exponent",
        "values",
        "camt.054 amount 1E+300000000 (its XSD refuses it)",
        sign(etree.fromstring(camt.replace(b">540000<", b">1E+300000000<")), bank),
        r"fails its XSD",
    )


def _notification(
    n: int, at: datetime, amount: str, currency: str, details: tuple[tuple[str, str], ...]
) -> etree._Element:
    """A camt.054 for bank-a's account: one booked debit with the given details."""
    return build_camt054(
        Notification(
            msg_id=f"SEC-{n:03d}",
            created_at=at,
            account="7411058271001",
            entries=(
                Entry(
                    amount=Decimal(amount),
                    currency=currency,
                    credit_debit="DBIT",
                    status="BOOK",
                    booking_date=at.date(),
                    value_date=at.date(),
                    account_servicer_ref=f"SEC-REF-{n}",
                    details=tuple(
                        EntryDetail(
                            amount=Decimal(value),
                            currency=ccy,
                            end_to_end_id=f"SEC-E2E-{n}-{i}",
                        )
                        for i, (value, ccy) in enumerate(details)
                    ),
                ),
            ),
        )
    )


def _consistency(add: Add, bank: KeyPair, counter: Iterator[int], at: datetime) -> None:
    """camt.054 and camt.053 entries whose details say otherwise: kept unmatched, nothing
    settled."""
    cases = (
        (
            "entry-usd-detail-vnd",
            "a 540000 USD entry whose detail says 540000 VND",
            ("540000", "USD", (("540000", "VND"),)),
            r"is 540000(\.00)? USD but its detail 1 is in VND",
        ),
        (
            "entry-1-detail-540000",
            "a 1 VND entry whose detail says 540000 VND",
            ("1", "VND", (("540000", "VND"),)),
            r"is 1 VND but its 1 detail\(s\) add up to 540000 VND",
        ),
        (
            "details-over-entry",
            "a 540000 VND entry whose two details add up to 1080000",
            ("540000", "VND", (("540000", "VND"), ("540000", "VND"))),
            r"its 2 detail\(s\) add up to 1080000 VND",
        ),
    )
    for name, attack, (amount, currency, details), reason in cases:
        add(
            name,
            "consistency",
            attack,
            sign(_notification(next(counter), at, amount, currency, details), bank),
            reason,
            outcome="unmatched",
        )
    root = _notification(next(counter), at, "540000", "VND", (("540000", "VND"),))
    next(root.iter("{*}TxDtls")).find("{*}CdtDbtInd").text = "CRDT"  # type: ignore[union-attr]
    add(
        "detail-credit-entry-debit",
        "consistency",
        "a debit entry whose detail says it is a credit",
        sign(root, bank),
        r"is a DBIT but its detail 1 is a CRDT",
        outcome="unmatched",
    )
    n = next(counter)
    statement = build_camt053(
        Notification(
            msg_id=f"SEC-{n:03d}",
            created_at=at,
            account="7411058271001",
            entries=(
                Entry(
                    Decimal(1),
                    "VND",
                    "DBIT",
                    "BOOK",
                    at.date(),
                    at.date(),
                    f"SEC-REF-{n}",
                    (EntryDetail(Decimal(540000), "VND", f"SEC-E2E-{n}"),),
                ),
            ),
        ),
        f"SEC-STMT-{n}",
        StatementBalances(at.date(), Decimal(1_000_000), Decimal(999_999)),
    )
    add(
        "statement-entry-detail",
        "consistency",
        "a camt.053 entry of 1 VND whose detail says 540000 VND",
        sign(statement, bank),
        r"is 1 VND but its 1 detail\(s\) add up to 540000 VND",
        outcome="unmatched",
    )


def _echo(
    add: Add, bank: KeyPair, counter: Iterator[int], at: datetime, signed: Callable[..., bytes]
) -> None:
    """What a refusal may quote: bounded, on one line, control characters escaped."""
    add(
        "key-name-60kb",
        "echo",
        "a 60 kB KeyName naming no pinned key (quoted in the reason)",
        re.sub(
            rb"<ds:X509Data>.*</ds:X509Data>",
            b"",
            re.sub(rb"<ds:KeyName>[^<]*", b"<ds:KeyName>" + b"K" * 60_000, signed(), count=1),
            flags=re.DOTALL,
        ),
        r"key 'KKKK.*\.\.\.\(truncated\)$",
    )
    forged = b"http://www.w3.org/TR/1999/REC-xslt-19991116&#10;x.xml: valid camt.054.001.08"
    add(
        "transform-newline",
        "echo",
        "a Transform algorithm with &#10; forging a second, valid-looking output line",
        _sub(
            signed(),
            b"</ds:Transforms>",
            b'<ds:Transform Algorithm="' + forged + b'"/></ds:Transforms>',
        ),
        r"REC-xslt-19991116\\nx\.xml: valid camt\.054\.001\.08 refused",
    )
    add(
        "key-name-bidi",
        "echo",
        "a KeyName with a right-to-left override and a line separator",
        re.sub(
            rb"<ds:X509Data>.*</ds:X509Data>",
            b"",
            re.sub(
                rb"<ds:KeyName>[^<]*",
                "<ds:KeyName>\u202eabc\u2028def".encode(),
                signed(),
                count=1,
            ),
            flags=re.DOTALL,
        ),
        r"key '\\u202eabc\\u2028def' is not pinned",
    )
    add(
        "algorithm-2000",
        "echo",
        "a 2,000-character signature method URI",
        _sub(
            signed(),
            b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            b"http://e/" + b"a" * 1990,
        ),
        r"signature method 'http://e/aaaa.*\.\.\.\(truncated\)$",
    )
    add(
        "end-to-end-newline",
        "echo",
        "a returned end-to-end id with a line break (kept unmatched, escaped)",
        _return(bank, next(counter), at, OrgnlEndToEndId="A\nB\rC"),
        r"unknown payment A\\nB\\rC",
        outcome="unmatched",
    )
