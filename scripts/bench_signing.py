"""Compare the gateway's enveloped signing, libxmlsec1's own and signxml on one pain.001 file.

Usage: .venv/bin/python scripts/bench_signing.py [TRANSACTIONS]   (default 100000)
       .venv/bin/python scripts/bench_signing.py --pkcs11 [TRANSACTIONS]

All three sign the same document enveloped (RSA-3072, SHA-256, exclusive C14N) and are verified:
- gateway: `sign_enveloped`, the reference digest from libxml2's exclusive C14N (through lxml),
  SignedInfo signed by libxmlsec1; verified by the gateway (libxmlsec1, strict checks);
- libxmlsec1: `sign_enveloped_by_library`, libxmlsec1 running the whole signature, its
  enveloped-signature transform included; its output must equal the gateway's byte for byte;
- signxml: its own signing and verification; each side's output is also checked by the other.
Prints a markdown table; figures only, nothing about speed is asserted.

With --pkcs11: signatures of SignedInfo per second with a key in memory (libxmlsec1, as the
gateway signs with a key file) and with a key in a SoftHSM2 token (PKCS#11), RSA-3072 and ECDSA
P-256, and one enveloped signature of the TRANSACTIONS file with each. The token is made in a
temporary folder (Debian's softhsm2 must be installed).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import xmlsec
from lxml import etree
from signxml import XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from gateway.iso20022.pain001 import build_pain001
from gateway.profile.signature import SignaturePolicy
from gateway.signing import KeyPair, generate_keypair, trusted, verify_for_partner
from gateway.signing.keys import private_key
from gateway.signing.xmldsig import sign_enveloped, sign_enveloped_by_library
from tests.unit.factories import CREATED_AT, benefits_batch


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds one call took, and what it returned."""
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def per_second(sign: Callable[[bytes], bytes], data: bytes, seconds: float = 3.0) -> float:
    """How many signatures of `data` one thread makes per second (over about `seconds`)."""
    sign(data)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sign(data)
        done += 1
    return done / (time.perf_counter() - start)


def hsm_figures(count: int) -> None:
    """Signatures per second and one enveloped file, key in memory against key in SoftHSM2."""
    import os
    import shutil
    import tempfile

    from gateway.adapters.softhsm import init_token, softhsm_conf

    folder = Path(tempfile.mkdtemp(prefix="bench-softhsm-"))
    conf = softhsm_conf(folder)
    os.environ["SOFTHSM2_CONF"] = str(conf)  # before the module is first loaded
    token = init_token(conf, "bench", "246810")
    os.environ["GATEWAY_PKCS11_PIN"] = token.pin
    from gateway.adapters.pkcs11 import Token, TokenConfig, TokenKeyStore, create_key
    from gateway.signing.xmldsig import _signature_value

    label = "bench"  # the token's label
    hsm = Token(TokenConfig(module=token.module, token=label, keys_dir=folder / "keys"))
    root = build_pain001(benefits_batch(count))
    since = datetime(2024, 1, 1, tzinfo=UTC)
    until = datetime(2030, 1, 1, tzinfo=UTC)
    print(f"SoftHSM2 in {folder}; pain.001 with {count:,} transactions")
    print()
    print("| key | where | SignedInfo signatures/s | sign the file (enveloped) |")
    print("|---|---|---|---|")
    for curve, name in ((False, "RSA-3072"), (True, "ECDSA P-256")):
        pair = KeyPair(*generate_keypair("bench", curve=curve, valid_from=since))
        key_label = "ec" if curve else "rsa"
        create_key(
            hsm, key_label, curve=curve, common_name="bench", valid_from=since, valid_until=until
        )
        held = TokenKeyStore(hsm, key_label).ring().current
        signed_info = sign_enveloped(build_pain001(benefits_batch(1)), pair)
        start = signed_info.index(b"<ds:SignedInfo")
        data = signed_info[start : signed_info.index(b"</ds:SignedInfo>") + 16]
        for where, key in (("file (libxmlsec1, in memory)", pair), ("SoftHSM2 (PKCS#11)", held)):
            rate = per_second(lambda d, k=key: _signature_value(k, d), data)  # type: ignore[misc]
            seconds, body = timed(lambda k=key: sign_enveloped(root, k))  # type: ignore[misc]
            verify_for_partner(body, SignaturePolicy(), [trusted(key.cert_pem)], datetime.now(UTC))
            print(f"| {name} | {where} | {rate:,.0f} | {seconds:.2f} s |")
    hsm.close()
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if "--pkcs11" in sys.argv[1:]:
        rest = [arg for arg in sys.argv[1:] if arg != "--pkcs11"]
        hsm_figures(int(rest[0]) if rest else 100_000)
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    pair = KeyPair(*generate_keypair("bench", valid_from=datetime(2024, 1, 1, tzinfo=UTC)))
    root = build_pain001(benefits_batch(count))
    # Received a minute after the batch says it was created (the factories' fixed date).
    now = CREATED_AT + timedelta(minutes=1)
    policy, pins = SignaturePolicy(), [trusted(pair.cert_pem)]

    sign_x, by_xmlsec = timed(lambda: sign_enveloped(root, pair))
    verify_x, _ = timed(lambda: verify_for_partner(by_xmlsec, policy, pins, now))
    sign_l, by_library = timed(lambda: sign_enveloped_by_library(root, pair))
    if by_library != by_xmlsec:
        raise SystemExit("the gateway's signed file differs from libxmlsec1's own")

    def signxml_sign() -> bytes:
        signer = XMLSigner(
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        signed = signer.sign(root, key=private_key(pair.key_pem), cert=pair.cert_pem.decode())
        data: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        return data

    sign_s, by_signxml = timed(signxml_sign)
    huge = etree.XMLParser(huge_tree=True)
    verify_s, _ = timed(
        lambda: XMLVerifier().verify(by_signxml, x509_cert=pair.cert_pem.decode(), parser=huge)
    )
    # Each library accepts the other's output.
    verify_for_partner(by_signxml, policy, pins, now)
    XMLVerifier().verify(by_xmlsec, x509_cert=pair.cert_pem.decode(), parser=huge)

    size = len(by_xmlsec) / 1e6
    print(f"pain.001 with {count:,} transactions, {size:.1f} MB, RSA-3072 / SHA-256 / exc-C14N")
    print()
    print("| library | sign | verify |")
    print("|---|---|---|")
    print(
        f"| gateway (lxml exc-C14N digest, libxmlsec1 signs) | {sign_x:.2f} s | {verify_x:.2f} s |"
    )
    print(f"| python-xmlsec {xmlsec.__version__} (libxmlsec1 alone) | {sign_l:.2f} s | same file |")
    print(f"| signxml 4.5 | {sign_s:.2f} s | {verify_s:.2f} s |")
    print()
    print(
        "The gateway's verify is every check of the inbound path: the streaming limits pass,"
        " parse, shape, SignedInfo's value by libxmlsec1, the digest once over libxml2's"
        " exclusive C14N, trust at receipt, unwrap."
    )


if __name__ == "__main__":
    main()
