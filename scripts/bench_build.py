#!/usr/bin/env python3
"""Benchmark: build + XSD-validate + sign one pain.001 of 10,000 and of 100,000 transactions.

Usage: .venv/bin/python scripts/bench_build.py [--sizes 10000,100000] [--pkcs11]

Each measurement runs in a fresh child process, so its peak memory is its own; it is repeated
(--repeat, default 3) and the run with the median total is shown, with the best total beside it
and the highest peak of all runs:
  gateway   the gateway's builder (`write_pain001(check=True)`: the text, in canonical form,
            a file of more than 5,000 transactions checked in pieces by a helper thread as they
            are written) on a monthly benefit run (VND, Vietnamese names, domestic accounts),
            then its enveloped signature (`sign_enveloped_text`) with `WrittenPain001.check` as
            its check, as the batcher does: "build s" is the writing (the helper checking
            beside it), "valid+sign s" the check of what is left and its verdict, the digest of
            the text and the signature, up to the signed file's bytes;
  gateway+hsm  (with --pkcs11) the same as gateway, with the RSA-3072 key in a SoftHSM2 token
            made in a temporary folder: SignedInfo is signed by the token through PKCS#11;
  gateway*  the gateway's builder alone (its text, not parsed) on the same EUR/IBAN payments
            given to sepaxml;
  sepaxml   the pure-Python sepaxml library building those payments (no validation, no signing),
            installed into this venv on first use (the `bench` extra) and used nowhere else.
The input orders are generated first; "base" is the process's RSS once they exist, "peak" the
highest RSS while building, validating and signing (the kernel's high-water mark is reset after
the orders are generated where /proc allows it), and "added" is peak minus base. Figures only:
this script asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEPAXML = "sepaxml>=2.7,<3"
NAMES = ("Nguyễn Thị Hồng Nhung", "Trần Văn Đức", "Lê Thị Ánh Tuyết", "Đặng Minh Khôi")
BANKS = ("VBAAVNVX", "BFTVVNVX", "BIDVVNVX", "ICBVVNVX")


def _status(field: str) -> int:
    """A VmRSS/VmHWM figure of this process, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark of this process (Linux `clear_refs` 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _iban(n: int) -> str:
    """A German IBAN with valid check digits for account number n."""
    bban = f"37040044{n:010d}"
    digits = "".join(str(int(c, 36)) for c in bban + "DE00")
    return f"DE{98 - int(digits) % 97:02d}{bban}"


def _orders(count: int, eur: bool) -> list:  # type: ignore[type-arg]
    from gateway.domain.money import Money
    from gateway.domain.orders import Account, Category, Party, PaymentOrder

    treasury = Party(
        name="Kho bạc Nhà nước Phú Lương",
        account=Account(number="7411058271001", scheme="BBAN"),
        agent_bic="VBAAVNVX",
    )
    orders = []
    for n in range(count):
        account = Account(iban=_iban(n)) if eur else Account(number=f"85{n:011d}", scheme="BBAN")
        orders.append(
            PaymentOrder(
                order_id=f"BTXH2611-{n:07d}",
                category=Category.SOCIAL_BENEFIT,
                debtor=treasury,
                creditor=Party(NAMES[n % 4], account, BANKS[n % 4]),
                money=Money.parse("606.50" if eur else "606000", "EUR" if eur else "VND"),
                requested_execution_date=date(2026, 11, 25),
                remittance="Trợ cấp xã hội tháng 11/2026",
            )
        )
    return orders


def _batch(orders: list):  # type: ignore[no-untyped-def, type-arg]
    from gateway.iso20022.model import OutboundBatch, PaymentGroup

    group = PaymentGroup(
        pmt_inf_id="BENCH-PMT-001",
        debtor=orders[0].debtor,
        execution_date=orders[0].requested_execution_date,
        category=orders[0].category,
        orders=tuple(orders),
    )
    return OutboundBatch("BENCH-MSG-001", datetime.now(UTC), "Kho bạc Nhà nước", (group,))


def child(kind: str, count: int, keys: str) -> dict[str, object]:
    """One measurement, run in its own process."""
    result: dict[str, object] = {"kind": kind, "txs": count}
    if kind == "sepaxml":
        payments = [
            {
                "name": NAMES[n % 4],
                "IBAN": _iban(n),
                "BIC": BANKS[n % 4],
                "amount": 60650,
                "execution_date": date(2026, 11, 25),
                "description": "Trợ cấp xã hội tháng 11/2026",
                "endtoend_id": f"BTXH2611-{n:07d}",
            }
            for n in range(count)
        ]
    else:
        orders = _orders(count, eur=kind == "gateway*")
    # Imports and the schema compilation happen before the clock starts.
    from gateway.iso20022 import xsd
    from gateway.iso20022.namespaces import MessageType
    from gateway.iso20022.pain001 import write_pain001
    from gateway.signing import SigningKey, ensure_keypair
    from gateway.signing.xmldsig import sign_enveloped_text

    keypair: SigningKey = ensure_keypair(Path(keys), "bench", "bench signer")
    if kind == "gateway+hsm":
        keypair = _token_key(Path(keys))
    xsd.schema_for(MessageType.PAIN_001_001_09)
    if kind == "sepaxml":
        from sepaxml import SepaTransfer
    result["base_kb"] = _status("VmRSS")
    result["peak_reset"] = _reset_peak()
    start = time.perf_counter()
    if kind == "sepaxml":
        transfer = SepaTransfer(
            {
                "name": "Kho bac Nha nuoc",
                "IBAN": _iban(999_999_999),
                "BIC": "VBAAVNVX",
                "batch": True,
                "currency": "EUR",
            },
            schema="pain.001.001.09",
        )
        for payment in payments:
            transfer.add_payment(payment)
        data = transfer.export(validate=False)
        result["build_s"] = time.perf_counter() - start
        result["bytes"] = len(data)
    else:
        written = write_pain001(_batch(orders), check=kind in ("gateway", "gateway+hsm"))
        built = time.perf_counter()
        result["build_s"] = built - start
        if kind in ("gateway", "gateway+hsm"):
            body = sign_enveloped_text(written.canonical, keypair, check=written.check)
            result["sign_s"] = time.perf_counter() - built
            result["bytes"] = len(body)
    result["total_s"] = sum(
        float(result.get(key, 0))
        for key in ("build_s", "sign_s")  # type: ignore[arg-type]
    )
    result["peak_kb"] = _status("VmHWM")
    return result


TOKEN = "bench"  # noqa: S105 - the SoftHSM2 token's label, not a secret


def _token(keys: Path) -> Any:
    """The benchmark's SoftHSM2 token, in `keys` (SOFTHSM2_CONF is set by the parent)."""
    from gateway.adapters.pkcs11 import Token, TokenConfig
    from gateway.adapters.softhsm import softhsm_module

    return Token(TokenConfig(module=softhsm_module() or "", token=TOKEN, keys_dir=keys / "hsm"))


def _token_key(keys: Path) -> Any:
    """The key in the token, its session open and logged in (as in a running gateway)."""
    from gateway.adapters.pkcs11 import TokenKeyStore

    return TokenKeyStore(_token(keys), "bench").ring().current


def _make_token(keys: Path) -> None:
    """Initialise the token and make the RSA-3072 key in it; children inherit the variables."""
    import os

    from gateway.adapters.pkcs11 import create_key
    from gateway.adapters.softhsm import init_token, softhsm_conf

    conf = softhsm_conf(keys / "softhsm")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ["GATEWAY_PKCS11_PIN"] = init_token(conf, TOKEN, "246810").pin
    since, until = datetime(2024, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    token = _token(keys)
    create_key(
        token, "bench", curve=False, common_name="bench", valid_from=since, valid_until=until
    )
    token.close()


def _row(row: dict[str, Any]) -> str:
    """One line of the table."""

    def cell(key: str, width: int = 8) -> str:
        return f"{row[key]:{width}.3f}" if key in row else f"{'-':>{width}}"

    base, peak = row["base_kb"] / 1024, row["peak_kb"] / 1024
    size = row["bytes"] / 1e6 if "bytes" in row else 0
    return (
        f"{row['kind']:11} {row['txs']:>7} {cell('build_s')} {cell('sign_s', 12)} "
        f"{cell('total_s')} {cell('best_s')} "
        f"{base:8.0f} {peak:8.0f} {peak - base:9.0f} {size:8.1f}"
    )


def _run_child(kind: str, count: int, keys: str) -> dict[str, Any]:
    """One measurement in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(count), keys],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _ensure_sepaxml() -> None:
    if importlib.util.find_spec("sepaxml") is None:
        print(f"installing {SEPAXML} into {sys.prefix} (benchmark only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", SEPAXML], check=True)


KINDS = ("gateway", "gateway*", "sepaxml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure; the median run is shown"
    )
    parser.add_argument(
        "--pkcs11", action="store_true", help="also sign with the key in a SoftHSM2 token"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the median rows as one JSON list (no progress)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("KIND", "COUNT", "KEYS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        kind, count, keys = args.child
        print(json.dumps(child(kind, int(count), keys)))
        return
    _ensure_sepaxml()
    from gateway import signing
    from gateway.progress import Progress

    # On a terminal, a line says which run is being measured.
    progress = Progress("bench_build", enabled=False if args.json else None)
    where = Path(signing.__file__ or "").resolve().relative_to(ROOT)
    header = (
        f"{'kind':11} {'txs':>7} {'build s':>8} {'valid+sign s':>12} {'total s':>8} "
        f"{'best s':>8} "
        f"{'base MB':>8} {'peak MB':>8} {'added MB':>9} {'file MB':>8}"
    )
    kinds = ("gateway", "gateway+hsm", "gateway*", "sepaxml") if args.pkcs11 else KINDS
    with tempfile.TemporaryDirectory() as keys:
        if args.pkcs11:
            _make_token(Path(keys))
        rows = []
        for count in (int(size) for size in args.sizes.split(",")):
            # The kinds take turns, so that a busy moment of the machine is shared among them.
            by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            for run in range(1, args.repeat + 1):
                for kind in kinds:
                    progress.update(
                        f"{count:,} txs, run {run} of {args.repeat}: {kind}", force=True
                    )
                    by_kind[kind].append(_run_child(kind, count, keys))
            for kind in kinds:
                runs = sorted(by_kind[kind], key=lambda run: float(run["total_s"]))
                median = dict(runs[len(runs) // 2])
                median["best_s"] = runs[0]["total_s"]
                median["peak_kb"] = max(int(run["peak_kb"]) for run in runs)
                rows.append(median)
    progress.clear()
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return
    print(f"signing: {signing.__name__}.xmldsig.sign_enveloped_text as on this branch ({where})")
    print(header)
    for row in rows:
        print(_row(row))
    by = {(r["kind"], r["txs"]): r for r in rows}
    for count in (int(size) for size in args.sizes.split(",")):
        ours, same, theirs = by[("gateway", count)], by[("gateway*", count)], by[("sepaxml", count)]
        print(
            f"{count} txs: sepaxml build / gateway build (same EUR input) = "
            f"{theirs['build_s'] / same['build_s']:.1f}x; "
            f"sepaxml build alone / gateway build+validate+sign = "
            f"{theirs['build_s'] / ours['total_s']:.2f}x"
        )
    print(
        "build s: the text written (a large file's pieces XSD-checked beside it);"
        " valid+sign s: the rest of the XSD check (the whole tree for a small file), then the"
        " enveloped signature of the text (wall clock, up to the file's bytes)"
    )
    if not all(row["peak_reset"] for row in rows):
        print("note: /proc/self/clear_refs was not writable: peaks include generating the orders")


if __name__ == "__main__":
    main()
