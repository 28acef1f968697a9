"""Partner profiles: every kind of mistake stops the start with its own clear message."""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.profile import load_partner, load_partners
from tests.conftest import ROOT

FILES_PARTNER = """
name = "vietinbank"
bic = "ICBVVNVX"
transport = "files"
accounts = ["BBAN:108800512345"]
status_deadline_minutes = 90

[messages]
pain001_version = "pain.001.001.09"

[signature]
mode = "enveloped"
[[signature.certificates]]
path = "keys/banksim-vietinbank.cert.pem"

[schedule]
timezone = "Asia/Ho_Chi_Minh"
cutoff = "16:00"
calendar = "VN"
off_day = "refuse"

[files]
outbound = "var/exchange/vietinbank/out"
inbound = "var/exchange/vietinbank/in"
poll_seconds = 1.5
settle_seconds = 1
"""

SFTP = """
access = "sftp"
[files.sftp]
host = "127.0.0.1"
port = 2222
user = "kbnn"
key = "keys/sftp-kbnn"
host_key = "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"
"""


def write(tmp_path: Path, text: str, name: str = "partner.toml") -> Path:
    """The profile text in a file."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str, base: str = FILES_PARTNER) -> str:
    """The base profile with one line replaced; the line must be there."""
    assert old in base, old
    return base.replace(old, new, 1)


def refused(tmp_path: Path, text: str) -> str:
    """The one-line message a broken profile is refused with."""
    with pytest.raises(ConfigError) as caught:
        load_partner(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "partner.toml") in message  # the file is always named
    return message


def test_the_shipped_profiles_load() -> None:
    """conf/partners: agribank over AMQP and vietinbank over files, each valid."""
    partners = load_partners(ROOT / "conf" / "partners")
    assert partners["agribank"].transport == "amqp"
    assert partners["vietinbank"].transport == "files"
    assert partners["vietinbank"].files is not None


def test_a_euro_partner_with_its_market_closing_days_and_half_days(tmp_path: Path) -> None:
    """calendar names a financial market (ECB: TARGET2); the bank's own closing days and half
    days, and the cut-off boundary, are read as written."""
    text = FILES_PARTNER.replace(
        'calendar = "VN"\noff_day = "refuse"',
        'calendar = "ECB"\noff_day = "refuse"\ncutoff_boundary = "exclusive"\n'
        'closed_days = [2026-12-31, "2027-01-04"]\n'
        '[[schedule.half_days]]\ndate = 2026-12-24\ncutoff = "12:00"',
    )
    schedule = load_partner(write(tmp_path, text)).schedule
    assert (schedule.calendar, schedule.cutoff_boundary) == ("ECB", "exclusive")
    assert schedule.closed_days == {date(2026, 12, 31), date(2027, 1, 4)}
    assert schedule.half_days == ((date(2026, 12, 24), time(12, 0)),)


def test_the_shipped_profiles_state_their_cutoff_boundary() -> None:
    """The boundary is explicit in each shipped profile, not left to a default."""
    for path in sorted((ROOT / "conf" / "partners").glob("*.toml")):
        assert 'cutoff_boundary = "inclusive"' in path.read_text(encoding="utf-8"), path


def test_a_full_files_profile_is_read(tmp_path: Path) -> None:
    """Every setting of a files partner reaches the profile."""
    profile = load_partner(write(tmp_path, FILES_PARTNER))
    assert profile.name == "vietinbank"
    assert profile.status_deadline_minutes == 90
    assert profile.schedule.cutoff == time(16, 0)
    assert profile.schedule.off_day == "refuse"
    assert profile.files is not None
    assert profile.files.poll_seconds == 1.5
    assert profile.files.settle_seconds == 1.0
    assert profile.files.access == "local"
    assert profile.files.sftp is None


def test_an_sftp_profile_is_read(tmp_path: Path) -> None:
    """[files.sftp] gives host, port, user, key and the pinned host key."""
    text = FILES_PARTNER.replace("settle_seconds = 1", "settle_seconds = 1" + SFTP)
    profile = load_partner(write(tmp_path, text))
    assert profile.files is not None and profile.files.sftp is not None
    assert profile.files.access == "sftp"
    assert profile.files.sftp.port == 2222
    assert profile.files.sftp.host_key.startswith("SHA256:")


MISTAKES = [
    # (what is wrong, old line, new line, the message must say)
    ("toml", 'bic = "ICBVVNVX"', 'bic = "ICBVVNVX', "(at line 3, column 16)"),
    ("unknown top key", "status_deadline_minutes = 90", "status_deadline = 90", "unknown key"),
    ("name", 'name = "vietinbank"', 'name = "VietinBank"', "name 'VietinBank' must be 2-31"),
    ("name missing", 'name = "vietinbank"', "", "name is required"),
    ("bic", 'bic = "ICBVVNVX"', 'bic = "ICBV"', "bic 'ICBV' is not a BIC"),
    ("transport", 'transport = "files"', 'transport = "ftp"', "transport is 'ftp'; use one of"),
    ("account", "accounts = [", 'accounts = ["7411 0582", ', "is neither an IBAN nor"),
    ("accounts not a list", 'accounts = ["BBAN:108800512345"]', 'accounts = "x"', "list of"),
    (
        "account twice",
        'accounts = ["BBAN:108800512345"]',
        'accounts = ["BBAN:1", "BBAN:1"]',
        "lists BBAN:1 more than once",
    ),
    ("deadline", "status_deadline_minutes = 90", "status_deadline_minutes = 0", "at least 1"),
    ("deadline type", "status_deadline_minutes = 90", 'status_deadline_minutes = "90"', "whole"),
    # [messages] (its checks belong to the messages module; shown through load_partner)
    (
        "pain.001 version",
        'pain001_version = "pain.001.001.09"',
        'pain001_version = "pain.001.001.12"',
        "[messages] pain001_version is 'pain.001.001.12'",
    ),
    ("charset", "[messages]", '[messages]\ncharset = "ascii"', "[messages] charset is 'ascii'"),
    ("account style", "[messages]", '[messages]\naccount_id = "bban"', "[messages] account_id"),
    ("app header", "[messages]", '[messages]\napp_header = "yes"', "must be true or false"),
    ("batching", "[messages]", "[messages]\nmax_txs_per_file = 0", "max_txs_per_file must be"),
    # [signature]
    ("signature mode", 'mode = "enveloped"', 'mode = "pgp"', "[signature] mode is 'pgp'"),
    ("our key", 'mode = "enveloped"', 'mode = "enveloped"\nkey = 7', "[signature] key must be"),
    (
        "no certificate",
        '[[signature.certificates]]\npath = "keys/banksim-vietinbank.cert.pem"',
        "",
        "certificates are required with mode 'enveloped'",
    ),
    (
        "certificate window",
        'path = "keys/banksim-vietinbank.cert.pem"',
        'path = "k.pem"\nnot_before = 2027-01-01T00:00:00+07:00\n'
        "not_after = 2026-01-01T00:00:00+07:00",
        "not_after must be later than not_before",
    ),
    (
        "certificate date without offset",
        'path = "keys/banksim-vietinbank.cert.pem"',
        'path = "k.pem"\nnot_after = 2027-01-01T00:00:00',
        "must be a date-time with an offset",
    ),
    # [schedule]
    ("time zone", 'timezone = "Asia/Ho_Chi_Minh"', 'timezone = "Asia/Hanoi_City"', "IANA"),
    ("cut-off", 'cutoff = "16:00"', 'cutoff = "4pm"', "[schedule] cutoff '4pm' is not a time"),
    ("cut-off with offset", 'cutoff = "16:00"', 'cutoff = "16:00+07:00"', "carries an offset"),
    (
        "calendar",
        'calendar = "VN"',
        'calendar = "XX"',
        "[schedule] calendar 'XX' is neither a country code nor a financial market",
    ),
    (
        "cut-off boundary",
        'off_day = "refuse"',
        'off_day = "refuse"\ncutoff_boundary = "before"',
        "[schedule] cutoff_boundary is 'before'; use one of inclusive, exclusive",
    ),
    (
        "closing day",
        'off_day = "refuse"',
        'off_day = "refuse"\nclosed_days = ["2026-02-30"]',
        "[schedule] closed_days '2026-02-30' is not a date like 2026-12-31",
    ),
    (
        "closing days not a list",
        'off_day = "refuse"',
        'off_day = "refuse"\nclosed_days = 2026-12-31',
        "[schedule] closed_days must be a list of dates",
    ),
    (
        "half day cut-off",
        'off_day = "refuse"',
        'off_day = "refuse"\n[[schedule.half_days]]\ndate = 2026-12-24\ncutoff = "noon"',
        "[schedule.half_days[0]] cutoff 'noon' is not a time like 15:30",
    ),
    (
        "half day without date",
        'off_day = "refuse"',
        'off_day = "refuse"\n[[schedule.half_days]]\ncutoff = "12:00"',
        "[schedule.half_days[0]] date is required",
    ),
    (
        "half day and closing day",
        'off_day = "refuse"',
        'off_day = "refuse"\nclosed_days = [2026-12-24]\n'
        '[[schedule.half_days]]\ndate = 2026-12-24\ncutoff = "12:00"',
        "[schedule] closed_days 2026-12-24 is also a half day",
    ),
    ("off day", 'off_day = "refuse"', 'off_day = "skip"', "[schedule] off_day is 'skip'"),
    ("unknown schedule key", 'off_day = "refuse"', 'offday = "refuse"', "[schedule] unknown key"),
    # [files]
    ("no outbound", 'outbound = "var/exchange/vietinbank/out"', "", "[files] outbound is required"),
    ("blank inbound", 'inbound = "var/exchange/vietinbank/in"', 'inbound = " "', "not be empty"),
    (
        "one folder for both",
        'inbound = "var/exchange/vietinbank/in"',
        'inbound = "var/exchange/vietinbank/out/"',
        "[files] inbound must be another folder than outbound",
    ),
    ("poll", "poll_seconds = 1.5", "poll_seconds = 0", "[files] poll_seconds must be at least"),
    ("settle", "settle_seconds = 1", 'settle_seconds = "1s"', "settle_seconds must be a number"),
    ("poll as flag", "poll_seconds = 1.5", "poll_seconds = true", "must be a number, got True"),
    (
        "stale claims",
        "settle_seconds = 1",
        "settle_seconds = 1\nstale_claim_seconds = 0",
        "[files] stale_claim_seconds must be at least 1",
    ),
    ("folder type", 'outbound = "var/exchange/vietinbank/out"', "outbound = 5", "must be a string"),
    ("access", "settle_seconds = 1", 'settle_seconds = 1\naccess = "ftp"', "access is 'ftp'"),
    (
        "sftp without its table",
        "settle_seconds = 1",
        'settle_seconds = 1\naccess = "sftp"',
        "[files] sftp is required with access 'sftp'",
    ),
    (
        "sftp table while local",
        "settle_seconds = 1",
        'settle_seconds = 1\n[files.sftp]\nhost = "h"',
        "[files] sftp is set but access is not 'sftp'",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "says"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_each_mistake_has_its_own_message(tmp_path: Path, old: str, new: str, says: str) -> None:
    """One broken line: the start stops, naming the file, table and key, and what is wrong."""
    assert says in refused(tmp_path, edited(old, new))


def test_files_table_on_an_amqp_partner_is_refused(tmp_path: Path) -> None:
    """Folders on a partner reached by AMQP are a mistake, not silently ignored."""
    text = edited('transport = "files"', 'transport = "amqp"')
    assert "[files] outbound is set but transport is not 'files'" in refused(tmp_path, text)


def test_files_transport_without_folders_is_refused(tmp_path: Path) -> None:
    """transport = files needs the [files] table."""
    text = FILES_PARTNER.split("[files]", maxsplit=1)[0]
    assert "[files] outbound is required" in refused(tmp_path, text)


SFTP_MISTAKES = [
    ("host_key", 'host_key = "SHA256:', 'host_key = "MD5:', "is not an SSH key fingerprint"),
    ("short host_key", "SY8", "", "is not an SSH key fingerprint"),
    ("port", "port = 2222", "port = 70000", "[files.sftp] port must be at most 65535"),
    ("port zero", "port = 2222", "port = 0", "[files.sftp] port must be at least 1"),
    ("no user", 'user = "kbnn"', "", "[files.sftp] user is required"),
    ("no key", 'key = "keys/sftp-kbnn"', 'key = ""', "[files.sftp] key must not be empty"),
    ("no host", 'host = "127.0.0.1"', "", "[files.sftp] host is required"),
    ("unknown", 'user = "kbnn"', 'user = "kbnn"\npassword = "x"', "[files.sftp] unknown key"),
]


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [m[1:] for m in SFTP_MISTAKES],
    ids=[m[0] for m in SFTP_MISTAKES],
)
def test_each_sftp_mistake_has_its_own_message(
    tmp_path: Path, old: str, new: str, says: str
) -> None:
    """[files.sftp] is checked key by key too."""
    base = FILES_PARTNER.replace("settle_seconds = 1", "settle_seconds = 1" + SFTP)
    assert says in refused(tmp_path, edited(old, new, base))


def test_two_profiles_with_one_name_are_refused(tmp_path: Path) -> None:
    """Two files naming the same partner: the second is named, nothing is silently replaced."""
    write(tmp_path, FILES_PARTNER, "a.toml")
    other = edited('accounts = ["BBAN:108800512345"]', 'accounts = ["BBAN:1"]')
    write(tmp_path, other.replace("/vietinbank/", "/other/"), "b.toml")
    with pytest.raises(ConfigError, match=re.escape("name 'vietinbank' is already used")):
        load_partners(tmp_path)


def test_one_account_at_two_partners_is_refused(tmp_path: Path) -> None:
    """Orders are routed by debtor account: an account held by two partners is ambiguous."""
    write(tmp_path, FILES_PARTNER, "a.toml")
    other = edited('name = "vietinbank"', 'name = "bidv"').replace("/vietinbank/", "/bidv/")
    write(tmp_path, other, "b.toml")
    with pytest.raises(ConfigError, match="BBAN:108800512345 is already held by partner"):
        load_partners(tmp_path)


def test_one_folder_for_two_partners_is_refused(tmp_path: Path) -> None:
    """Two partners sharing a folder would read each other's reports."""
    write(tmp_path, FILES_PARTNER, "a.toml")
    other = edited('name = "vietinbank"', 'name = "bidv"')
    write(tmp_path, other.replace("BBAN:108800512345", "BBAN:2"), "b.toml")
    with pytest.raises(ConfigError, match="is already used by partner vietinbank"):
        load_partners(tmp_path)
