"""The relay's own `basic.publish` frames are byte for byte pika's, or left to pika."""

from __future__ import annotations

from typing import Any

import pika
from hypothesis import given, settings
from hypothesis import strategies as st
from pika import frame, spec

from gateway.adapters.amqp_frames import publish_frames

BODY_MAX = 131072 - 8


def _pikas(channel: int, exchange: str, key: str, body: bytes, **kw: Any) -> bytes:
    """What pika's `Connection._send_message` marshals for the same message (one body frame)."""
    properties = pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=kw["message_id"],
        content_type=kw["content_type"],
        headers=kw["headers"],
    )
    method = spec.Basic.Publish(exchange=exchange, routing_key=key, mandatory=True)
    return b"".join(
        (
            frame.Method(channel, method).marshal(),
            frame.Header(channel, len(body), properties).marshal(),
            frame.Body(channel, body).marshal(),
        )
    )


texts = st.text(max_size=40)


@settings(max_examples=300)
@given(
    channel=st.integers(1, 65535),
    exchange=texts,
    key=texts,
    body=st.binary(min_size=1, max_size=2000),
    message_id=texts,
    content_type=st.sampled_from(["application/json", "application/xml"]),
    headers=st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=5),
)
def test_frames_are_pikas(
    channel: int,
    exchange: str,
    key: str,
    body: bytes,
    message_id: str,
    content_type: str,
    headers: dict[str, str],
) -> None:
    """Any text fields and text headers (Vietnamese, emoji, empty): the same bytes as pika."""
    kw: dict[str, Any] = {
        "message_id": message_id,
        "content_type": content_type,
        "headers": headers,
    }
    mine = publish_frames(channel, exchange, key, body, body_max=BODY_MAX, **kw)
    assert mine == _pikas(channel, exchange, key, body, **kw)


def test_a_posting_as_the_relay_sends_it() -> None:
    """A ledger posting with its two headers, and a file with Vietnamese text in a header."""
    for headers in (
        {"schema": "ledger-posting/1", "kind": "payment_settled"},
        {"msg_id": "KBNN-20261130-AGRIBANK-0000001", "note": "Kho bạc Nhà nước"},
        {},
    ):
        kw: dict[str, Any] = {
            "message_id": "P-0123456789abcdef0123456789abcdef",
            "content_type": "application/json",
            "headers": headers,
        }
        body = '{"amount": "606000", "debtor_name": "Kho bạc"}'.encode()
        mine = publish_frames(
            1, "treasury.ledger", "posting.payment_settled", body, body_max=BODY_MAX, **kw
        )
        assert mine == _pikas(1, "treasury.ledger", "posting.payment_settled", body, **kw)


def test_other_shapes_are_left_to_pika() -> None:
    """A header that is not text, a short string past 255 bytes, a body needing more than one
    frame, an empty body: None, and pika writes them."""
    base: dict[str, Any] = {
        "message_id": "m-1",
        "content_type": "application/json",
        "headers": {"kind": "x"},
        "body_max": BODY_MAX,
    }
    assert publish_frames(1, "ex", "key", b"{}", **base) is not None
    assert publish_frames(1, "ex", "key", b"{}", **{**base, "headers": {"retries": 3}}) is None
    assert publish_frames(1, "ex", "key", b"{}", **{**base, "headers": {"k" * 256: "v"}}) is None
    assert publish_frames(1, "ex", "k" * 256, b"{}", **base) is None
    assert publish_frames(1, "ex", "key", b"{}", **{**base, "message_id": "é" * 128}) is None
    assert publish_frames(1, "ex", "key", b"x" * (BODY_MAX + 1), **base) is None
    assert publish_frames(1, "ex", "key", b"x" * BODY_MAX, **base) is not None
    assert publish_frames(1, "ex", "key", b"", **base) is None
