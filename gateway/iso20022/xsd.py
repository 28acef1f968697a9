"""XSD validation: one compiled schema per message version, loaded once and cached."""

from __future__ import annotations

import copy
import os
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from gateway import paths
from gateway.errors import ConfigError, InvalidMessage
from gateway.iso20022 import apphdr
from gateway.iso20022.namespaces import MessageType, message_type, namespace_of
from gateway.iso20022.xml import PARSER, shown

SCHEMAS_ENV = "GATEWAY_SCHEMAS_DIR"
MAX_REPORTED_ERRORS = 3

_cache: dict[tuple[Path, MessageType], _Compiled] = {}
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
    return _compiled(kind).schema


@dataclass(frozen=True)
class _Compiled:
    """An XSD as read from its file (what `splittable` inspects and the spares are compiled
    from, so that all three are the same XSD) and compiled."""

    source: etree._ElementTree
    schema: etree.XMLSchema


def _compiled(kind: MessageType) -> _Compiled:
    key = (schemas_dir(), kind)
    compiled = _cache.get(key)
    if compiled is None:
        with _lock:
            compiled = _cache.get(key)
            if compiled is None:
                compiled = _load(key[0] / kind.schema_file, kind)
                _cache[key] = compiled
    return compiled


def _load(path: Path, kind: MessageType) -> _Compiled:
    """Read and compile one XSD file, saying clearly when it is missing or broken."""
    if not path.is_file():
        raise ConfigError(f"no XSD for {kind.name_id}: {path} is missing")
    try:
        source = etree.parse(str(path), PARSER)
        return _Compiled(source, etree.XMLSchema(source))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigError(f"XSD {path} cannot be used: {exc}") from None


# Threads that check the pieces of one large document side by side (the calling thread one of
# them): libxml2 parses and validates without Python's lock, so each takes a core.
CHECK_THREADS = max(1, min(4, len(os.sched_getaffinity(0))))
# Compiled schemas lent to those threads, one to a thread at a time: an lxml validator keeps its
# error log on itself, so two threads never validate with the same one.
_spare: dict[tuple[Path, MessageType], list[etree.XMLSchema]] = {}
_splits: dict[tuple[Path, MessageType, tuple[str, ...]], bool] = {}

_XS = "{http://www.w3.org/2001/XMLSchema}"
_ID_TYPES = {"ID", "IDREF", "IDREFS"}
# Attributes of XSD elements that name a type: an ID type may be used or derived through each.
_TYPE_ATTRIBUTES = ("type", "base", "itemType", "memberTypes")


def splittable(kind: MessageType, repeated: tuple[str, ...]) -> bool:
    """Whether a document of this version is valid exactly when every piece of it is: a piece
    being the document with only some of its `repeated` elements. So when the XSD in use
    (as read for `schema_for`) declares each of them with maxOccurs unbounded, has no identity
    constraint (xs:unique, xs:key, xs:keyref) and no ID or IDREF type, used or derived, that
    would tie one piece to another, and takes nothing from another file (xs:include, import,
    redefine, override: not read here)."""
    key = (schemas_dir(), kind, repeated)
    answer = _splits.get(key)
    if answer is None:
        answer = _splits[key] = _inspect(_compiled(kind).source, repeated)
    return answer


def _inspect(tree: etree._ElementTree, repeated: tuple[str, ...]) -> bool:
    for name in ("unique", "key", "keyref", "include", "import", "redefine", "override"):
        if tree.find(f".//{_XS}{name}") is not None:
            return False
    for node in tree.iter(f"{_XS}*"):
        for attribute in _TYPE_ATTRIBUTES:
            names = str(node.get(attribute, "")).split()
            if {name.split(":")[-1] for name in names} & _ID_TYPES:
                return False
    declared = [node for node in tree.iter(f"{_XS}element") if node.get("name") in repeated]
    named = {str(node.get("name")) for node in declared}
    return named == set(repeated) and all(node.get("maxOccurs") == "unbounded" for node in declared)


def all_valid(
    kind: MessageType,
    pieces: Sequence[Callable[[], bytes]],
    parse: Callable[[bytes], etree._Element],
) -> bool:
    """Whether every piece (a document's text, made when asked) parses and is valid against the
    XSD of `kind`, the pieces checked side by side (`PieceCheck`)."""
    check = PieceCheck(kind, parse)
    for piece in pieces:
        check.add(piece)
    return check.verdict()


class PieceCheck:
    """Pieces of a document checked against the XSD of `kind` side by side as they are given:
    by `CHECK_THREADS - 1` helper threads from the start (while the caller writes the next
    pieces, say), and by the calling thread too once it asks for the verdict. Each piece is a
    document's text, made when a thread takes it; its tree is let go once checked.

    The verdict says only yes or no (the caller names a fault by validating the whole): yes
    when every piece given parsed and was valid; a piece a thread could not check (out of
    memory, say) makes it no."""

    def __init__(self, kind: MessageType, parse: Callable[[bytes], etree._Element]) -> None:
        schema_for(kind)  # compiled (or its absence said) before any thread starts
        self._kind = kind
        self._parse = parse
        self._queue: queue.SimpleQueue[Callable[[], bytes] | None] = queue.SimpleQueue()
        self._failed = threading.Event()
        self._given = 0
        self._closed = False
        self._valid: list[int] = []  # one item a piece found valid
        self._answer: bool | None = None
        self._answering = threading.Lock()
        self._helpers: list[threading.Thread] = []
        try:
            for number in range(CHECK_THREADS - 1):
                thread = threading.Thread(target=self._help, name=f"xsd-piece-{number}")
                thread.daemon = True
                thread.start()
                self._helpers.append(thread)
        except BaseException:
            self.abandon()
            raise

    def add(self, piece: Callable[[], bytes]) -> None:
        if self._closed:
            raise ValueError("no piece can be added to a closed check")
        self._given += 1
        self._queue.put(piece)

    def close(self) -> None:
        """No more pieces: the helpers end once they are all taken (a verdict or not)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)  # the end mark: each thread that takes it puts it back

    def verdict(self) -> bool:
        """Whether every piece given is valid, once all are checked (this thread helping);
        asked again, the same answer."""
        with self._answering:
            if self._answer is None:
                self.close()
                try:
                    self._work()
                except Exception:  # a piece this thread could not check: the answer is no
                    self._failed.set()
                for thread in self._helpers:
                    thread.join()
                self._answer = not self._failed.is_set() and len(self._valid) == self._given
            return self._answer

    def abandon(self) -> None:
        """No verdict wanted (the text could not be written): the helpers stop."""
        self._failed.set()
        self.close()

    def _work(self) -> None:
        with _lent(self._kind) as schema:
            while (piece := self._queue.get()) is not None:
                if self._failed.is_set():
                    continue  # the verdict is no: the rest is passed over
                try:
                    good = schema.validate(self._parse(piece()))
                except etree.XMLSyntaxError:
                    good = False
                if good:
                    self._valid.append(1)
                else:
                    self._failed.set()
        self._queue.put(None)

    def _help(self) -> None:
        try:
            self._work()
        except BaseException:  # its piece stays unchecked: the verdict is no
            self._failed.set()
            self._queue.put(None)


@contextmanager
def _lent(kind: MessageType) -> Iterator[etree.XMLSchema]:
    """A compiled schema of `kind` for one thread's use, returned to the spares after it:
    compiled from the same reading of the XSD as `schema_for`'s."""
    key = (schemas_dir(), kind)
    with _lock:
        spares = _spare.setdefault(key, [])
        schema = spares.pop() if spares else None
    if schema is None:
        schema = etree.XMLSchema(_compiled(kind).source)
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
