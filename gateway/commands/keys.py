"""`gateway keys generate|list|rotate`: the treasury's signing keys, kept in the keys folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.signing.keys import (
    PASSPHRASE_ENV,
    PASSPHRASE_FILE_ENV,
    KeyPair,
    certificate,
    generate_keypair,
    has_pair,
    key_id_of,
    load_pair,
    pair_files,
    passphrase_from_env,
    read_activation,
    store_pair,
    write_atomically,
)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def _passphrase() -> bytes:
    passphrase = passphrase_from_env()
    if not passphrase:
        raise ConfigError(
            f"our keys are stored encrypted: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}"
        )
    return passphrase


def _moment(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date-time") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} needs an offset, e.g. 2027-01-01T00:00:00+07:00")
    return moment


@click.group()
def keys() -> None:
    """The treasury's signing keys: generate, list, rotate."""


@keys.command()
@click.option("--name", default=None, help="Key name (default: the signing_key setting).")
@click.option("--ec", "curve", is_flag=True, help="ECDSA P-256 instead of RSA 3072.")
@click.option("--p12", "pkcs12_format", is_flag=True, help="One PKCS#12 file instead of PEM.")
@click.pass_context
def generate(ctx: click.Context, name: str | None, curve: bool, pkcs12_format: bool) -> None:
    """Generate our signing key and its certificate, encrypted with the passphrase."""
    settings = _settings(ctx)
    name = name or settings.signing_key
    directory = settings.keys_path
    if has_pair(directory, name):
        raise ConfigError(f"key {name!r} already exists in {directory}; use `gateway keys rotate`")
    passphrase = _passphrase()
    key_pem, cert_pem = generate_keypair(f"{settings.initiating_party} - gateway", curve=curve)
    store_pair(directory, name, key_pem, cert_pem, passphrase, pkcs12_format=pkcs12_format)
    pair = load_pair(directory, name, passphrase)
    click.echo(f"generated {name}: key id {pair.key_id}, certificate {_cert_file(directory, name)}")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@click.pass_context
def list_keys(ctx: click.Context, as_json: bool) -> None:
    """List our keys (current, next, retired) and the other certificates in the keys folder."""
    settings = _settings(ctx)
    rows = _rows(settings.keys_path, settings.signing_key)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
        return
    if not rows:
        click.echo(f"no keys in {settings.keys_path}")
    for row in rows:
        activates = f"  signs from {row['activates']}" if row.get("activates") else ""
        validity = f"valid {row['not_before']} to {row['not_after']}" if "not_before" in row else ""
        click.echo(
            f"{row['role']:8} {row['key_id']:16}  {row.get('algorithm', ''):14} {validity:28}"
            f"  {row['file']}{activates}"
        )


@keys.command()
@click.option("--name", default=None, help="Key name (default: the signing_key setting).")
@click.option("--activate-at", "activate_at", required=True, help="ISO date-time with offset.")
@click.option(
    "--export",
    "export_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to put what the banks need (default var/keys-export).",
)
@click.option("--ec", "curve", is_flag=True, help="ECDSA P-256 instead of RSA 3072.")
@click.pass_context
def rotate(
    ctx: click.Context, name: str | None, activate_at: str, export_dir: Path | None, curve: bool
) -> None:
    """Prepare our next key, signing from --activate-at on, and export its certificate."""
    settings = _settings(ctx)
    name = name or settings.signing_key
    directory = settings.keys_path
    when = _moment(activate_at)
    now = datetime.now(UTC)
    if when <= now:
        raise click.BadParameter("the activation must be in the future: banks pin it first")
    passphrase = _passphrase()
    if not has_pair(directory, name):
        raise ConfigError(f"no key {name!r} in {directory}: `gateway keys generate` first")
    if has_pair(directory, f"{name}.next"):
        since = read_activation(directory, name)
        if since > now:
            raise ConfigError(
                f"a next key of {name} is already prepared, signing from {since.isoformat()}"
            )
        _promote(directory, name, passphrase)
        click.echo(f"the next key of {name}, active since {since.isoformat()}, is now current")
    common_name = f"{settings.initiating_party} - gateway"
    key_pem, cert_pem = generate_keypair(common_name, curve=curve, valid_from=now)
    p12 = pair_files(directory, name)[2].exists()
    store_pair(directory, f"{name}.next", key_pem, cert_pem, passphrase, pkcs12_format=p12)
    write_atomically(
        directory / f"{name}.next.activates", (when.isoformat() + "\n").encode(), 0o644
    )
    pair = load_pair(directory, f"{name}.next", passphrase)
    target = export_dir or settings.path("var/keys-export")
    exported = _export(target, name, pair, when)
    click.echo(
        f"prepared the next key of {name}: key id {pair.key_id}, signs from {when.isoformat()};"
        f" give the banks {exported}"
    )


def _promote(directory: Path, name: str, passphrase: bytes) -> None:
    """Retire the current pair and make the (already active) next pair current."""
    current = load_pair(directory, name, passphrase)
    retired = directory / "retired"
    retired.mkdir(mode=0o700, exist_ok=True)
    for path in pair_files(directory, name):
        if path.exists():
            path.replace(retired / path.name.replace(name, f"{name}.{current.key_id}", 1))
    for path in pair_files(directory, f"{name}.next"):
        if path.exists():
            path.replace(directory / path.name.replace(f"{name}.next", name, 1))
    (directory / f"{name}.next.activates").unlink(missing_ok=True)


def _export(target: Path, name: str, pair: KeyPair, when: datetime) -> Path:
    """The certificate and a note for the banks: key id, fingerprint, activation, validity."""
    target.mkdir(parents=True, exist_ok=True)
    cert_path = target / f"{name}-{pair.key_id}.cert.pem"
    cert_path.write_bytes(pair.cert_pem)
    cert = pair.certificate
    note = target / f"{name}-{pair.key_id}.txt"
    note.write_text(
        f"Treasury signing certificate {cert_path.name}\n"
        f"key id (KeyName in our signatures): {pair.key_id}\n"
        f"SHA-256 fingerprint: {cert.fingerprint(hashes.SHA256()).hex(':')}\n"
        f"subject: {cert.subject.rfc4514_string()}\n"
        f"valid: {cert.not_valid_before_utc.isoformat()}"
        f" to {cert.not_valid_after_utc.isoformat()}\n"
        f"our files are signed with it from: {when.isoformat()}\n"
        "Pin it beside the current certificate before that date.\n",
        encoding="utf-8",
    )
    return cert_path


def _cert_file(directory: Path, stem: str) -> Path:
    _, cert_path, p12_path = pair_files(directory, stem)
    return p12_path if p12_path.exists() else cert_path


def _rows(directory: Path, name: str) -> list[dict[str, str]]:
    """Every certificate in the keys folder (and in its PKCS#12 files), with its role."""
    rows: list[dict[str, str]] = []
    if not directory.is_dir():
        return rows
    files = [*directory.glob("*.cert.pem"), *directory.glob("*.p12")]
    files += [*directory.glob("retired/*.cert.pem"), *directory.glob("retired/*.p12")]
    for path in sorted(files):
        stem = path.name.removesuffix(".cert.pem").removesuffix(".p12")
        role = "other"
        if stem == name:
            role = "current"
        elif stem == f"{name}.next":
            role = "next"
        elif path.parent.name == "retired":
            role = "retired"
        if path.suffix == ".p12":
            passphrase = passphrase_from_env()
            if passphrase is None:
                rows.append({"role": role, "key_id": "(locked)", "file": str(path)})
                continue
            pem = load_pair(path.parent, stem, passphrase).cert_pem
        else:
            pem = path.read_bytes()
        row = {"role": role, "key_id": key_id_of(pem), **_describe(pem), "file": str(path)}
        if role == "next":
            row["activates"] = read_activation(directory, name).isoformat()
        rows.append(row)
    return rows


def _describe(pem: bytes) -> dict[str, str]:
    """Algorithm and validity of a certificate."""
    cert = certificate(pem)
    key = cert.public_key()
    algorithm = "?"
    if isinstance(key, rsa.RSAPublicKey):
        algorithm = f"RSA-{key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = f"EC-{key.curve.name}"
    return {
        "algorithm": algorithm,
        "not_before": f"{cert.not_valid_before_utc:%Y-%m-%d}",
        "not_after": f"{cert.not_valid_after_utc:%Y-%m-%d}",
    }
