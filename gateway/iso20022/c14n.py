"""Canonical XML (C14N 1.0, exclusive or inclusive, without comments) written from parser events,
so that the digest of a signed document is taken in the same streaming pass as its limits, before
any tree exists.

The events are those of a non-namespace expat parser (qualified names as written, `xmlns`
declarations among the attributes, in document order): the canonicaliser resolves namespaces
itself and writes what libxml2's `xmlC14NDocSaveTo` writes for the same document (the unit tests
compare the two on every sample and on documents built to exercise each rule):

- namespace declarations first, by prefix, then attributes by (namespace URI, local name);
- exclusive: only the prefixes an element visibly uses, when no output ancestor rendered them
  with the same value; inclusive: the declarations whose value differs from the parent's;
- `xmlns=""` when an unprefixed element leaves a default namespace an ancestor rendered;
- empty elements as a start and an end tag; text and attribute values escaped as C14N says.

One subtree (the enveloped ds:Signature) can be left out while its events are still seen: the
caller says which by `omit`. The documents it reads have no DTD, no entity and no processing
instruction (the pass refuses them), so none of C14N's rules about those apply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from gateway.errors import InvalidMessage

XML_NS = "http://www.w3.org/XML/1998/namespace"
# Start tags remembered (see `Canonicaliser.start`); at most 16 attributes of 2,048 characters
# each, so a few megabytes at worst.
_KNOWN = 128
# (parent scope, parent rendered, start tag, scope, rendered, fast)
_Known = tuple[dict[str, str], dict[str, str], str, dict[str, str], dict[str, str], bool]


def escape_text(value: str) -> str:
    """A text node as C14N writes it."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#xD;")
    return value


def escape_attribute(value: str) -> str:
    """An attribute value as C14N writes it."""
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


class UnboundPrefix(InvalidMessage):
    """A prefix used without a namespace declaration in scope."""


class Canonicaliser:
    """Canonical XML of the events it is given, hashed with SHA-256 as it goes (or kept, for a
    small subtree such as a signature).

    Writers may append the canonical form of an unprefixed element without attributes
    (`<name>`, `</name>`) and of escaped text to `pieces` themselves while `fast` holds, and call
    `flush` now and then; everything else goes through `start`, `end` and `text`.
    """

    def __init__(
        self,
        *,
        exclusive: bool = True,
        scope: dict[str, str] | None = None,
        keep: bool = False,
    ) -> None:
        self.exclusive = exclusive
        # In-scope namespaces, prefix -> URI ("" is the default namespace; "" as URI: none).
        self._scope: dict[str, str] = scope if scope is not None else {"xml": XML_NS}
        # Exclusive: what the nearest output ancestors rendered; inclusive: unused.
        self._rendered: dict[str, str] = {}
        self._stack: list[tuple[dict[str, str], dict[str, str]]] = []
        self.pieces: list[str] = []
        self._hash = hashlib.sha256()
        self._keep = keep
        self._kept: list[bytes] = []
        self.size = 0
        self.fast = True
        # Element names a writer must pass to `start` even when `fast` holds (none here).
        self.watched: frozenset[str] = frozenset()
        self.position: Callable[[], int] = lambda: 0
        self._known: dict[tuple[str, ...], _Known] = {}

    # --- Events ---------------------------------------------------------------------------------

    def start(self, name: str, attributes: list[str], depth: int = 0) -> None:
        """An element's start tag (`attributes` as expat's ordered list: name, value, ...);
        `depth` is for the limits pass's observers, and unused here."""
        scope, rendered = self._scope, self._rendered
        self._stack.append((scope, rendered))
        if not attributes and ":" not in name and self.fast:
            self.pieces.append("<" + name + ">")
            return
        # The same start tag under the same namespace context writes the same thing (a genuine
        # file repeats `<Amt Ccy="VND">`): the last one's result is reused. The entry keeps the
        # context's dictionaries alive, so `is` cannot match a new one at a reused address.
        key = (name, *attributes)
        known = self._known.get(key)
        if known is not None and known[0] is scope and known[1] is rendered:
            self.pieces.append(known[2])
            self._scope, self._rendered, self.fast = known[3], known[4], known[5]
            return
        tag = self._start_tag(name, attributes)
        self.pieces.append(tag)
        self._update()
        if len(self._known) >= _KNOWN:
            self._known.clear()
        self._known[key] = (scope, rendered, tag, self._scope, self._rendered, self.fast)

    def end(self, name: str) -> None:
        """An element's end tag."""
        self._scope, self._rendered = self._stack.pop()
        self._update()
        self.pieces.append("</" + name + ">")

    def text(self, data: str) -> None:
        """Character data inside the root element."""
        self.pieces.append(escape_text(data))

    escape = staticmethod(escape_text)

    # --- Results --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Hash (or keep) what was written so far."""
        if not self.pieces:
            return
        data = "".join(self.pieces).encode("utf-8")
        self.pieces.clear()
        self.size += len(data)
        if self._keep:
            self._kept.append(data)
        else:
            self._hash.update(data)

    def digest(self) -> bytes:
        """SHA-256 of everything written."""
        self.flush()
        return self._hash.digest()

    def kept(self) -> bytes:
        """The canonical bytes written (a canonicaliser made with `keep=True`)."""
        self.flush()
        return b"".join(self._kept)

    @property
    def scope(self) -> dict[str, str]:
        """The namespaces in scope where the events have got to."""
        return self._scope

    # --- Inside ---------------------------------------------------------------------------------

    def _update(self) -> None:
        """Whether an unprefixed element without attributes renders no namespace here."""
        self.fast = not self.exclusive or (self._rendered.get("", "") == self._scope.get("", ""))

    def _start_tag(self, name: str, attributes: list[str]) -> str:
        """A start tag with its namespace declarations and attributes in canonical order."""
        parent_scope, rendered = self._scope, self._rendered
        declared, plain = _declarations(attributes)
        scope = {**parent_scope, **declared} if declared else parent_scope
        prefix = name.partition(":")[0] if ":" in name else ""
        if prefix and not scope.get(prefix):
            raise UnboundPrefix(f"element <{name}> uses the undeclared prefix {prefix!r}")
        used = {prefix}
        ordered = _ordered(name, plain, scope, used)
        if self.exclusive:
            render = {
                p: scope.get(p, "")
                for p in used
                if p != "xml" and rendered.get(p, "") != scope.get(p, "")
            }
        else:
            render = {p: v for p, v in declared.items() if parent_scope.get(p, "") != v}
        parts = ["<", name]
        for p in sorted(render):
            parts.append(f' xmlns:{p}="' if p else ' xmlns="')
            parts.append(escape_attribute(render[p]))
            parts.append('"')
        for _uri, _local, key, value in ordered:
            parts.append(f' {key}="')
            parts.append(escape_attribute(value))
            parts.append('"')
        parts.append(">")
        self._scope = scope
        if self.exclusive:
            self._rendered = {**rendered, **render} if render else rendered
        return "".join(parts)


def _declarations(attributes: list[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """An element's namespace declarations (prefix -> URI) and its other attributes."""
    declared: dict[str, str] = {}
    plain: list[tuple[str, str]] = []
    for index in range(0, len(attributes), 2):
        key, value = attributes[index], attributes[index + 1]
        if key == "xmlns":
            declared[""] = value
        elif key.startswith("xmlns:"):
            declared[key[6:]] = value
        else:
            plain.append((key, value))
    return declared, plain


def _ordered(
    name: str, plain: list[tuple[str, str]], scope: dict[str, str], used: set[str]
) -> list[tuple[str, str, str, str]]:
    """Attributes as (namespace URI, local name, name, value), in canonical order; the prefixes
    they use are added to `used`."""
    ordered: list[tuple[str, str, str, str]] = []
    for key, value in plain:
        if ":" in key:
            prefix, _, local = key.partition(":")
            uri = scope.get(prefix)
            if not uri:
                raise UnboundPrefix(
                    f"attribute {key} of <{name}> uses the undeclared prefix {prefix!r}"
                )
            if prefix != "xml":
                used.add(prefix)
        else:
            uri, local = "", key
        ordered.append((uri, local, key, value))
    ordered.sort()
    return ordered
