"""python-xmlsec and lxml must run on the same libxml2: their trees cross from one to the other."""

from __future__ import annotations

import xmlsec
from lxml import etree


def test_xmlsec_and_lxml_share_one_libxml2_version() -> None:
    """A mismatch (e.g. after upgrading lxml alone) would corrupt trees: pin both together."""
    assert xmlsec.get_libxml_version() == etree.LIBXML_VERSION
    assert xmlsec.get_libxml_compiled_version() == etree.LIBXML_COMPILED_VERSION
