"""Settings and partner profiles: defaults, then conf/*.toml, then GATEWAY_* variables."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, UnknownPartner
from gateway.profile import PartnerProfile, load_partner, load_partners

__all__ = ["DEFAULT_AMQP_URL", "PartnerProfile", "Settings", "load_partner", "load_settings"]

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway needs to start; one frozen value, loaded once."""

    # Folder holding conf/, schemas/, keys/ and var/.
    home: Path
    # RabbitMQ URL; for a cluster, one URL per node, comma-separated (in conf/gateway.toml also a
    # list): every connection tries them in turn (see gateway/adapters/amqp_connect.py).
    amqp_url: str = DEFAULT_AMQP_URL
    # Members each quorum queue is declared with (x-quorum-initial-group-size); 0: as many as
    # broker URLs are configured when there are several (3 URLs, 3 members), else the broker's
    # default (every node of the cluster).
    quorum_initial_group_size: int = 0
    # SQLite database file; relative paths are under home (used unless db_url names another).
    db_path: str = "var/gateway.db"
    # Database URL: postgresql://user@host:port/dbname for several instances on PostgreSQL,
    # sqlite:///path for another SQLite file; empty means SQLite at db_path.
    db_url: str = ""
    # Seconds an instance holds claimed work (a batch group, its file relay's outbox messages)
    # before another instance may take it over (the holder died or stalled); on PostgreSQL also
    # how long the relay's transaction may wait for the broker's confirms.
    claim_seconds: float = 30.0
    # Where our keys and generated demo keys live; relative paths are under home.
    keys_dir: str = "keys"
    # Where refused inbound files are kept, by SHA-256 (their rows are in the database); relative
    # paths are under home.
    quarantine_dir: str = "var/quarantine"
    # Name of our signing key pair inside keys_dir (with key_source pkcs11: its label in the token).
    signing_key: str = "kbnn-gateway"
    # Where our private keys live: "files" (keys_dir) or "pkcs11" (an HSM token).
    key_source: str = "files"
    # The HSM's PKCS#11 module (its vendor's library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    pkcs11_module: str = ""
    # Label of the token holding our keys.
    pkcs11_token: str = ""
    # File holding the token's user PIN (GATEWAY_PKCS11_PIN, when set, comes first); never the PIN.
    pkcs11_pin_file: str = ""
    # Where the certificates of token keys are read: "token" (beside the key) or "keys" (keys_dir).
    pkcs11_certificates: str = "token"
    # Name the treasury signs and initiates payments as.
    initiating_party: str = "Kho bạc Nhà nước Phú Lương"
    # Seconds a batch must stay without new orders before it is cut into a file.
    batch_quiet_seconds: float = 2.0
    # Orders taken from the broker before one database commit and one multiple-ack.
    intake_chunk: int = 500
    # Unacknowledged messages the broker may push to each consumer (scripts/measure-prefetch:
    # flat from intake_chunk up, collapsing below it; 2 chunks keep one buffered per commit).
    prefetch: int = 1000
    # Deliveries after which the broker parks a message (quorum queue delivery-limit).
    delivery_limit: int = 5
    # Seconds an outbox relay pauses after a poll that found nothing (the pause then doubles,
    # up to relay_idle_limit).
    relay_interval: float = 0.05
    # Longest pause of an outbox relay that keeps finding nothing: each empty poll doubles the
    # pause from relay_interval up to this; one that finds a message brings it back.
    relay_idle_limit: float = 0.4
    # Seconds between two looks for files past their partner's status deadline.
    deadline_check_seconds: float = 30.0
    # Bank simulator misbehaviour, e.g. "duplicate=0.1,delay=0.1,reorder=0.2,drop=0.05,seed=7".
    banksim_faults: str = ""
    # "json" for production, "console" for a terminal.
    log_format: str = "json"
    # Log level name.
    log_level: str = "info"
    # ISO date-time with offset taken as the arrival of every order by the cut-off rules, for
    # replaying a past month (the demo does); empty means the moment intake receives it.
    as_of: str = ""
    # Processes `gateway run` starts for the reports role (applying the banks' files), beside
    # itself running the main role: a number (0: both roles in one process), or "auto": one per
    # core beyond the first, at most 4.
    reports_processes: str = "auto"
    # Seconds without an order after which the main role's process applies the banks' files
    # too, one at a time, beside the reports role's processes (0: it never does).
    main_applies_after: float = 1.0
    # Port serving Prometheus metrics at /metrics while `gateway run` runs; 0 serves none (the
    # reports processes of `gateway run` serve theirs on the next ports).
    metrics_port: int = 9464
    # Address the metrics port is bound to (0.0.0.0 to be scraped from other machines).
    metrics_address: str = "127.0.0.1"
    # Port of the operations console (`gateway console`, or `gateway run` with console_with_run).
    console_port: int = 8470
    # Address the console is bound to; keep 127.0.0.1 and put a TLS proxy in front, or set TLS.
    console_address: str = "127.0.0.1"
    # Whether `gateway run` serves the console too.
    console_with_run: bool = False
    # File holding the console's cookie-signing secret (created, mode 0600, when missing);
    # GATEWAY_CONSOLE_SECRET, when set, comes first. Relative paths are under home.
    console_secret_file: str = "var/console.secret"  # noqa: S105 - a path, not a secret
    # Certificate and key (PEM) to serve the console over TLS (then cookies are Secure).
    console_tls_cert: str = ""
    console_tls_key: str = ""
    # Partner profiles by name.
    partners: dict[str, PartnerProfile] = field(default_factory=dict)

    def path(self, value: str) -> Path:
        """A configured path resolved against home."""
        candidate = Path(value)
        return candidate if candidate.is_absolute() else self.home / candidate

    @property
    def db_file(self) -> Path:
        """The SQLite database file."""
        return self.path(self.db_path)

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite file the settings name (db_url `sqlite:///path`, else db_path); None when
        db_url names another database."""
        if not self.db_url:
            return self.db_file
        if self.db_url.startswith("sqlite:///"):
            return Path(self.db_url.removeprefix("sqlite://"))
        return None

    @property
    def database(self) -> str:
        """Which database the gateway uses: `postgresql` or `sqlite`."""
        return "postgresql" if self.db_url.startswith(("postgresql:", "postgres:")) else "sqlite"

    @property
    def quarantine_path(self) -> Path:
        """The quarantine folder."""
        return self.path(self.quarantine_dir)

    @property
    def amqp_urls(self) -> list[str]:
        """The broker URLs, one per node."""
        return [url.strip() for url in self.amqp_url.split(",") if url.strip()]

    @property
    def quorum_group_size(self) -> int:
        """Members of each quorum queue to ask for; 0 leaves it to the broker."""
        if self.quorum_initial_group_size > 0:
            return self.quorum_initial_group_size
        urls = self.amqp_urls
        return len(urls) if len(urls) > 1 else 0

    @property
    def keys_path(self) -> Path:
        """The keys folder."""
        return self.path(self.keys_dir)

    def partner(self, name: str) -> PartnerProfile:
        """The profile of the partner `name`; UnknownPartner, naming the known ones, when there
        is none. Every command that takes --partner looks it up here."""
        profile = self.partners.get(name)
        if profile is None:
            known = ", ".join(sorted(self.partners)) or "none"
            raise UnknownPartner(
                f"no partner profile named {name!r} in conf/partners/ (known: {known})"
            )
        return profile

    def partner_for_account(self, account: str) -> PartnerProfile | None:
        """The partner holding this debtor account, if any."""
        for partner in self.partners.values():
            if account in partner.accounts:
                return partner
        return None


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
# The settings whose value is one of a few words, and those words.
_CHOICES = {
    "log_format": ("json", "console"),
    # The logging module's level names, in any case (warn, fatal and notset among them).
    "log_level": ("debug", "info", "warning", "error", "critical", "warn", "fatal", "notset"),
}
# Settings that are TCP ports (0: none served).
_PORTS = ("metrics_port", "console_port")


def _coerce(name: str, raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        if raw.lower() in _TRUE + _FALSE:
            return raw.lower() in _TRUE
        raise ConfigError(
            f"GATEWAY_{name.upper()} must be one of true, false (or 1, 0, yes, no, on, off),"
            f" got {raw!r}"
        )
    if isinstance(current, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"GATEWAY_{name.upper()} must be an integer, got {raw!r}") from None
    if isinstance(current, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"GATEWAY_{name.upper()} must be a number, got {raw!r}") from None
    return raw


def _from_file(name: str, value: Any, current: Any, where: Path) -> Any:
    """A conf/gateway.toml value, of the type its setting holds (a wrong one named, as a
    GATEWAY_* variable's is): true or false, an integer, a number, or a quoted string; `as_of`
    may also be a TOML date-time with its offset."""
    if name == "reports_processes" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a number, or "auto"
    if name == "as_of" and isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"{where}: as_of {value.isoformat()} has no UTC offset")
        return value.isoformat()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(current, bool):
        fits, kind = isinstance(value, bool), "true or false"
    elif isinstance(current, int):
        fits, kind = number and isinstance(value, int), "an integer"
    elif isinstance(current, float):
        fits, kind = number, "a number"
        value = float(value) if fits else value
    else:
        fits, kind = isinstance(value, str), 'a string (in "quotes")'
    if not fits:
        raise ConfigError(f"{where}: {name} must be {kind}, got {value!r}")
    return value


def _checked(values: dict[str, Any], named: Callable[[str], str]) -> None:
    """Refuse a word no setting of `_CHOICES` knows, and a port out of range (`named` says
    where a setting was given); the words are kept in lower case, as the logs compare them."""
    for name, words in _CHOICES.items():
        value = values.get(name)
        if value is None:
            continue
        if str(value).lower() not in words:
            raise ConfigError(f"{named(name)} must be one of {', '.join(words)}, got {value!r}")
        values[name] = str(value).lower()  # as the logs compare them
    for name in _PORTS:
        value = values.get(name)
        if value is not None and not 0 <= value <= 65535:
            raise ConfigError(f"{named(name)} must be a TCP port (0 to 65535), got {value}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _home() -> Path:
    explicit = os.environ.get("GATEWAY_HOME")
    if explicit:
        return Path(explicit).resolve()
    here = Path(__file__).resolve().parents[1]
    if (here / "conf").is_dir():
        return here
    return Path.cwd()


def load_settings(home: Path | None = None, **overrides: Any) -> Settings:
    """Defaults, then conf/gateway.toml, then GATEWAY_* variables, then explicit arguments."""
    root = (home or _home()).resolve()
    values: dict[str, Any] = {}
    conf_file = root / "conf" / "gateway.toml"
    if conf_file.exists():
        document = _read_toml(conf_file)
        outside = sorted(set(document) - {"gateway"})
        if outside:
            raise ConfigError(
                f"{conf_file}: {', '.join(outside)} outside the [gateway] table (every setting"
                " goes under [gateway])"
            )
        table = document.get("gateway", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{conf_file}: gateway must be the table [gateway], got {table!r}")
        values.update(table)
    simple = {f.name: f for f in fields(Settings) if f.name not in ("home", "partners")}
    unknown = sorted(set(values) - set(simple))
    if "console_secret" in unknown:
        raise ConfigError(
            f"{conf_file}: console_secret: the secret is never written in the configuration; set"
            " GATEWAY_CONSOLE_SECRET or let console_secret_file hold it"
        )
    if "pkcs11_pin" in unknown:
        raise ConfigError(
            f"{conf_file}: pkcs11_pin: the PIN is never written in the configuration; set"
            " GATEWAY_PKCS11_PIN or name a file holding it with pkcs11_pin_file"
        )
    if unknown:
        raise ConfigError(f"{conf_file}: unknown key(s) {', '.join(unknown)}")
    if isinstance(values.get("amqp_url"), list):
        # A cluster's nodes, as a list: the same as the comma-separated form.
        values["amqp_url"] = ",".join(str(url).strip() for url in values["amqp_url"])
    defaults = Settings(home=root)
    values = {
        name: _from_file(name, value, getattr(defaults, name), conf_file)
        for name, value in values.items()
    }
    _checked(values, lambda name: f"{conf_file}: {name}")
    from_environment: dict[str, Any] = {}
    for name in simple:
        raw = os.environ.get(f"GATEWAY_{name.upper()}")
        if raw is not None:
            from_environment[name] = _coerce(name, raw, getattr(defaults, name))
    _checked(from_environment, lambda name: f"GATEWAY_{name.upper()}")
    values.update(from_environment)
    values.update({k: v for k, v in overrides.items() if k != "partners"})
    partner_dir = root / "conf" / "partners"
    partners = load_partners(partner_dir) if partner_dir.is_dir() else {}
    partners.update(overrides.get("partners", {}))
    return Settings(home=root, partners=partners, **values)
