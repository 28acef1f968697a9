"""Hardened XML parsing and serialisation, and the element helpers the ISO 20022 modules share.

Every inbound document goes through `parse_xml`: no DTD, no entities, no network, no XInclude,
no huge trees, a size cap checked before the parser sees a byte, and the partner's structural
limits checked by a streaming pass (`limits.check_limits`) before any tree is built.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from lxml import etree

from gateway.domain.money import MINOR_UNITS, Money
from gateway.domain.orders import Account
from gateway.errors import InvalidMessage
from gateway.iso20022.limits import DEFAULT_LIMITS, InboundLimits, check_limits

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


def parse_xml(
    data: bytes, *, limits: InboundLimits = DEFAULT_LIMITS, max_bytes: int | None = None
) -> etree._Element:
    """Parse an untrusted document safely, within `limits`, and return its root element.

    `max_bytes`, when given, narrows the limits' size (a detached signature is small).
    """
    if max_bytes is not None and max_bytes < limits.max_bytes:
        limits = replace(limits, max_bytes=max_bytes)
    precheck(data, limits)
    check_limits(data, limits)
    return parse_checked(data)


def precheck(data: bytes, limits: InboundLimits) -> None:
    """The checks before the streaming pass: bytes, within the size limit, not empty, no DTD."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidMessage(f"XML must be given as bytes, got {type(data).__name__}")
    if len(data) > limits.max_bytes:
        raise InvalidMessage(
            f"document is {len(data)} bytes; the limit is {limits.max_bytes} (limit max_bytes)"
        )
    if not data or data.isspace():
        raise InvalidMessage("document is empty")
    if any(marker in data for marker in _DOCTYPE_MARKERS):
        raise InvalidMessage("document has a DOCTYPE declaration; DTDs and entities are refused")


def parse_checked(data: bytes) -> etree._Element:
    """The tree of a document that already passed `precheck` and the streaming limits pass."""
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


# The declaration lxml writes before a document serialised as UTF-8.
XML_DECLARATION = b"<?xml version='1.0' encoding='UTF-8'?>\n"


def to_bytes(root: etree._Element) -> bytes:
    """Serialise a document as UTF-8 with an XML declaration."""
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return data


def file_of(canonical: bytes) -> bytes:
    """The file of a document written as its canonical UTF-8 text (no declaration): the
    declaration, then the text. It is what `to_bytes` writes of the tree parsed from that text,
    but for character references: C14N writes a carriage return `&#xD;` (lxml `&#13;`), and in
    an attribute leaves `>` as it is and writes a tab or line end `&#x9;`, `&#xA;`."""
    return XML_DECLARATION + canonical


# --- Tags and paths -----------------------------------------------------------------------------


def tags(namespace: str | None, names: Iterable[str]) -> dict[str, str]:
    """Namespaced tag names for `names`, computed once by the caller."""
    prefix = f"{{{namespace}}}" if namespace else ""
    return {name: prefix + name for name in names}


@lru_cache(maxsize=1024)
def _steps(namespace: str | None, path: str) -> tuple[str, ...]:
    """The qualified tags of a slash-separated path of local names."""
    prefix = f"{{{namespace}}}" if namespace else ""
    return tuple(prefix + step for step in path.split("/"))


def _matches(element: etree._Element, steps: tuple[str, ...]) -> Iterator[etree._Element]:
    """The elements at `steps` below `element`, in document order (ElementPath's order for a
    path of child steps), found by lxml's own child iteration: a path is read on every
    entry of a 100,000-entry file, and ElementPath's parsing of it cost more than the read."""
    first, rest = steps[0], steps[1:]
    for child in element.iterchildren(first):
        if rest:
            yield from _matches(child, rest)
        else:
            yield child


def find(element: etree._Element, namespace: str | None, path: str) -> etree._Element | None:
    """The first element at `path` below `element`, or None."""
    steps = _steps(namespace, path)
    if len(steps) == 1:
        return next(element.iterchildren(steps[0]), None)
    return next(_matches(element, steps), None)


def findall(element: etree._Element, namespace: str | None, path: str) -> list[etree._Element]:
    """Every element at `path` below `element`."""
    return list(_matches(element, _steps(namespace, path)))


class Picker:
    """The elements at several child paths of an element, found in one walk over its children.

    A reader that takes a dozen paths from each of 100,000 entries walks each entry once here
    instead of once per path; what it finds is what `find`, `findall`, `text` and `texts` find
    (the same elements, in document order).
    """

    def __init__(self, namespace: str | None, paths: Iterable[str]) -> None:
        # qualified tag -> (the path ending here or None, the steps below)
        self._trie: dict[str, tuple[list[str | None], dict[str, Any]]] = {}
        for path in paths:
            node = self._trie
            steps = _steps(namespace, path)
            for index, tag in enumerate(steps):
                entry = node.setdefault(tag, ([None], {}))
                if index == len(steps) - 1:
                    entry[0][0] = path
                node = entry[1]

    def pick(self, element: etree._Element) -> Picked:
        """What `element` holds at the picker's paths."""
        found: dict[str, list[etree._Element]] = {}
        _walk(element, self._trie, found)
        return Picked(element, found)


@lru_cache(maxsize=256)
def picker(namespace: str | None, paths: tuple[str, ...]) -> Picker:
    """The `Picker` of these paths in this namespace (made once)."""
    return Picker(namespace, paths)


def _walk(
    element: etree._Element,
    trie: dict[str, tuple[list[str | None], dict[str, Any]]],
    found: dict[str, list[etree._Element]],
) -> None:
    for child in element:
        entry = trie.get(child.tag)  # a comment's tag is a function: never in the trie
        if entry is None:
            continue
        path = entry[0][0]
        if path is not None:
            found.setdefault(path, []).append(child)
        if entry[1]:
            _walk(child, entry[1], found)


class Picked:
    """The elements a `Picker` found, by path."""

    __slots__ = ("_element", "_found")

    def __init__(self, element: etree._Element, found: dict[str, list[etree._Element]]) -> None:
        self._element = element
        self._found = found

    def first(self, path: str) -> etree._Element | None:
        """As `find`: the first element at `path`, or None."""
        elements = self._found.get(path)
        return elements[0] if elements else None

    def all(self, path: str) -> list[etree._Element]:
        """As `findall`: every element at `path`."""
        return self._found.get(path, [])

    def one(self, path: str) -> bool:
        """Whether exactly one element is at `path`: then what was picked below it is what a
        pick of that element finds (the `*_in` readers rely on it, and read the element alone
        otherwise)."""
        return len(self._found.get(path, ())) == 1

    def text(self, path: str) -> str | None:
        """As `text`: the first element's stripped text, held to its ISO length, or None."""
        elements = self._found.get(path)
        return element_text(elements[0], path.rsplit("/", 1)[-1]) if elements else None

    def required(self, path: str, where: str) -> str:
        """As `required_text`: the text, or an InvalidMessage naming what is missing."""
        value = self.text(path)
        if value is None:
            raise InvalidMessage(
                f"line {self._element.sourceline or '?'}: {where}: <{path}> is missing or empty"
            )
        return value

    def texts(self, path: str) -> list[str]:
        """As `texts`."""
        name = path.rsplit("/", 1)[-1]
        found = (
            _within_length(el, el.text.strip(), name) for el in self._found.get(path, ()) if el.text
        )
        return [value for value in found if value]


# ISO 20022 lengths of the texts the readers take (Max35Text ids, Max140Text names, ...), by
# element name; any other text is held to MAX_TEXT_LENGTH. A longer value is refused, not cut.
_MAX35 = [
    "MsgId",
    "EndToEndId",
    "InstrId",
    "PmtInfId",
    "TxId",
    "RtrId",
    "AcctSvcrRef",
    "NtryRef",
    "OrgnlMsgId",
    "OrgnlMsgNmId",
    "OrgnlPmtInfId",
    "OrgnlInstrId",
    "OrgnlEndToEndId",
    "OrgnlTxId",
    "Id",
    "Prtry",
    "Cd",
    "Ref",
    "BizMsgIdr",
    "MsgDefIdr",
    "BizSvc",
    "Sts",
    "GrpSts",
    "PmtInfSts",
    "TxSts",
    "CdtDbtInd",
    "SubFmlyCd",
    "NbOfTxs",
    "ElctrncSeqNb",
]
MAX_LENGTHS = {
    **dict.fromkeys(_MAX35, 35),
    "IBAN": 34,
    "BICFI": 11,
    "BIC": 11,
    "Nm": 140,
    "Ustrd": 140,
    "AddtlInf": 105,
}
MAX_TEXT_LENGTH = 2048


def text(element: etree._Element | None, namespace: str | None, path: str) -> str | None:
    """The stripped text at `path`, or None when absent or empty; refused when longer than
    ISO 20022 allows for that element."""
    if element is None:
        return None
    return element_text(find(element, namespace, path), path.rsplit("/", 1)[-1])


def element_text(element: etree._Element | None, name: str) -> str | None:
    """`text` of an element already found (`name` its local name): the stripped text, held to
    the ISO length of `name`, or None when absent or empty."""
    if element is None:
        return None
    value = element.text
    if value is None:
        return None
    return _within_length(element, value.strip(), name) or None


def _within_length(element: etree._Element, value: str, name: str) -> str:
    limit = MAX_LENGTHS.get(name, MAX_TEXT_LENGTH)
    if len(value) > limit:
        raise InvalidMessage(
            f"line {element.sourceline or '?'}: <{name}> is {len(value)} characters long;"
            f" ISO 20022 allows {limit}"
        )
    return value


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
    name = path.rsplit("/", 1)[-1]
    found = (
        _within_length(el, el.text.strip(), name)
        for el in _matches(element, _steps(namespace, path))
        if el.text
    )
    return [value for value in found if value]


def code_or_proprietary(element: etree._Element | None, namespace: str | None) -> str | None:
    """The `Cd` of a code-or-proprietary choice, else its `Prtry`."""
    if element is None:
        return None
    at = picker(namespace, ("Cd", "Prtry")).pick(element)
    return at.text("Cd") or at.text("Prtry")


def code_or_proprietary_in(at: Picked, path: str, namespace: str | None) -> str | None:
    """As `code_or_proprietary(at.first(path))`, from `path/Cd` and `path/Prtry` picked with it."""
    if not at.one(path):
        return code_or_proprietary(at.first(path), namespace)
    return at.text(f"{path}/Cd") or at.text(f"{path}/Prtry")


# --- Values ------------------------------------------------------------------------------------
# The readers enforce ISO 20022's value rules themselves, whether or not an XSD is installed
# (pacs.004 and pain.002.001.10 are read without one, and `parse --no-validate` reads any file).

_FRACTION = re.compile(r"(\.\d{6})\d+")
# ISODateTime / ISODate as ISO 20022 writes them: ASCII digits, an optional fraction and offset.
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?")
# Dates a bank file may carry; anything outside is a fault (and year 1 overflows with an offset).
FIRST_YEAR, LAST_YEAR = 1970, 2999
# ActiveOrHistoricCurrencyAndAmount: at most 18 digits, 5 of them after the point, never
# negative, no exponent. DecimalNumber (CtrlSum) allows 17 fraction digits.
_AMOUNT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,17})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
AMOUNT_DIGITS = 18
AMOUNT_FRACTION_DIGITS = 5


def _in_range(year: int, value: str, where: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise InvalidMessage(
            f"{where}: {shown(value)} is out of range (years {FIRST_YEAR} to {LAST_YEAR})"
        )


def parse_datetime(value: str, where: str) -> datetime:
    """An ISO 8601 date-time as ISO 20022 writes it (offset optional, any fraction digits)."""
    value = value.strip()
    if not _DATETIME.fullmatch(value):
        raise InvalidMessage(f"{where}: {shown(value)} is not an ISO date-time")
    _in_range(int(value[:4]), value, where)
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value))
    except ValueError:
        raise InvalidMessage(f"{where}: {shown(value)} is not an ISO date-time") from None
    offset = moment.utcoffset()
    if offset is not None and abs(offset.total_seconds()) > 14 * 3600:
        raise InvalidMessage(f"{where}: {shown(value)} has an offset beyond ±14:00")
    return moment


def parse_date(value: str, where: str) -> date:
    """An ISO date, or the date part of an ISO date-time."""
    value = value.strip()
    if "T" in value:
        return parse_datetime(value, where).date()
    if not _DATE.fullmatch(value):
        raise InvalidMessage(f"{where}: {shown(value)} is not an ISO date")
    _in_range(int(value[:4]), value, where)
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise InvalidMessage(f"{where}: {shown(value)} is not an ISO date") from None


def date_choice(element: etree._Element | None, namespace: str | None, where: str) -> date | None:
    """The date of a DateAndDateTime choice (`Dt` or `DtTm`), or None when absent."""
    if element is None:
        return None
    at = picker(namespace, ("Dt", "DtTm")).pick(element)
    value = at.text("Dt") or at.text("DtTm")
    return parse_date(value, where) if value else None


def date_choice_in(at: Picked, path: str, namespace: str | None, where: str) -> date | None:
    """As `date_choice(at.first(path))`, from `path/Dt` and `path/DtTm` picked with it."""
    if not at.one(path):
        return date_choice(at.first(path), namespace, where)
    value = at.text(f"{path}/Dt") or at.text(f"{path}/DtTm")
    return parse_date(value, where) if value else None


def parse_amount(
    value: str, where: str, *, fraction_digits: int = AMOUNT_FRACTION_DIGITS
) -> Decimal:
    """A decimal amount exactly as written, by ISO 20022's rules: plain ASCII digits with an
    optional point, no sign, no exponent, at most 18 digits of which `fraction_digits` after
    the point."""
    value = value.strip()
    if not _AMOUNT.fullmatch(value):
        raise InvalidMessage(
            f"{where}: {shown(value)} is not an amount (digits with an optional decimal point;"
            " no sign, no exponent)"
        )
    whole, _, fraction = value.partition(".")
    if len(fraction) > fraction_digits:
        raise InvalidMessage(
            f"{where}: {shown(value)} has {len(fraction)} fraction digits; at most"
            f" {fraction_digits} are allowed"
        )
    if len(whole.lstrip("0")) + len(fraction) > AMOUNT_DIGITS:
        raise InvalidMessage(f"{where}: {shown(value)} has more than {AMOUNT_DIGITS} digits")
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise InvalidMessage(f"{where}: {shown(value)} is not a decimal amount") from None


def parse_currency(value: str | None, where: str) -> str:
    """An ISO 4217 alphabetic code: three upper-case letters."""
    if not value or not _CURRENCY.fullmatch(value):
        raise InvalidMessage(f"{where}: currency {shown(value or '')} is not three capital letters")
    return value


def shown(value: str, limit: int = 40) -> str:
    """A value from a file as a reason may quote it: repr'd, and cut after `limit` characters."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


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


_ACCOUNT_PATHS = ("Id/IBAN", "Id/Othr/Id", "Id/Othr/SchmeNm")


def read_account(cash_account: etree._Element | None, namespace: str | None) -> str | None:
    """The `account_key` of a CashAccount element (`Id/IBAN` or `Id/Othr`), or None."""
    if cash_account is None:
        return None
    at = picker(namespace, _ACCOUNT_PATHS).pick(cash_account)
    iban = at.text("Id/IBAN")
    if iban:
        return iban
    number = at.text("Id/Othr/Id")
    if number is None:
        return None
    scheme = code_or_proprietary(at.first("Id/Othr/SchmeNm"), namespace)
    return account_key(Account(number=number, scheme=scheme))


def account_paths(path: str) -> tuple[str, ...]:
    """The paths `read_account_in` reads below a CashAccount at `path`, for a `Picker`."""
    return (
        path,
        *(f"{path}/{below}" for below in _ACCOUNT_PATHS),
        f"{path}/Id/Othr/SchmeNm/Cd",
        f"{path}/Id/Othr/SchmeNm/Prtry",
    )


def read_account_in(at: Picked, path: str, namespace: str | None) -> str | None:
    """As `read_account(at.first(path))`, from the `account_paths(path)` picked with it."""
    if not at.one(path):
        return read_account(at.first(path), namespace)
    iban = at.text(f"{path}/Id/IBAN")
    if iban:
        return iban
    number = at.text(f"{path}/Id/Othr/Id")
    if number is None:
        return None
    scheme = code_or_proprietary_in(at, f"{path}/Id/Othr/SchmeNm", namespace)
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
