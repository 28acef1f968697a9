"""`gateway keys generate|list|rotate|import-cert`: the treasury's signing keys, kept in the keys
folder or, with key_source = "pkcs11" (or --pkcs11), in an HSM token."""

from __future__ import annotations

import contextlib
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config import Settings
from gateway.errors import ConfigError
from gateway.signing.keys import (
    CERT_VALIDITY,
    PASSPHRASE_ENV,
    PASSPHRASE_FILE_ENV,
    KeyPair,
    SigningKey,
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
@click.option(
    "--pkcs11",
    "in_token",
    is_flag=True,
    default=None,
    help="In the HSM token the pkcs11_* settings name (default: when key_source is pkcs11).",
)
@click.option(
    "--csr",
    "request",
    is_flag=True,
    help="With --pkcs11: a certificate request for the CA instead of a self-signed certificate.",
)
@click.option(
    "--valid-from",
    "valid_from",
    default=None,
    help="Start of the self-signed certificate's validity (ISO date-time with offset; default"
    " now), e.g. for a demo replaying a past month.",
)
@click.pass_context
def generate(
    ctx: click.Context,
    name: str | None,
    curve: bool,
    pkcs12_format: bool,
    in_token: bool | None,
    request: bool,
    valid_from: str | None,
) -> None:
    """Generate our signing key and its certificate, encrypted with the passphrase (or inside
    the HSM token, never extractable)."""
    settings = _settings(ctx)
    name = name or settings.signing_key
    since = _moment(valid_from) if valid_from else None
    if _uses_token(settings, in_token):
        _generate_in_token(settings, name, curve=curve, request=request, since=since)
        return
    if request:
        raise click.BadParameter("--csr is for a key in the HSM token (--pkcs11)")
    directory = settings.keys_path
    if has_pair(directory, name):
        raise ConfigError(f"key {name!r} already exists in {directory}; use `gateway keys rotate`")
    passphrase = _passphrase()
    key_pem, cert_pem = generate_keypair(
        f"{settings.initiating_party} - gateway", curve=curve, valid_from=since
    )
    store_pair(directory, name, key_pem, cert_pem, passphrase, pkcs12_format=pkcs12_format)
    pair = load_pair(directory, name, passphrase)
    click.echo(f"generated {name}: key id {pair.key_id}, certificate {_cert_file(directory, name)}")


def _uses_token(settings: Settings, flag: bool | None) -> bool:
    return settings.key_source == "pkcs11" if flag is None else flag


def _token(settings: Settings) -> Any:
    from gateway.adapters.pkcs11 import token_for

    return token_for(settings)


def _generate_in_token(
    settings: Settings, name: str, *, curve: bool, request: bool, since: datetime | None
) -> None:
    from gateway.adapters.pkcs11 import create_key

    now = datetime.now(UTC)
    created = create_key(
        _token(settings),
        name,
        curve=curve,
        common_name=f"{settings.initiating_party} - gateway",
        valid_from=since or now - timedelta(minutes=5),
        valid_until=now + CERT_VALIDITY,
        request=request,
    )
    where = f"token {settings.pkcs11_token!r} label {name!r} id {created.id.hex()}"
    if created.request_pem is not None:
        target = settings.path("var/keys-export")
        target.mkdir(parents=True, exist_ok=True)
        path = target / f"{name}.csr.pem"
        path.write_bytes(created.request_pem)
        click.echo(
            f"generated {name} in {where}; certificate request {path}: once the CA signs it,"
            f" `gateway keys import-cert CERT --name {name}`"
        )
        return
    assert created.cert_pem is not None
    click.echo(
        f"generated {name} in {where}: key id {key_id_of(created.cert_pem)}, self-signed"
        f" certificate {settings.keys_path / f'{name}.cert.pem'}"
    )


@keys.command("import-cert")
@click.argument("cert_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Label of the key in the token (default signing_key).")
@click.pass_context
def import_cert(ctx: click.Context, cert_file: Path, name: str | None) -> None:
    """Put the CA's certificate of a key in the HSM token beside it (and in keys/)."""
    from gateway.adapters.pkcs11 import import_certificate

    settings = _settings(ctx)
    name = name or settings.signing_key
    pem = cert_file.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise click.BadParameter(f"{cert_file} is not a PEM certificate")
    key_id = import_certificate(_token(settings), name, pem)
    click.echo(
        f"imported the certificate of {name} (token id {key_id.hex()}): key id {key_id_of(pem)}"
    )


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
@click.pass_context
def list_keys(ctx: click.Context, as_json: bool) -> None:
    """List our keys (current, next, retired) and the other certificates in the keys folder."""
    settings = _settings(ctx)
    rows = _rows(settings.keys_path, settings.signing_key)
    if settings.key_source == "pkcs11":
        rows = _token_rows(settings) + [row for row in rows if row["role"] == "other"]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
    else:
        if not rows:
            click.echo(f"no keys in {settings.keys_path}")
        for row in rows:
            activates = f"  signs from {row['activates']}" if row.get("activates") else ""
            validity = (
                f"valid {row['not_before']} to {row['not_after']}" if "not_before" in row else ""
            )
            problem = f"  UNREADABLE: {row['error']}" if row.get("error") else ""
            click.echo(
                f"{row['role']:8} {row['key_id']:16}  {row.get('algorithm', ''):14} {validity:28}"
                f"  {row['where']}{activates}{problem}"
            )
    # Listed in full first; then a non-zero exit, so that a script sees the folder is not sound.
    broken = [row for row in rows if row.get("error")]
    if broken:
        raise ConfigError(
            f"{len(broken)} file(s) in the keys folder cannot be read, first"
            f" {broken[0]['file']}: {broken[0]['error']}"
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
@click.option(
    "--pkcs11",
    "in_token",
    is_flag=True,
    default=None,
    help="In the HSM token (default: when key_source is pkcs11).",
)
@click.pass_context
def rotate(
    ctx: click.Context,
    name: str | None,
    activate_at: str,
    export_dir: Path | None,
    curve: bool,
    in_token: bool | None,
) -> None:
    """Prepare our next key, signing from --activate-at on, and export its certificate."""
    settings = _settings(ctx)
    name = name or settings.signing_key
    directory = settings.keys_path
    when = _moment(activate_at)
    now = datetime.now(UTC)
    if when <= now:
        raise click.BadParameter("the activation must be in the future: banks pin it first")
    target = export_dir or settings.path("var/keys-export")
    # The banks need the exported certificate before the activation date: a folder it cannot
    # be written to stops the rotation before any key is made (a next key prepared but never
    # exported would refuse the rotation run again once the folder is fixed).
    _check_export(target)
    if _uses_token(settings, in_token):
        _rotate_in_token(settings, name, when, now, curve=curve, target=target)
        _audit_rotation(settings, name, when, "pkcs11")
        return
    passphrase = _passphrase()
    if not has_pair(directory, name):
        raise ConfigError(f"no key {name!r} in {directory}: `gateway keys generate` first")
    since = read_activation(directory, name) if has_pair(directory, f"{name}.next") else None
    if since is not None and since > now:
        raise ConfigError(
            f"a next key of {name} is already prepared, signing from {since.isoformat()}"
        )
    common_name = f"{settings.initiating_party} - gateway"
    key_pem, cert_pem = generate_keypair(common_name, curve=curve, valid_from=now)
    # Exported first, under names ending `.part`: if the export folder fails us after all, the
    # keys folder is unchanged; the files get their names once the key is stored (a run killed
    # in between leaves no certificate the banks could take for a key that does not exist).
    fresh = KeyPair(key_pem, cert_pem)
    exported = _export(target, name, fresh, when, suffix=PART)
    staged = [exported, target / f"{name}-{fresh.key_id}.txt"]
    activates = directory / f"{name}.next.activates"
    storing = False
    try:
        if since is not None:
            _promote(directory, name, passphrase)
            click.echo(f"the next key of {name}, active since {since.isoformat()}, is now current")
        storing = True
        p12 = pair_files(directory, name)[2].exists()
        store_pair(directory, f"{name}.next", key_pem, cert_pem, passphrase, pkcs12_format=p12)
        write_atomically(activates, (when.isoformat() + "\n").encode(), 0o644)
    except BaseException:
        # Neither a certificate for the banks to pin of a key that was not stored, nor half a
        # next key (it would refuse the rotation run again); once the old next key has moved
        # aside (storing), every next file here is this run's.
        written = [path.with_name(path.name + PART) for path in staged]
        if storing:
            written += [*pair_files(directory, f"{name}.next"), activates]
        _remove(written)
        raise
    for path in staged:
        path.with_name(path.name + PART).replace(path)
    pair = load_pair(directory, f"{name}.next", passphrase)
    click.echo(
        f"prepared the next key of {name}: key id {pair.key_id}, signs from {when.isoformat()};"
        f" give the banks {exported}"
    )
    _audit_rotation(settings, name, when, "files", key_id=pair.key_id)


def _audit_rotation(
    settings: Settings, name: str, when: datetime, source: str, key_id: str = ""
) -> None:
    """Append the rotation to the audit trail (said on stderr when there is no database yet)."""
    from gateway.commands import existing_database
    from gateway.errors import GatewayError
    from gateway.service.audit import cli_actor, record

    try:
        storage = existing_database(settings)
    except GatewayError as exc:
        click.echo(f"not in the audit trail: {exc}", err=True)
        return
    detail = {"activates": when.isoformat(), "source": source}
    record(
        storage,
        actor=cli_actor(),
        via="cli",
        action="keys.rotate",
        subject=name,
        detail=detail | ({"key_id": key_id} if key_id else {}),
    )


def _rotate_in_token(
    settings: Settings, name: str, when: datetime, now: datetime, *, curve: bool, target: Path
) -> None:
    from gateway.adapters.pkcs11 import TokenKeyStore, rotate_in_token

    token = _token(settings)
    retired, created = rotate_in_token(
        token,
        name,
        when,
        curve=curve,
        common_name=f"{settings.initiating_party} - gateway",
        now=now,
        valid_until=now + CERT_VALIDITY,
    )
    if retired is not None:
        click.echo(f"the next key of {name} is now current; {retired} is kept as retired")
    following = TokenKeyStore(token, name).ring().next
    assert following is not None and created.cert_pem is not None
    exported = _export(target, name, following, when)
    click.echo(
        f"prepared the next key of {name} in token {settings.pkcs11_token!r}: key id"
        f" {key_id_of(created.cert_pem)}, signs from {when.isoformat()}; give the banks {exported}"
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


def _check_export(target: Path) -> None:
    """Refuse an export folder the certificate cannot be written to: one that is a file, or
    whose nearest existing folder (the missing ones are created on export) takes no new file.
    Tried by creating a temporary file there, which disappears at once: permission bits alone
    say nothing for root, nor for /proc and read-only mounts."""
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"export folder {target}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(
            f"export folder {target}: cannot write in {folder} ({exc.strerror or exc})"
        ) from None


# What an export's files are named until the key they describe is stored.
PART = ".part"


def _export(target: Path, name: str, pair: SigningKey, when: datetime, *, suffix: str = "") -> Path:
    """The certificate and a note for the banks: key id, fingerprint, activation, validity;
    the certificate's path (written with `suffix` added to both names, for the caller to
    rename)."""
    cert_path = target / f"{name}-{pair.key_id}.cert.pem"
    note = target / f"{name}-{pair.key_id}.txt"
    try:
        target.mkdir(parents=True, exist_ok=True)
        cert_path.with_name(cert_path.name + suffix).write_bytes(pair.cert_pem)
        _write_note(note.with_name(note.name + suffix), cert_path.name, pair, when)
    except BaseException as exc:
        _remove([cert_path.with_name(cert_path.name + suffix), note.with_name(note.name + suffix)])
        if isinstance(exc, OSError):
            raise ConfigError(f"export folder {target}: {exc.strerror or exc}") from None
        raise
    return cert_path


def _remove(paths: list[Path]) -> None:
    """Remove what a failed rotation wrote, as far as it can be (the first error is the one
    said)."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _write_note(note: Path, cert_name: str, pair: SigningKey, when: datetime) -> None:
    """The note beside the exported certificate, for the bank that pins it."""
    cert = pair.certificate
    note.write_text(
        f"Treasury signing certificate {cert_name}\n"
        f"key id (KeyName in our signatures): {pair.key_id}\n"
        f"SHA-256 fingerprint: {cert.fingerprint(hashes.SHA256()).hex(':')}\n"
        f"subject: {cert.subject.rfc4514_string()}\n"
        f"valid: {cert.not_valid_before_utc.isoformat()}"
        f" to {cert.not_valid_after_utc.isoformat()}\n"
        f"our files are signed with it from: {when.isoformat()}\n"
        "Pin it beside the current certificate before that date.\n",
        encoding="utf-8",
    )


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
        try:
            pem = _certificate_pem(path, stem)
        except (ConfigError, OSError) as exc:
            # One broken file does not hide the others: its row says why it cannot be read.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            rows.append(_unreadable(role, path, reason))
            continue
        if pem is None:
            rows.append(
                {"role": role, "key_id": "(locked)", "file": str(path), "where": f"file {path}"}
            )
            continue
        try:
            row = {
                "role": role,
                "key_id": key_id_of(pem),
                **_describe(pem),
                "file": str(path),
                "where": f"file {path}",
            }
        except ConfigError as exc:
            rows.append(_unreadable(role, path, str(exc)))
            continue
        if role == "next":
            try:
                row["activates"] = read_activation(directory, name).isoformat()
            except ConfigError as exc:
                row["error"] = str(exc)
        rows.append(row)
    return rows


def _certificate_pem(path: Path, stem: str) -> bytes | None:
    """The certificate of a .cert.pem file, or of a .p12 file (None: locked, no passphrase)."""
    if path.suffix != ".p12":
        return path.read_bytes()
    passphrase = passphrase_from_env()
    if passphrase is None:
        return None
    return load_pair(path.parent, stem, passphrase).cert_pem


def _unreadable(role: str, path: Path, reason: str) -> dict[str, str]:
    """The row of a file in the keys folder that holds no certificate we can read."""
    return {
        "role": role,
        "key_id": "(unreadable)",
        "file": str(path),
        "where": f"file {path}",
        "error": reason,
    }


def _token_rows(settings: Settings) -> list[dict[str, str]]:
    """Our keys in the HSM token: current, next (with its activation), retired, and any other."""
    from gateway.adapters.pkcs11 import TokenKeyStore

    name = settings.signing_key
    store = TokenKeyStore(_token(settings), name)
    rows = []
    for entry in store.entries():
        role = "other"
        if entry.label == name:
            role = "current"
        elif entry.label == f"{name}.next":
            role = "next"
        elif entry.label.startswith(f"{name}.retired."):
            role = "retired"
        where = f"pkcs11 token {settings.pkcs11_token!r} label {entry.label!r} id {entry.id.hex()}"
        if entry.extractable or not entry.sensitive:
            where += " (EXTRACTABLE: not fit for production)"
        row = {"role": role, "where": where, "token": settings.pkcs11_token, "label": entry.label}
        row["id"] = entry.id.hex()
        row["key_id"] = key_id_of(entry.cert_pem) if entry.cert_pem else "(no certificate)"
        if entry.cert_pem:
            row.update(_describe(entry.cert_pem))
        else:
            row["algorithm"] = entry.algorithm
        if role == "next":
            ring = store.ring()
            if ring.next_from is not None:
                row["activates"] = ring.next_from.isoformat()
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
