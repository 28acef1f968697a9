"""What the worst inbound files cost the gateway before it trusts them: prints figures, asserts
nothing.

Usage: .venv/bin/python scripts/bench_inbound_limits.py [--case NAME ...]
                                                        [--max-elements N] [--max-bytes N]

Each case is generated at a partner's default limits (`[inbound]`, see conf/partners/), in a
fresh child process, and checked by `gateway.signing.receipt.receive`: the inbound service's
checks (streaming limits, signature and trust at receipt, creation time, XSD, reader), without
the database. The figures are the wall time of that check and the peak resident memory it added
to the process (the file itself, already in memory, is not counted).

Two kinds of case: files over a limit (refused by the streaming pass, at its first element over
the limit), and the most expensive files the limits admit: a genuine 100,000-transaction
camt.054, and files built to the limits carrying a signature copied from a genuine bank file,
which only the digest can refuse. `--max-elements` and `--max-bytes` run the same cases at a
partner's narrower limits (the 100,000-transaction files are then refused by them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.errors import InvalidMessage  # noqa: E402
from gateway.iso20022.camt054 import build_camt054  # noqa: E402
from gateway.iso20022.limits import DEFAULT_LIMITS, InboundLimits  # noqa: E402
from gateway.iso20022.model import Entry, EntryDetail, Notification  # noqa: E402
from gateway.profile import InboundPolicy, PartnerProfile  # noqa: E402
from gateway.signing import KeyPair, generate_keypair, sign, trusted  # noqa: E402
from gateway.signing.receipt import receive  # noqa: E402


def _narrowed() -> InboundLimits:
    """The limits, narrowed by --max-elements / --max-bytes (children get the same argv)."""
    limits = DEFAULT_LIMITS
    for option, field in (("--max-elements", "max_elements"), ("--max-bytes", "max_bytes")):
        if option in sys.argv:
            value = int(sys.argv[sys.argv.index(option) + 1])
            limits = dataclasses.replace(limits, **{field: value})
    return limits


LIMITS = _narrowed()
CAP = LIMITS.max_bytes
NOW = datetime.now(UTC).replace(microsecond=0)
HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">'
)


def notification(transactions: int) -> Notification:
    """A benefit run's debits as the bank notifies them: one entry per transaction."""
    day = NOW.date()
    return Notification(
        msg_id=f"BENCH-{transactions}",
        created_at=NOW - timedelta(minutes=5),
        account="7411058271001",
        entries=tuple(
            Entry(
                amount=Decimal(606000),
                currency="VND",
                credit_debit="DBIT",
                status="BOOK",
                booking_date=day,
                value_date=day,
                account_servicer_ref=f"VBA-{i:09d}",
                details=(
                    EntryDetail(
                        amount=Decimal(606000),
                        currency="VND",
                        end_to_end_id=f"BTXH-PL-2611-{i:07d}",
                        msg_id="KBNN-20261101-0001",
                        pmt_inf_id="KBNN-20261101-0001-001",
                        counterparty_name="Nguyễn Thị Hương Giang",
                        counterparty_account="BBAN:1234567890123",
                        remittance="Trợ cấp xã hội tháng 11/2026 theo Nghị định 20/2021",
                    ),
                ),
            )
            for i in range(transactions)
        ),
    )


def copied(bank: KeyPair) -> bytes:
    """The ds:Signature of a genuine small bank file."""
    data = sign(build_camt054(notification(1)), bank)
    return data[data.index(b"<ds:Signature") : data.index(b"</ds:Signature>") + 15]


def filled(unit: bytes, signature: bytes, size: int = CAP) -> bytes:
    """A document of about `size` bytes: `unit` repeated, then the copied signature."""
    room = size - len(HEAD) - len(signature) - len(b"</Document>") - 16
    return HEAD + unit * (room // len(unit)) + signature + b"</Document>"


def attributes(count: int, length: int) -> bytes:
    return b" ".join(b'a%d="%s"' % (i, b"v" * length) for i in range(count))


CASES: dict[str, tuple[str, Callable[[KeyPair], bytes]]] = {
    "over-size": ("one byte over max_bytes", lambda b: b"<" + b"a" * CAP + b">"),
    "one-huge-tag": (
        "one start tag of 128 MiB of attributes",
        lambda b: b"<Document " + b'x="1" ' * ((CAP - 20) // 6) + b"/>",
    ),
    "attributes-over": (
        "elements of 17 attributes to the cap",
        lambda b: filled(b"<a " + attributes(17, 1) + b"/>", copied(b)),
    ),
    "too-deep": (
        "49 nested levels, repeated to the cap",
        lambda b: filled(b"<a>" * 49 + b"</a>" * 49, copied(b)),
    ),
    "too-many-elements": ("empty elements to the cap", lambda b: filled(b"<a/>", copied(b))),
    "text-over": ("one text filling the cap", lambda b: filled(b"x", copied(b))),
    "attribute-value-over": (
        "one attribute value filling the cap",
        lambda b: HEAD + b'<a v="' + b"v" * (CAP - 8000) + b'"/>' + copied(b) + b"</Document>",
    ),
    "elements-at-limit": (
        f"{LIMITS.max_elements - 20} empty elements, copied signature",
        lambda b: HEAD + b"<a/>" * (LIMITS.max_elements - 20) + copied(b) + b"</Document>",
    ),
    "depth-at-limit": (
        "47 nested levels repeated to max_elements, copied signature",
        lambda b: (
            HEAD
            + (b"<a>" * 47 + b"</a>" * 47) * ((LIMITS.max_elements - 20) // 47)
            + copied(b)
            + b"</Document>"
        ),
    ),
    "attributes-at-limit": (
        "elements of 15 attributes of 136 characters to the cap, copied signature",
        lambda b: filled(b"<a " + attributes(15, 136) + b"/>", copied(b)),
    ),
    "texts-at-limit": (
        f"texts of {LIMITS.max_text} characters to the cap, copied signature",
        lambda b: filled(b"<a>" + b"x" * LIMITS.max_text + b"</a>", copied(b)),
    ),
    "camt054-100k-genuine": (
        "a genuine 100,000-transaction camt.054, signed by the bank",
        lambda b: sign(build_camt054(notification(100_000)), b),
    ),
    "camt054-100k-copied": (
        "the same file with one amount changed (its genuine signature kept)",
        lambda b: re.sub(
            rb">606000<", b">606001<", sign(build_camt054(notification(100_000)), b), count=1
        ),
    ),
}


def _status(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) if match else 0


def run_case(name: str) -> dict[str, object]:
    """Generate one case and time its check in this process."""
    bank = KeyPair(*generate_keypair("bench-bank", valid_from=datetime(2024, 1, 1, tzinfo=UTC)))
    data = CASES[name][1](bank)
    partner = PartnerProfile(name="bench", bic="VBAAVNVX", inbound=InboundPolicy(limits=LIMITS))
    pinned = [trusted(bank.cert_pem)]
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    start = time.perf_counter()
    try:
        received = receive(data, partner, pinned, datetime.now(UTC))
        verdict = f"accepted: {received.kind.name_id}"
    except InvalidMessage as exc:
        verdict = f"refused: {exc}"
    seconds = time.perf_counter() - start
    added = (_status("VmHWM") - before) / 1024
    return {"case": name, "bytes": len(data), "verdict": verdict, "s": seconds, "mb": added}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--case", action="append", choices=sorted(CASES), help="only these")
    options.add_argument("--child", help=argparse.SUPPRESS)
    options.add_argument("--max-elements", type=int, help="a partner's narrower max_elements")
    options.add_argument("--max-bytes", type=int, help="a partner's narrower max_bytes")
    args = options.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child)))
        return
    print(
        f"limits: max_bytes {LIMITS.max_bytes}, max_elements {LIMITS.max_elements}, max_depth"
        f" {LIMITS.max_depth}, max_attributes {LIMITS.max_attributes}, max_text"
        f" {LIMITS.max_text}, max_attribute_length {LIMITS.max_attribute_length}"
    )
    print(f"{'case':<22} {'MB':>6} {'seconds':>8} {'added MB':>9}  verdict")
    for name in args.case or list(CASES):
        child = subprocess.run(
            [sys.executable, __file__, "--child", name, *sys.argv[1:]],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(f"{name:<22} failed: {child.stderr.strip().splitlines()[-1:]}")
            continue
        row = json.loads(child.stdout.strip().splitlines()[-1])
        size, seconds, added = row["bytes"] / 1e6, row["s"], row["mb"]
        print(f"{name:<22} {size:>6.1f} {seconds:>8.2f} {added:>9.0f}  {row['verdict'][:110]}")
        print(f"{'':<22} {CASES[name][0]}")


if __name__ == "__main__":
    main()
