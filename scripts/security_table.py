"""Print the README's hostile-input table from the corpus the tests run, with each actual reason.

Usage: .venv/bin/python scripts/security_table.py

Every case goes through the real InboundService into a throw-away database; the reason shown is
the one recorded in quarantine, so the table cannot drift from the code.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway import logs  # noqa: E402
from gateway.adapters.persistence.sqlite import SqliteStorage  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.service.inbound import InboundService  # noqa: E402
from tests.security.corpus import PARTNERS, build, make_keys, reason_is  # noqa: E402
from tests.security.test_hostile_corpus import _profile  # noqa: E402


def main() -> None:
    logs.configure("json", "critical", stream=sys.stderr)
    keys = make_keys()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        (home / "schemas").symlink_to(ROOT / "schemas")
        (home / "certs").mkdir()
        for name, pair in (("bank", keys.bank), ("expired", keys.expired), ("weak", keys.weak)):
            (home / "certs" / f"{name}.cert.pem").write_bytes(pair.cert_pem)
        partners = home / "conf" / "partners"
        partners.mkdir(parents=True)
        pins = {"bank-old": "expired", "bank-weak": "weak"}
        for name, mode in PARTNERS.items():
            window = "2026-06-30T00:00:00Z" if name == "bank-window" else None
            cert = f"certs/{pins.get(name, 'bank')}.cert.pem"
            (partners / f"{name}.toml").write_text(_profile(name, mode, cert, window))
        settings = load_settings(home, db_path=str(home / "g.db"), keys_dir=str(home / "keys"))
        fifo = home / "never-read"
        cases = build(keys, fifo, "http://127.0.0.1:9")
        db = SqliteStorage(settings.db_file)
        service = InboundService(db, settings)
        print("| # | group | case | attack | outcome and reason recorded in quarantine |")
        print("|---|---|---|---|---|")
        for number, case in enumerate(cases, start=1):
            outcome = service.apply(case.partner, case.raw, case.signature)
            rows = db.query(
                "SELECT reason FROM quarantine WHERE partner = ? ORDER BY id DESC LIMIT 1",
                (case.partner,),
            )
            reason = rows[0][0] if rows else "(none)"
            mark = "" if outcome == "quarantined" and reason_is(case, reason) else " **UNEXPECTED**"
            reason = reason.replace("|", "\\|")
            print(
                f"| {number} | {case.group} | `{case.name}` | {case.attack} |"
                f" {outcome}: {reason}{mark} |"
            )


if __name__ == "__main__":
    main()
