"""The frames of one AMQP 0-9-1 `basic.publish`, written directly.

The outbox relay publishes a posting per payment: 100,000 in a bulk run, each through pika's
`Channel.basic_publish`, which builds a method object, a properties object, three frame
objects, and marshals each field of each through generic code (10.4 microseconds a message for
the frames alone; `basic_publish` was 8% of the gateway's main process in a profiled
end-to-end run; this writes them in 4.5). The relay's messages all
have one shape: persistent, `mandatory`, a content type, a message id and a few text headers.
This writes that shape's frames in one piece, byte for byte what pika writes for it
(tests/unit/test_amqp_frames.py compares the two); anything else (another header type, a
field past a short string's 255 bytes, a body that needs more than one body frame) is left to
pika, `publish_frames` answering None.
"""

from __future__ import annotations

import struct
from typing import Any

# basic.publish: class 60, method 40, its reserved ticket 0; bits: mandatory (not immediate).
_PUBLISH = struct.pack(">HHH", 60, 40, 0)
_MANDATORY = b"\x01"
# Content header of class 60 (basic), weight 0: then the body size and the property flags.
_HEADER = struct.pack(">HH", 60, 0)
# Properties present: content-type, headers, delivery-mode, message-id (in that order).
_FLAGS = struct.pack(">H", 0x8000 | 0x2000 | 0x1000 | 0x0080)
_PERSISTENT = b"\x02"
_METHOD, _CONTENT_HEADER, _BODY = 1, 2, 3
_FRAME_END = b"\xce"
_SHORT_MAX = 255


def publish_frames(
    channel: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    *,
    message_id: str,
    content_type: str,
    headers: dict[str, Any],
    body_max: int,
) -> bytes | None:
    """The method, content header and body frames of a persistent, mandatory message on
    `channel`, as one byte string; None when the message is not of the shape written here
    (headers other than text, a short string over 255 bytes, a body over `body_max` bytes, an
    empty body)."""
    if not body or len(body) > body_max:
        return None
    shorts = [
        value.encode()
        for value in (exchange, routing_key, content_type, message_id)
        if type(value) is str
    ]
    if len(shorts) != 4 or any(len(value) > _SHORT_MAX for value in shorts):
        return None
    exchange_b, key_b, type_b, id_b = shorts
    table = _text_table(headers)
    if table is None:
        return None
    method = b"".join(
        (_PUBLISH, bytes((len(exchange_b),)), exchange_b, bytes((len(key_b),)), key_b, _MANDATORY)
    )
    header = b"".join(
        (
            _HEADER,
            struct.pack(">Q", len(body)),
            _FLAGS,
            bytes((len(type_b),)),
            type_b,
            table,
            _PERSISTENT,
            bytes((len(id_b),)),
            id_b,
        )
    )
    return b"".join(
        (
            struct.pack(">BHI", _METHOD, channel, len(method)),
            method,
            _FRAME_END,
            struct.pack(">BHI", _CONTENT_HEADER, channel, len(header)),
            header,
            _FRAME_END,
            struct.pack(">BHI", _BODY, channel, len(body)),
            body,
            _FRAME_END,
        )
    )


def _text_table(headers: dict[str, Any]) -> bytes | None:
    """A field table of text values (each a long string `S`, in the dict's order, as pika
    writes it); None when a key or value is not text or a key is over 255 bytes."""
    pieces: list[bytes] = []
    for key, value in headers.items():
        if type(key) is not str or type(value) is not str:
            return None
        key_b, value_b = key.encode(), value.encode()
        if len(key_b) > _SHORT_MAX:
            return None
        pieces += (bytes((len(key_b),)), key_b, b"S", struct.pack(">I", len(value_b)), value_b)
    table = b"".join(pieces)
    return struct.pack(">I", len(table)) + table
