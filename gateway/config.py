"""Settings and partner profiles: defaults, then conf/*.toml, then GATEWAY_* variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
# The pain.001 versions the builder writes.
PAIN001_VERSIONS = ("pain.001.001.09", "pain.001.001.03")


@dataclass(frozen=True, slots=True)
class PartnerProfile:
    """How one bank partner is reached and trusted."""

    # Short name used in queues, file names and postings, e.g. "agribank".
    name: str
    # The partner bank's BIC.
    bic: str
    # "amqp" (exchanges on the broker); file exchange comes with the files transport.
    transport: str = "amqp"
    # pain.001 version the partner accepts.
    pain001_version: str = "pain.001.001.09"
    # Debtor accounts (the treasury's own) held at this partner; orders are routed by them.
    accounts: tuple[str, ...] = ()
    # The partner's signing certificate (PEM), pinned; relative paths are under GATEWAY_HOME.
    certificate: str = ""
    # Minutes within which a status report is expected for each file sent.
    status_deadline_minutes: int = 60
    # Most transactions in one pain.001 file.
    max_txs_per_file: int = 50_000


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the gateway needs to start; one frozen value, loaded once."""

    # Folder holding conf/, schemas/, keys/ and var/.
    home: Path
    # RabbitMQ URL.
    amqp_url: str = DEFAULT_AMQP_URL
    # SQLite database file; relative paths are under home.
    db_path: str = "var/gateway.db"
    # Where our keys and generated demo keys live; relative paths are under home.
    keys_dir: str = "keys"
    # Name of our signing key pair inside keys_dir.
    signing_key: str = "kbnn-gateway"
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
    # Seconds between outbox relay polls when it is idle.
    relay_interval: float = 0.05
    # Seconds between two looks for files past their partner's status deadline.
    deadline_check_seconds: float = 30.0
    # Bank simulator misbehaviour, e.g. "duplicate=0.1,delay=0.1,reorder=0.2,drop=0.05,seed=7".
    banksim_faults: str = ""
    # "json" for production, "console" for a terminal.
    log_format: str = "json"
    # Log level name.
    log_level: str = "info"
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
    def keys_path(self) -> Path:
        """The keys folder."""
        return self.path(self.keys_dir)

    def partner_for_account(self, account: str) -> PartnerProfile | None:
        """The partner holding this debtor account, if any."""
        for partner in self.partners.values():
            if account in partner.accounts:
                return partner
        return None


def _coerce(name: str, raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        return raw.lower() in ("1", "true", "yes", "on")
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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_partner(path: Path) -> PartnerProfile:
    """Read one partner profile, naming the file and key of any mistake."""
    data = _read_toml(path)
    known = {f.name for f in fields(PartnerProfile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    for required in ("name", "bic"):
        if required not in data:
            raise ConfigError(f"{path}: missing required key {required!r}")
    version = data.get("pain001_version", "pain.001.001.09")
    if version not in PAIN001_VERSIONS:
        raise ConfigError(
            f"{path}: pain001_version {version!r} is not one the gateway writes;"
            f" use one of {', '.join(PAIN001_VERSIONS)}"
        )
    if data.get("transport", "amqp") != "amqp":
        raise ConfigError(f"{path}: transport {data['transport']!r} is not supported yet; use amqp")
    if "accounts" in data:
        data["accounts"] = tuple(str(account) for account in data["accounts"])
    return PartnerProfile(**data)


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
        values.update(_read_toml(conf_file).get("gateway", {}))
    simple = {f.name: f for f in fields(Settings) if f.name not in ("home", "partners")}
    unknown = sorted(set(values) - set(simple))
    if unknown:
        raise ConfigError(f"{conf_file}: unknown key(s) {', '.join(unknown)}")
    defaults = Settings(home=root)
    for name in simple:
        raw = os.environ.get(f"GATEWAY_{name.upper()}")
        if raw is not None:
            values[name] = _coerce(name, raw, getattr(defaults, name))
    values.update({k: v for k, v in overrides.items() if k != "partners"})
    partners: dict[str, PartnerProfile] = {}
    partner_dir = root / "conf" / "partners"
    if partner_dir.is_dir():
        for path in sorted(partner_dir.glob("*.toml")):
            profile = load_partner(path)
            partners[profile.name] = profile
    partners.update(overrides.get("partners", {}))
    return Settings(home=root, partners=partners, **values)
