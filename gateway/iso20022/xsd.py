"""XSD validation: one compiled schema per message version, loaded once and cached."""

from __future__ import annotations

import copy
import itertools
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from lxml import etree

from gateway import paths
from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022 import apphdr
from gateway.iso20022.namespaces import MessageType, message_type, namespace_of
from gateway.iso20022.xml import PARSER, shown

SCHEMAS_ENV = "GATEWAY_SCHEMAS_DIR"
MAX_REPORTED_ERRORS = 3

_cache: dict[tuple[Path, MessageType], etree.XMLSchema] = {}
_lock = threading.Lock()
_ELEMENT = re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: (.*)$", re.DOTALL)
_ROOT_STEP = re.compile(r"^/\*(\[\d+\])?")
_CLARK = re.compile(r"\{[^{}]*:[^{}]*\}")  # {namespace-uri}, not a pattern's {8}


def schemas_dir() -> Path:
    """Where the XSDs live (see `gateway.paths.schemas_dir`)."""
    return paths.schemas_dir()


def has_schema(kind: MessageType) -> bool:
    """True when the XSD of this message version is installed."""
    return (schemas_dir() / kind.schema_file).is_file()


def schema_for(kind: MessageType) -> etree.XMLSchema:
    """The compiled XSD of a message version, compiled on first use only."""
    key = (schemas_dir(), kind)
    schema = _cache.get(key)
    if schema is None:
        with _lock:
            schema = _cache.get(key)
            if schema is None:
                schema = _load(key[0] / kind.schema_file, kind)
                _cache[key] = schema
    return schema


def _load(path: Path, kind: MessageType) -> etree.XMLSchema:
    """Compile one XSD file, saying clearly when it is missing or broken."""
    if not path.is_file():
        raise ConfigError(f"no XSD for {kind.name_id}: {path} is missing")
    try:
        return etree.XMLSchema(etree.parse(str(path), PARSER))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigError(f"XSD {path} cannot be used: {exc}") from None


# Threads that check the pieces of one large document side by side (the calling thread one of
# them): libxml2 parses and validates without Python's lock, so each takes a core.
CHECK_THREADS = max(1, min(4, os.cpu_count() or 1))
# Compiled schemas lent to those threads, one to a thread at a time: an lxml validator keeps its
# error log on itself, so two threads never validate with the same one.
_spare: dict[tuple[Path, MessageType], list[etree.XMLSchema]] = {}

_XS = "{http://www.w3.org/2001/XMLSchema}"


@cache
def _splittable(path: Path, repeated: tuple[str, ...]) -> bool:
    """Whether the XSD at `path` lets a document be checked in pieces cut between elements
    named in `repeated`: each declared with maxOccurs unbounded, and no identity constraint
    (xs:unique, xs:key, xs:keyref) nor ID/IDREF type that would tie one piece to another."""
    try:
        tree = etree.parse(str(path), PARSER)
    except (OSError, etree.XMLSyntaxError):
        return False
    for name in ("unique", "key", "keyref"):
        if tree.find(f".//{_XS}{name}") is not None:
            return False
    types = {str(element.get("type", "")).split(":")[-1] for element in tree.iter(f"{_XS}element")}
    types |= {
        str(attribute.get("type", "")).split(":")[-1] for attribute in tree.iter(f"{_XS}attribute")
    }
    if types & {"ID", "IDREF", "IDREFS"}:
        return False
    declared = [
        element for element in tree.iter(f"{_XS}element") if element.get("name") in repeated
    ]
    named = {str(element.get("name")) for element in declared}
    return named == set(repeated) and all(
        element.get("maxOccurs") == "unbounded" for element in declared
    )


def splittable(kind: MessageType, repeated: tuple[str, ...]) -> bool:
    """Whether a document of this version is valid exactly when every piece of it is: a piece
    being the document with only some of its `repeated` elements (`_splittable`)."""
    return _splittable(schemas_dir() / kind.schema_file, repeated)


def all_valid(
    kind: MessageType,
    pieces: Sequence[Callable[[], bytes]],
    parse: Callable[[bytes], etree._Element],
) -> bool:
    """Whether every piece (a document's text, made when asked) parses and is valid against the
    XSD of `kind`, the pieces checked side by side on up to `CHECK_THREADS` threads, each tree
    let go once checked. Says only yes or no: the caller names a fault by validating the whole.
    """
    schema_for(kind)  # compiled (or its absence said) before any thread starts
    failed = threading.Event()
    numbers = itertools.count()
    valid: list[int] = []  # the pieces found valid: yes only when that is all of them

    def work() -> None:
        with _lent(kind) as schema:
            while not failed.is_set() and (number := next(numbers)) < len(pieces):
                try:
                    good = schema.validate(parse(pieces[number]()))
                except etree.XMLSyntaxError:
                    good = False
                if not good:
                    failed.set()
                    return
                valid.append(number)

    def helper() -> None:
        try:
            work()
        except BaseException:  # its pieces stay unchecked: the answer is no
            failed.set()

    helpers = [
        threading.Thread(target=helper, name=f"xsd-piece-{n}", daemon=True)
        for n in range(min(CHECK_THREADS, len(pieces)) - 1)
    ]
    for thread in helpers:
        thread.start()
    try:
        work()
    finally:
        for thread in helpers:
            thread.join()
    return len(valid) == len(pieces)


@contextmanager
def _lent(kind: MessageType) -> Iterator[etree.XMLSchema]:
    """A compiled schema of `kind` for one thread's use, returned to the spares after it."""
    key = (schemas_dir(), kind)
    with _lock:
        spares = _spare.setdefault(key, [])
        schema = spares.pop() if spares else None
    if schema is None:
        schema = _load(key[0] / kind.schema_file, kind)
    try:
        yield schema
    finally:
        with _lock:
            _spare[key].append(schema)


def validate(root: etree._Element) -> None:
    """Validate a document against the XSD of its namespace; raise InvalidMessage on failure.

    An envelope (see `gateway.iso20022.apphdr`) has its AppHdr and its Document validated
    separately, each against its own XSD.
    """
    if apphdr.is_envelope(root):
        header, document = apphdr.split(root)
        assert header is not None
        _validate_one(header)
        _validate_one(document)
        return
    _validate_one(root)


def _validate_one(root: etree._Element) -> None:
    kind = message_type(root)
    schema = schema_for(kind)
    subject = root if namespace_of(root) == kind.namespace else _renamed(root, kind.namespace)
    try:
        schema.assertValid(subject)
    except etree.DocumentInvalid as exc:
        errors = [_describe(entry, subject) for entry in list(exc.error_log)[:MAX_REPORTED_ERRORS]]
        raise InvalidMessage(f"{kind.name_id} fails its XSD: " + "; ".join(errors)) from None


def _renamed(root: etree._Element, namespace: str) -> etree._Element:
    """A copy of a national variant with its namespace replaced by the ISO base one."""
    old = namespace_of(root)
    clone = copy.deepcopy(root)
    for element in clone.iter(etree.Element):
        if etree.QName(element).namespace == old:
            element.tag = f"{{{namespace}}}{etree.QName(element).localname}"
    return clone


def _describe(entry: etree._LogEntry, root: etree._Element) -> str:
    """`line N: <element path>: <libxml2 message>` for one validation error."""
    found = _ELEMENT.match(entry.message)
    if found:
        name, attribute, message = found.groups()
        element = _CLARK.sub("", name)
    else:
        attribute, message, element = None, entry.message, "?"
    located = _element_at(root, entry.path)
    if located is not None:
        element = _readable_path(located, root) + _transaction_of(located)
    if attribute:
        element = f"{element}@{attribute}"
    message = _CLARK.sub("", message).strip()
    return f"line {entry.line}: {element}: {message}" if entry.line else f"{element}: {message}"


def _element_at(root: etree._Element, path: str | None) -> etree._Element | None:
    """The element libxml2's error path points at, when it can be resolved."""
    if not path:
        return None
    # libxml2 writes the path as if the validated element were the document root.
    relative = _ROOT_STEP.sub(".", path, count=1)
    try:
        result = root.xpath(relative)
    except etree.XPathError:
        return None
    if isinstance(result, list) and result and isinstance(result[0], etree._Element):
        return result[0]
    return None


def _transaction_of(element: etree._Element) -> str:
    """` (EndToEndId X)` when the element is in a credit transfer that has one, else ''."""
    node: etree._Element | None = element
    while node is not None and etree.QName(node).localname != "CdtTrfTxInf":
        node = node.getparent()
    if node is None:
        return ""
    ids = node.xpath("*[local-name()='PmtId']/*[local-name()='EndToEndId']/text()")
    return f" (EndToEndId {shown(str(ids[0]))})" if isinstance(ids, list) and ids else ""


def _readable_path(element: etree._Element, top: etree._Element) -> str:
    """`GrpHdr/MsgId`-style path of local names below `top`, with [n] where siblings repeat."""
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None and node is not top and node.getparent() is not None:
        parent = node.getparent()
        assert parent is not None
        same = [child for child in parent if child.tag == node.tag]
        step = etree.QName(node).localname
        steps.append(f"{step}[{same.index(node) + 1}]" if len(same) > 1 else step)
        node = parent
    return "/".join(reversed(steps)) or etree.QName(element).localname
