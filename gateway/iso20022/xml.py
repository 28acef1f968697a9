"""Hardened XML parsing and serialisation, and the element helpers the ISO 20022 modules share.

Every inbound document goes through `parse_xml`: no DTD, no entities, no network, no XInclude,
no huge trees, and a size cap checked before the parser sees a byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from lxml import etree

from gateway.domain.money import MINOR_UNITS, Money
from gateway.domain.orders import Account
from gateway.errors import InvalidMessage

DEFAULT_MAX_BYTES = 200 * 1024 * 1024

# One parser for the whole process; lxml serialises concurrent use of a parser internally.
PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    collect_ids=False,
)

_DOCTYPE_MARKERS = (b"<!DOCTYPE", "<!DOCTYPE".encode("utf-16-le"), "<!DOCTYPE".encode("utf-16-be"))
_LOCATION_SUFFIX = re.compile(r",? line \d+, column \d+$")


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse an untrusted document safely and return its root element."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidMessage(f"XML must be given as bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise InvalidMessage(f"document is {len(data)} bytes; the limit is {max_bytes}")
    if not data or data.isspace():
        raise InvalidMessage("document is empty")
    if any(marker in data for marker in _DOCTYPE_MARKERS):
        raise InvalidMessage("document has a DOCTYPE declaration; DTDs and entities are refused")
    try:
        root = etree.fromstring(bytes(data), PARSER)
    except etree.XMLSyntaxError as exc:
        message = _LOCATION_SUFFIX.sub("", str(exc.msg or exc))
        raise InvalidMessage(f"malformed XML at line {exc.lineno}: {message}") from None
    _refuse_dtd(root)
    return root


def _refuse_dtd(root: etree._Element) -> None:
    """Refuse a parsed document that declared a DTD or kept an entity reference."""
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise InvalidMessage("document has a DOCTYPE declaration; DTDs and entities are refused")
    for node in root.iter(etree.Entity, etree.PI):
        if isinstance(node, etree._ProcessingInstruction):
            # A PI splits an element's text (and survives C14N, so it can sit inside a signed
            # amount): no ISO 20022 message has one.
            raise InvalidMessage(
                f"processing instruction at line {node.sourceline}; payment files have none"
            )
        raise InvalidMessage("document uses an entity reference; entities are refused")


def to_bytes(root: etree._Element) -> bytes:
    """Serialise a document as UTF-8 with an XML declaration."""
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


# --- Tags and paths -----------------------------------------------------------------------------


def tags(namespace: str | None, names: Iterable[str]) -> dict[str, str]:
    """Namespaced tag names for `names`, computed once by the caller."""
    prefix = f"{{{namespace}}}" if namespace else ""
    return {name: prefix + name for name in names}


@lru_cache(maxsize=1024)
def qpath(namespace: str | None, path: str) -> str:
    """A slash-separated path of local names, each put in `namespace`."""
    if not namespace:
        return path
    return "/".join(f"{{{namespace}}}{step}" for step in path.split("/"))


def find(element: etree._Element, namespace: str | None, path: str) -> etree._Element | None:
    """The first element at `path` below `element`, or None."""
    found: etree._Element | None = element.find(qpath(namespace, path))
    return found


def findall(element: etree._Element, namespace: str | None, path: str) -> list[etree._Element]:
    """Every element at `path` below `element`."""
    return list(element.iterfind(qpath(namespace, path)))


def text(element: etree._Element | None, namespace: str | None, path: str) -> str | None:
    """The stripped text at `path`, or None when absent or empty."""
    if element is None:
        return None
    value = element.findtext(qpath(namespace, path))
    if value is None:
        return None
    value = value.strip()
    return value or None


def required_text(element: etree._Element, namespace: str | None, path: str, where: str) -> str:
    """The text at `path`; an InvalidMessage naming what is missing otherwise."""
    value = text(element, namespace, path)
    if value is None:
        raise InvalidMessage(
            f"line {element.sourceline or '?'}: {where}: <{path}> is missing or empty"
        )
    return value


def texts(element: etree._Element, namespace: str | None, path: str) -> list[str]:
    """The stripped, non-empty texts of every element at `path`."""
    found = (el.text.strip() for el in element.iterfind(qpath(namespace, path)) if el.text)
    return [value for value in found if value]


def code_or_proprietary(element: etree._Element | None, namespace: str | None) -> str | None:
    """The `Cd` of a code-or-proprietary choice, else its `Prtry`."""
    if element is None:
        return None
    return text(element, namespace, "Cd") or text(element, namespace, "Prtry")


# --- Values ------------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_datetime(value: str, where: str) -> datetime:
    """An ISO 8601 date-time as ISO 20022 writes it (offset optional, any fraction digits)."""
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    except ValueError:
        raise InvalidMessage(f"{where}: {value!r} is not an ISO date-time") from None


def parse_date(value: str, where: str) -> date:
    """An ISO date, or the date part of an ISO date-time."""
    value = value.strip()
    try:
        return date.fromisoformat(value[:10]) if "T" in value else date.fromisoformat(value)
    except ValueError:
        raise InvalidMessage(f"{where}: {value!r} is not an ISO date") from None


def date_choice(element: etree._Element | None, namespace: str | None, where: str) -> date | None:
    """The date of a DateAndDateTime choice (`Dt` or `DtTm`), or None when absent."""
    if element is None:
        return None
    value = text(element, namespace, "Dt") or text(element, namespace, "DtTm")
    return parse_date(value, where) if value else None


def parse_amount(value: str, where: str) -> Decimal:
    """A decimal amount exactly as written."""
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise InvalidMessage(f"{where}: {value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise InvalidMessage(f"{where}: {value!r} is not a decimal amount")
    return amount


def wire_amount(amount: Decimal, currency: str) -> str:
    """An amount written with exactly its currency's minor units; excess decimals are refused."""
    if currency not in MINOR_UNITS:
        return format(amount, "f")
    return Money.parse(format(amount, "f"), currency).wire()


def format_datetime(value: datetime, where: str) -> str:
    """An ISO date-time with its UTC offset, to the second."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidMessage(f"{where}: {value.isoformat()} has no time zone")
    return value.isoformat(timespec="seconds")


# --- Accounts ----------------------------------------------------------------------------------

# ExternalAccountIdentification1Code: the only account schemes written as `Cd`.
ISO_ACCOUNT_SCHEMES = frozenset({"AIIN", "BBAN", "CUID", "UPIC"})
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Za-z0-9]{1,30}")


def account_from_key(key: str) -> Account:
    """The account an `account_key` string stands for: IBAN, `SCHEME:number` or a bare number."""
    if _IBAN.fullmatch(key):
        return Account(iban=key)
    scheme, sep, number = key.partition(":")
    if sep and scheme and number:
        return Account(number=number, scheme=scheme)
    return Account(number=key)


def account_key(account: Account) -> str:
    """One string for an account: the IBAN, `SCHEME:number`, or the number when it has no scheme."""
    if account.iban:
        return account.iban
    if not account.number:
        raise InvalidMessage("account has neither an IBAN nor a number")
    return f"{account.scheme}:{account.number}" if account.scheme else account.number


def read_account(cash_account: etree._Element | None, namespace: str | None) -> str | None:
    """The `account_key` of a CashAccount element (`Id/IBAN` or `Id/Othr`), or None."""
    if cash_account is None:
        return None
    iban = text(cash_account, namespace, "Id/IBAN")
    if iban:
        return iban
    number = text(cash_account, namespace, "Id/Othr/Id")
    if number is None:
        return None
    scheme = code_or_proprietary(find(cash_account, namespace, "Id/Othr/SchmeNm"), namespace)
    return account_key(Account(number=number, scheme=scheme))


def add_account(parent: etree._Element, tag: dict[str, str], account: Account) -> None:
    """Write `Id/IBAN`, or `Id/Othr/Id` with its scheme as `Cd` (an ISO code) or `Prtry`."""
    sub = etree.SubElement
    ident = sub(parent, tag["Id"])
    if account.iban:
        sub(ident, tag["IBAN"]).text = account.iban
        return
    if not account.number:
        raise InvalidMessage("account has neither an IBAN nor a number")
    other = sub(ident, tag["Othr"])
    sub(other, tag["Id"]).text = account.number
    if account.scheme:
        kind = "Cd" if account.scheme in ISO_ACCOUNT_SCHEMES else "Prtry"
        sub(sub(other, tag["SchmeNm"]), tag[kind]).text = account.scheme


ACCOUNT_TAGS = ("Id", "IBAN", "Othr", "SchmeNm", "Cd", "Prtry")
