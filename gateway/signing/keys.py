"""Our signing keys: generated, stored encrypted (PEM or PKCS#12), loaded, and rotated by date.

Layout of a key named N in the keys folder (keys/README.md says more):

    N.key.pem + N.cert.pem          the current key (PKCS#8, encrypted) and its certificate
    N.p12                           or both in one PKCS#12 file instead
    N.next.key.pem + N.next.cert.pem (or N.next.p12), N.next.activates
                                    the next key, prepared by `gateway keys rotate`, which signs
                                    from the date in N.next.activates on
    retired/N.<key id>.*            keys a rotation has replaced, kept for the record

The passphrase comes from GATEWAY_KEY_PASSPHRASE, or from the file GATEWAY_KEY_PASSPHRASE_FILE
names; it is never logged and never written anywhere by the gateway.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from gateway.errors import ConfigError

RSA_KEY_BITS = 3072
CERT_VALIDITY = timedelta(days=730)
# Start of validity of the development pairs `ensure_keypair` generates (see there).
DEV_VALID_FROM = datetime(2024, 1, 1, tzinfo=UTC)
ORGANISATION = "Kho bạc Nhà nước"
PASSPHRASE_ENV = "GATEWAY_KEY_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
PASSPHRASE_FILE_ENV = "GATEWAY_KEY_PASSPHRASE_FILE"  # noqa: S105 - same

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private key (unencrypted PKCS#8 PEM, in memory only) and its certificate (PEM).

    key_id is the first 16 hex digits of the certificate's SHA-256 fingerprint: it is the
    KeyName of every signature made with this key.
    """

    key_pem: bytes = field(repr=False)
    cert_pem: bytes
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id_of(self.cert_pem))

    @property
    def private_key(self) -> PrivateKey:
        """The private key object."""
        return private_key(self.key_pem)

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate object."""
        return certificate(self.cert_pem)


@dataclass(frozen=True, slots=True)
class TokenKey:
    """A private key held in a hardware security module, which signs but is never read out.

    `signer` hands the token the bytes to sign (canonical SignedInfo) and returns the XMLDSig
    SignatureValue: RSA PKCS#1 v1.5 over SHA-256, or ECDSA P-256 over SHA-256 as raw r||s.
    `where` says where the key lives, for `gateway keys list` and the logs.
    """

    cert_pem: bytes
    signer: Callable[[bytes], bytes] = field(repr=False, compare=False)
    where: str = ""
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", key_id_of(self.cert_pem))

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate object."""
        return certificate(self.cert_pem)

    def sign(self, data: bytes) -> bytes:
        """The token's signature of `data` (canonical SignedInfo)."""
        return self.signer(data)


# Our key as the signing code sees it: a key in a file (decrypted in memory) or in a token.
SigningKey = KeyPair | TokenKey


@dataclass(frozen=True, slots=True)
class KeyRing:
    """One named key of ours: the current pair and, after a rotation, the next one."""

    name: str
    current: SigningKey
    next: SigningKey | None = None
    # When the next pair starts signing.
    next_from: datetime | None = None

    def signing_pair(self, at: datetime) -> SigningKey:
        """The pair that signs at `at`: the next one once its activation date has come."""
        if self.next is not None and self.next_from is not None and at >= self.next_from:
            return self.next
        return self.current


def key_id_of(certificate_pem: bytes) -> str:
    """The first 16 hex digits of the certificate's SHA-256 fingerprint."""
    return certificate(certificate_pem).fingerprint(hashes.SHA256()).hex()[:16]


def passphrase_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The key passphrase from GATEWAY_KEY_PASSPHRASE or the file GATEWAY_KEY_PASSPHRASE_FILE."""
    env = os.environ if environ is None else environ
    if env.get(PASSPHRASE_ENV):
        return env[PASSPHRASE_ENV].encode()
    path = env.get(PASSPHRASE_FILE_ENV)
    if path:
        try:
            value = Path(path).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ConfigError(f"{PASSPHRASE_FILE_ENV}={path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{PASSPHRASE_FILE_ENV}={path}: the file is empty")
        return value
    return None


# --- Files --------------------------------------------------------------------------------------


def pair_files(directory: Path, stem: str) -> tuple[Path, Path, Path]:
    """The PEM key, PEM certificate and PKCS#12 paths of a pair stored under `stem`."""
    return (
        directory / f"{stem}.key.pem",
        directory / f"{stem}.cert.pem",
        directory / f"{stem}.p12",
    )


def has_pair(directory: Path, stem: str) -> bool:
    """Whether any file of the pair `stem` exists."""
    return any(path.exists() for path in pair_files(directory, stem))


def stored_in_clear(directory: Path, stem: str) -> bool:
    """Whether the pair `stem` keeps its private key unencrypted (development only)."""
    key_path, _, p12_path = pair_files(directory, stem)
    if p12_path.is_file() or not key_path.is_file():
        return False
    with key_path.open("rb") as handle:
        return b"ENCRYPTED" not in handle.readline()


def load_pair(directory: Path, stem: str, passphrase: bytes | None) -> KeyPair:
    """The pair stored under `stem`: `stem.p12`, else `stem.key.pem` with `stem.cert.pem`."""
    key_path, cert_path, p12_path = pair_files(directory, stem)
    if p12_path.is_file():
        return _load_pkcs12(p12_path, passphrase)
    return load_keypair(key_path, cert_path, passphrase)


def load_keypair(key_path: Path, cert_path: Path, passphrase: bytes | None = None) -> KeyPair:
    """Read a PEM key and its certificate, refusing a pair that does not belong together."""
    for path in (key_path, cert_path):
        if not path.is_file():
            raise ConfigError(f"{path} is missing (its key pair is incomplete)")
    key = _read_private_key(key_path, passphrase)
    return _pair(key, cert_path.read_bytes(), f"{key_path} does not match {cert_path}")


def _load_pkcs12(path: Path, passphrase: bytes | None) -> KeyPair:
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(path.read_bytes(), passphrase)
    except ValueError:
        hint = "" if passphrase else f" (set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV})"
        raise ConfigError(
            f"{path} cannot be opened: wrong passphrase or not PKCS#12{hint}"
        ) from None
    if key is None or cert is None:
        raise ConfigError(f"{path} must hold one private key and its certificate")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: key type {type(key).__name__} is not RSA or EC")
    return _pair(key, cert.public_bytes(serialization.Encoding.PEM), f"{path}: key and cert differ")


def _read_private_key(path: Path, passphrase: bytes | None) -> PrivateKey:
    data = path.read_bytes()
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise ConfigError(
            f"{path} is encrypted: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV} to its passphrase"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path} cannot be loaded: wrong passphrase or not a PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: key type {type(key).__name__} is not RSA or EC")
    return key


def _pair(key: PrivateKey, cert_pem: bytes, mismatch: str) -> KeyPair:
    if _spki(key.public_key()) != _spki(certificate(cert_pem).public_key()):
        raise ConfigError(mismatch)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _remember(pem, key)
    return KeyPair(pem, cert_pem)


def store_pair(
    directory: Path,
    stem: str,
    key_pem: bytes,
    cert_pem: bytes,
    passphrase: bytes | None,
    *,
    pkcs12_format: bool = False,
) -> None:
    """Write a pair under `stem`: encrypted with the passphrase when there is one."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = private_key(key_pem)
    key_path, cert_path, p12_path = pair_files(directory, stem)
    if pkcs12_format:
        if not passphrase:
            raise ConfigError(f"a PKCS#12 file needs a passphrase: set {PASSPHRASE_ENV}")
        data = pkcs12.serialize_key_and_certificates(
            stem.encode(),
            key,
            certificate(cert_pem),
            None,
            serialization.BestAvailableEncryption(passphrase),
        )
        write_atomically(p12_path, data, 0o600)
        return
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    stored = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    write_atomically(key_path, stored, 0o600)
    write_atomically(cert_path, cert_pem, 0o644)


def ensure_keypair(
    directory: Path, name: str, common_name: str, passphrase: bytes | None = None
) -> KeyPair:
    """Load the pair `name` from directory, or generate it once (encrypted with a passphrase).

    A pair generated here is for development, tests and the demo, whose files carry past
    dates: its certificate is valid from DEV_VALID_FROM. `gateway keys generate` makes real ones.
    """
    lock = ensure_pair_files(directory, name, common_name, passphrase)
    with _lock(lock):
        return load_pair(directory, name, passphrase)


def ensure_pair_files(
    directory: Path, name: str, common_name: str, passphrase: bytes | None = None
) -> Path:
    """`ensure_keypair` without loading the pair: its files made once if missing (a key store
    loads, and checks, them next). Returns the lock file of the pair's making."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = directory / f".{name}.lock"
    with _lock(lock):
        if not has_pair(directory, name):
            key_pem, cert_pem = generate_keypair(common_name, valid_from=DEV_VALID_FROM)
            store_pair(directory, name, key_pem, cert_pem, passphrase)
    return lock


def load_keyring(directory: Path, name: str, passphrase: bytes | None) -> KeyRing:
    """Our key `name` with its next pair and activation date, when a rotation prepared one."""
    current = load_pair(directory, name, passphrase)
    if not has_pair(directory, f"{name}.next"):
        return KeyRing(name, current)
    return KeyRing(
        name,
        current,
        load_pair(directory, f"{name}.next", passphrase),
        read_activation(directory, name),
    )


class KeySource(Protocol):
    """Where our named keys come from: the keys folder (`KeyStore`) or an HSM token
    (`gateway.adapters.pkcs11.TokenKeyStore`)."""

    def ring(self, name: str = "") -> KeyRing:
        """The key ring `name` (the default key when empty)."""
        ...


class KeyStore:
    """Our named keys in the keys folder, each loaded when first needed and again whenever its
    files change, so that a rotation prepared while the gateway runs is taken up without a
    restart."""

    def __init__(self, directory: Path, default: str, passphrase: bytes | None) -> None:
        self._directory = directory
        self._default = default
        self._passphrase = passphrase
        self._rings: dict[str, tuple[tuple[tuple[str, int], ...], KeyRing]] = {}

    def ring(self, name: str = "") -> KeyRing:
        """The key ring `name` (the default key when empty)."""
        name = name or self._default
        stamp = self._stamp(name)
        cached = self._rings.get(name)
        if cached is None or cached[0] != stamp:
            if not has_pair(self._directory, name):
                raise ConfigError(f"no key {name!r} in {self._directory}: see keys/README.md")
            self._rings[name] = (stamp, load_keyring(self._directory, name, self._passphrase))
        return self._rings[name][1]

    def _stamp(self, name: str) -> tuple[tuple[str, int], ...]:
        paths = [
            *pair_files(self._directory, name),
            *pair_files(self._directory, f"{name}.next"),
            self._directory / f"{name}.next.activates",
        ]
        return tuple((p.name, p.stat().st_mtime_ns) for p in paths if p.exists())


def read_activation(directory: Path, name: str) -> datetime:
    """The date-time at which the next pair of `name` starts signing."""
    path = directory / f"{name}.next.activates"
    try:
        value = datetime.fromisoformat(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror} (the next key has no activation date)") from None
    except ValueError:
        raise ConfigError(f"{path} must hold one ISO date-time with its offset") from None
    if value.tzinfo is None:
        raise ConfigError(f"{path}: {value.isoformat()} has no offset")
    return value


def generate_keypair(
    common_name: str,
    *,
    curve: bool = False,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> tuple[bytes, bytes]:
    """A new key (RSA 3072, or ECDSA P-256) and a self-signed certificate, as unencrypted PEM.

    The certificate is valid from `valid_from` (now) until `valid_until` (two years after now).
    """
    key: PrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if curve
        else rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    )
    now = datetime.now(UTC)
    start = valid_from or now - timedelta(minutes=5)
    end = valid_until or now + CERT_VALIDITY
    cert = certificate_builder(key.public_key(), common_name, start, end).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def subject_name(common_name: str) -> x509.Name:
    """The subject of our certificates: the gateway's name, the treasury, Vietnam."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        ]
    )


def certificate_builder(
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    common_name: str,
    start: datetime,
    end: datetime,
) -> x509.CertificateBuilder:
    """A self-signed signing certificate of `public_key`, ready to be signed."""
    subject = subject_name(common_name)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_SIGNING_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


_SIGNING_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=True,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock between threads and processes generating the same key."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write to a temporary file beside `path`, then rename it into place."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# Private keys already loaded, by their unencrypted PEM. Loading checks an RSA key, which costs
# about 150 ms of CPU for 3,072 bits: a key read from its file is checked there and not again
# when it signs, in each of the gateway's processes.
_loaded: dict[bytes, PrivateKey] = {}
_LOADED_MAX = 32


def private_key(pem: bytes) -> PrivateKey:
    """An unencrypted PEM private key, loaded and checked once."""
    known = _loaded.get(pem)
    if known is not None:
        return known
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"private key cannot be loaded: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"private key type {type(key).__name__} is not RSA or EC")
    _remember(pem, key)
    return key


def _remember(pem: bytes, key: PrivateKey) -> None:
    if len(_loaded) >= _LOADED_MAX:
        _loaded.clear()
    _loaded[pem] = key


@lru_cache(maxsize=64)
def certificate(pem: bytes) -> x509.Certificate:
    """A PEM certificate, loaded once."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise ConfigError(f"certificate cannot be loaded: {exc}") from None


def _spki(public_key: Any) -> bytes:
    """A public key as DER SubjectPublicKeyInfo, for comparisons."""
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der
