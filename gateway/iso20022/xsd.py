"""XSD validation: one compiled schema per message version, loaded once and cached."""

from __future__ import annotations

import copy
import re
import threading
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
