"""head.001.001.02 AppHdr: built without Sgntr, wrapped with its Document, each part XSD-checked."""

from __future__ import annotations

from dataclasses import replace

import pytest
from lxml import etree

from gateway.config import Settings
from gateway.errors import InvalidMessage
from gateway.iso20022 import apphdr, xsd
from gateway.iso20022.namespaces import BIZMSG_NS
from gateway.iso20022.pain001 import build_pain001, read_pain001
from gateway.iso20022.reading import read_file
from gateway.iso20022.xml import parse_xml, to_bytes
from gateway.service.batcher import render
from gateway.signing import ensure_keypair, sign, verify
from tests.unit.factories import CREATED_AT, batch, group, order

HEAD = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"


def header() -> apphdr.AppHeader:
    """The treasury's header for one file to Agribank."""
    return apphdr.AppHeader(
        sender_name="Kho bạc Nhà nước Phú Lương",
        receiver_bic="VBAAVNVX",
        business_msg_id="KBNN-20250314-AGRIBANK-0000001",
        message_definition="pain.001.001.09",
        created_at=CREATED_AT,
    )


def test_envelope_holds_the_header_then_the_document_and_both_validate() -> None:
    """BizMsg > AppHdr (no Sgntr) + Document; xsd.validate checks each against its own XSD."""
    document = build_pain001(batch(group([order(1), order(2)])))
    envelope = apphdr.wrap(apphdr.build_app_header(header()), document)
    assert envelope.tag == f"{{{BIZMSG_NS}}}BizMsg"
    assert [etree.QName(child).localname for child in envelope] == ["AppHdr", "Document"]
    assert envelope.find(f"{{{HEAD}}}AppHdr/{{{HEAD}}}Sgntr") is None
    xsd.validate(envelope)
    reread = parse_xml(to_bytes(envelope))
    head, body = apphdr.split(reread)
    assert head is not None
    assert apphdr.read_app_header(head) == header()
    assert read_pain001(reread).msg_id == read_pain001(body).msg_id == "KBNN-20250314-0001"


def test_a_bad_header_is_refused_by_the_head_schema() -> None:
    """An AppHdr that breaks head.001.001.02 is named as such, not as a pain.001 fault."""
    bad = apphdr.build_app_header(replace(header(), receiver_bic="not a bic"))
    envelope = apphdr.wrap(bad, build_pain001(batch(group([order(1)]))))
    with pytest.raises(InvalidMessage, match=r"^head\.001\.001\.02 fails its XSD: .*BICFI"):
        xsd.validate(envelope)


def test_split_refuses_a_root_that_is_neither() -> None:
    """A stray root is refused naming itself and its line."""
    with pytest.raises(InvalidMessage, match=r"line 1: <Stray> is neither"):
        apphdr.split(parse_xml(b"<Stray><Other/></Stray>"))


def test_batcher_renders_an_envelope_for_an_app_header_partner(
    settings: Settings, tmp_path: object
) -> None:
    """With app_header on, the rendered file is a valid envelope that signs, verifies and reads."""
    partner = settings.partners["agribank"]
    partner = replace(partner, messages=replace(partner.messages, app_header=True))
    rendered = render(
        "KBNN-20250314-AGRIBANK-0000001",
        partner,
        [order(1), order(2)],
        CREATED_AT,
        settings.initiating_party,
    )
    root, groups = rendered.tree(), rendered.groups
    # In an envelope the file is signed from its tree: no canonical text of the pain.001 alone.
    assert rendered.canonical is None
    assert etree.QName(root).localname == "BizMsg"
    head, _ = apphdr.split(root)
    assert head is not None
    assert apphdr.read_app_header(head).receiver_bic == partner.bic
    keypair = ensure_keypair(settings.path(settings.keys_dir), "test", "test signer")
    signed = sign(root, keypair)
    parsed = read_file(signed)
    assert parsed.app_header is not None
    assert parsed.app_header.business_msg_id == "KBNN-20250314-AGRIBANK-0000001"
    assert parsed.xsd == "valid"
    assert read_pain001(verify(signed, keypair.cert_pem)).nb_of_txs == 2
    assert len(groups) == 1
