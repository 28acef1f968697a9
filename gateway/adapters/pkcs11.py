"""Our keys in a hardware security module, reached through PKCS#11 (python-pkcs11).

A token holds, for each key name N (the `signing_key` setting, or a partner's [signature] key):

    private and public key labelled N        the current key (one CKA_ID shared with its cert)
    certificate labelled N                   its certificate (or keys/N.cert.pem, by setting)
    private and public key labelled N.next   the next key, prepared by `gateway keys rotate`
    data object labelled N.next.activates    the ISO date-time from which N.next signs
    keys labelled N.retired.<key id>         keys a rotation replaced, kept for the record

Private keys are generated inside the token, sensitive and never extractable; the gateway hands
the token canonical SignedInfo to sign and never asks for a key's value. Every fault of the
module, the token, the PIN or the session is a TransientError with one line saying which: the
batch waits and is built once the token is back. A PIN the token refused is not tried again
until it changes (an HSM locks a PIN after a few wrong tries). The PIN is never logged.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pkcs11
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import SignMixin

from gateway.config import Settings
from gateway.errors import ConfigError, TransientError
from gateway.signing.keys import KeyRing, TokenKey, key_id_of, write_atomically

if TYPE_CHECKING:
    from pkcs11 import _pkcs11

log = structlog.get_logger("gateway.pkcs11")

PIN_ENV = "GATEWAY_PKCS11_PIN"
PIN_FILE_ENV = "GATEWAY_PKCS11_PIN_FILE"
# Certificates of token keys: stored in the token beside the key, or read from keys_dir.
CERTIFICATE_SOURCES = ("token", "keys")
# CKA_APPLICATION of the data objects the gateway keeps in the token.
APPLICATION = "kbnn-gateway"
# DER of the named curve P-256 (secp256r1), as CKA_EC_PARAMS holds it.
P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")
RSA_BITS = 3072
# A key name "id:0a1b2c..." finds the key by its CKA_ID (hex) instead of its label.
ID_PREFIX = "id:"
# Seconds a key ring read from the token is kept before the token is asked again.
RING_TTL = 5.0

T = TypeVar("T")

_PIN_REFUSED = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinExpired, p11.PinLocked)


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """Which module, token and PIN source; where the certificates are read."""

    # Path of the PKCS#11 module (the HSM vendor's library).
    module: str
    # Label of the token holding our keys.
    token: str
    # File holding the user PIN when GATEWAY_PKCS11_PIN is not set.
    pin_file: Path | None = None
    # "token" or "keys".
    certificates: str = "token"
    # The keys folder: certificates when certificates = "keys", and the copies banks pin.
    keys_dir: Path = Path("keys")

    def __post_init__(self) -> None:
        if not self.module:
            raise ConfigError("key_source = 'pkcs11' needs pkcs11_module (the HSM's library)")
        if not self.token:
            raise ConfigError("key_source = 'pkcs11' needs pkcs11_token (the token's label)")
        if self.certificates not in CERTIFICATE_SOURCES:
            raise ConfigError(
                f"pkcs11_certificates {self.certificates!r} is not one of"
                f" {', '.join(CERTIFICATE_SOURCES)}"
            )

    @property
    def where(self) -> str:
        """The token, as said in messages."""
        return f"HSM token {self.token!r}"


def read_pin(config: TokenConfig, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The user PIN and where it came from (for messages): GATEWAY_PKCS11_PIN, else the file."""
    env = os.environ if environ is None else environ
    if env.get(PIN_ENV):
        return env[PIN_ENV], PIN_ENV
    path = config.pin_file
    if path is None:
        raise ConfigError(
            f"{config.where} needs its PIN: set {PIN_ENV} or {PIN_FILE_ENV} (pkcs11_pin_file)"
        )
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"PIN file {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"PIN file {path} is empty")
    return value, str(path)


# --- The module: loaded once per process ---------------------------------------------------------

_libraries: dict[str, _pkcs11.lib] = {}
_libraries_lock = threading.Lock()


def _library(path: str) -> _pkcs11.lib:
    """The module at `path`, loaded and initialised once per process."""
    with _libraries_lock:
        library = _libraries.get(path)
        if library is not None:
            return library
        if not Path(path).is_file():
            raise TransientError(f"PKCS#11 module {path} is missing (is the HSM client installed?)")
        try:
            library = pkcs11.lib(path)
        except p11.PKCS11Error as exc:
            raise TransientError(f"PKCS#11 module {path} cannot be loaded: {_said(exc)}") from None
        _libraries[path] = library
        return library


def _said(exc: BaseException) -> str:
    """A PKCS#11 error in one line: its name, and its text when it has one."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- The token: one logged-in session per process ------------------------------------------------


class Token:
    """One token, reached through one session shared by the process's threads (a lock keeps
    them apart). A dead session or a removed token is reopened, once, on the next use."""

    def __init__(self, config: TokenConfig, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self._environ = environ
        self._lock = threading.RLock()
        self._session: pkcs11.Session | None = None
        self._handles: dict[bytes, SignMixin] = {}
        self._ecdsa_hashes = False
        # SHA-256 of the PIN the token refused, and how: not offered again until it changes.
        self._refused: bytes | None = None
        self._refusal = ""
        self._reset_library = False
        self._fault: str | None = None

    # -- sessions --

    def _open(self) -> pkcs11.Session:
        if self._session is not None:
            return self._session
        pin, source = read_pin(self.config, self._environ)
        fingerprint = hashlib.sha256(pin.encode()).digest()
        if fingerprint == self._refused:
            raise TransientError(self._pin_refused(source))
        library = _library(self.config.module)
        if self._reset_library:
            try:
                library.reinitialize()
            except p11.PKCS11Error as exc:
                raise TransientError(
                    f"PKCS#11 module {self.config.module} cannot be reinitialised: {_said(exc)}"
                ) from None
            self._reset_library = False
        try:
            token = self._find_token(library)
        except p11.NoSuchToken:
            self._reset_library = True
            raise TransientError(
                f"no {self.config.where} in {self.config.module} (removed, or not initialised?)"
            ) from None
        except p11.PKCS11Error as exc:
            self._reset_library = True
            raise TransientError(f"{self.config.where} cannot be listed: {_said(exc)}") from None
        try:
            session = token.open(user_pin=pin, rw=True)
        except _PIN_REFUSED as exc:
            self._refused, self._refusal = fingerprint, type(exc).__name__
            raise TransientError(self._pin_refused(source)) from None
        except p11.UserAlreadyLoggedIn:
            # Another session of this process is logged in; a new one shares its login.
            session = self._open_shared(token)
        except p11.PKCS11Error as exc:
            self._reset_library = True
            raise TransientError(f"{self.config.where} cannot be opened: {_said(exc)}") from None
        self._refused = None
        self._session = session
        self._ecdsa_hashes = Mechanism.ECDSA_SHA256 in set(token.slot.get_mechanisms())
        if self._fault is not None:
            log.info("hsm.available", token=self.config.token, after=self._fault)
            self._fault = None
        return session

    def _pin_refused(self, source: str) -> str:
        return (
            f"{self.config.where} refused the PIN from {source} ({self._refusal}); it is not"
            " offered again until it changes (a token locks its PIN after a few wrong tries)"
        )

    def _find_token(self, library: _pkcs11.lib) -> pkcs11.Token:
        """The token by its label; a module that does not list it is asked again once, afresh
        (a token initialised or put back since the module was loaded shows only then)."""
        try:
            return library.get_token(token_label=self.config.token)
        except p11.NoSuchToken:
            library.reinitialize()
            return library.get_token(token_label=self.config.token)

    def _open_shared(self, token: pkcs11.Token) -> pkcs11.Session:
        try:
            session: pkcs11.Session = token.open(rw=True)
            return session
        except p11.PKCS11Error as exc:
            self._reset_library = True
            raise TransientError(f"{self.config.where} cannot be opened: {_said(exc)}") from None

    def _drop(self) -> None:
        """Forget the session (it is dead or suspect); the next use opens another."""
        session, self._session = self._session, None
        self._handles.clear()
        if session is not None:
            try:
                session.close()
            except p11.PKCS11Error:
                self._reset_library = True

    def close(self) -> None:
        """Close the session."""
        with self._lock:
            self._drop()

    def run(self, what: str, operation: Callable[[pkcs11.Session], T]) -> T:
        """Run `operation` in the session; a PKCS#11 fault reopens the session and tries once
        more, then becomes a TransientError naming `what` and the fault."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    session = self._open()
                    return operation(session)
                except TransientError as exc:
                    self._said_once(str(exc))
                    raise
                except p11.PKCS11Error as exc:
                    self._drop()
                    self._reset_library = True
                    if attempt == 2:
                        message = f"{self.config.where}: {what} failed: {_said(exc)}"
                        self._said_once(message)
                        raise TransientError(message) from None
            raise AssertionError("unreachable")  # pragma: no cover

    def _said_once(self, message: str) -> None:
        """Log a fault once, when it starts or changes, rather than at every retry."""
        if message != self._fault:
            log.warning("hsm.unavailable", token=self.config.token, error=message)
            self._fault = message

    # -- signing --

    def sign(self, key_id: bytes, data: bytes) -> bytes:
        """The XMLDSig signature value of `data` by the private key with CKA_ID `key_id`."""

        def operation(session: pkcs11.Session) -> bytes:
            key = self._handles.get(key_id)
            if key is None:
                key = self._private_key(session, {Attribute.ID: key_id}, key_id.hex())
                self._handles[key_id] = key
            if key.key_type == KeyType.EC:
                if self._ecdsa_hashes:
                    return bytes(key.sign(data, mechanism=Mechanism.ECDSA_SHA256))
                digest = hashlib.sha256(data).digest()
                return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))  # raw r||s
            return bytes(key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

        return self.run("signing", operation)

    def _private_key(
        self, session: pkcs11.Session, match: dict[Attribute, object], named: str
    ) -> SignMixin:
        found = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, **match}))
        if not found:
            raise ConfigError(f"{self.config.where} has no private key {named}")
        if len(found) > 1:
            raise ConfigError(f"{self.config.where} has {len(found)} private keys {named}")
        key = found[0]
        assert isinstance(key, SignMixin)
        return key


# --- What the token holds ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One of our keys in the token, as `gateway keys list` shows it."""

    label: str
    id: bytes
    algorithm: str
    extractable: bool
    sensitive: bool
    cert_pem: bytes | None


def _find(session: pkcs11.Session, cls: ObjectClass, label: str) -> list[pkcs11.Object]:
    return list(session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: label}))


def _one(session: pkcs11.Session, cls: ObjectClass, label: str, where: str) -> pkcs11.Object | None:
    found = _find(session, cls, label)
    if len(found) > 1:
        raise ConfigError(f"{where} has {len(found)} objects labelled {label!r}; labels are unique")
    return found[0] if found else None


def public_key_of(key: pkcs11.Object) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The public key object of a token's public key, for certificates and comparisons."""
    if key[Attribute.KEY_TYPE] == KeyType.RSA:
        modulus = int.from_bytes(bytes(key[Attribute.MODULUS]), "big")
        exponent = int.from_bytes(bytes(key[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if bytes(key[Attribute.EC_PARAMS]) != P256_PARAMS:
        raise ConfigError("only ECDSA keys on P-256 sign XMLDSig here")
    point = bytes(key[Attribute.EC_POINT])
    if point[:1] == b"\x04" and len(point) == point[1] + 2:
        point = point[2:]  # a DER OCTET STRING around the point
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class TokenKeyStore:
    """Our named keys in a token: a `KeySource` beside the keys folder's `KeyStore`.

    A ring is read from the token again after RING_TTL seconds, so that a rotation prepared
    while the gateway runs is taken up without a restart.
    """

    def __init__(self, token: Token, default: str) -> None:
        self._token = token
        self._default = default
        self._rings: dict[str, tuple[float, KeyRing]] = {}

    @property
    def token(self) -> Token:
        """The token the keys are in."""
        return self._token

    def ring(self, name: str = "") -> KeyRing:
        """The key ring `name` (the default key when empty)."""
        name = name or self._default
        cached = self._rings.get(name)
        if cached is not None and time.monotonic() - cached[0] < RING_TTL:
            return cached[1]
        ring = self._token.run(f"reading key {name!r}", lambda s: self._read(s, name))
        self._rings[name] = (time.monotonic(), ring)
        return ring

    def _read(self, session: pkcs11.Session, name: str) -> KeyRing:
        if name.startswith(ID_PREFIX):
            # A key an HSM officer made, named by its CKA_ID: no next key beside it.
            return KeyRing(name, self._key_by_id(session, name))
        current = self._key(session, name, required=True)
        assert current is not None
        following = self._key(session, f"{name}.next", required=False)
        if following is None:
            return KeyRing(name, current)
        return KeyRing(name, current, following, activation(session, self._token.config, name))

    def _key_by_id(self, session: pkcs11.Session, name: str) -> TokenKey:
        config = self._token.config
        try:
            key_id = bytes.fromhex(name.removeprefix(ID_PREFIX))
        except ValueError:
            raise ConfigError(f"key {name!r}: the CKA_ID after {ID_PREFIX!r} is not hex") from None
        found = list(
            session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id})
        )
        if len(found) != 1:
            raise ConfigError(
                f"{config.where} has {len(found)} private keys with id {key_id.hex()}"
            )
        return self._token_key(session, found[0], str(found[0][Attribute.LABEL]))

    def _key(self, session: pkcs11.Session, label: str, *, required: bool) -> TokenKey | None:
        config = self._token.config
        private = _one(session, ObjectClass.PRIVATE_KEY, label, config.where)
        if private is None:
            if required:
                raise ConfigError(
                    f"{config.where} has no key labelled {label!r}:"
                    " create it with `gateway keys generate --pkcs11`"
                )
            return None
        return self._token_key(session, private, label)

    def _token_key(self, session: pkcs11.Session, private: pkcs11.Object, label: str) -> TokenKey:
        """The signing key of a private key object, with its certificate (checked against the
        public key beside it)."""
        config = self._token.config
        key_id = bytes(private[Attribute.ID])
        cert_pem = self._certificate(session, label, key_id)
        publics = list(
            session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})
        )
        if publics and _spki(public_key_of(publics[0])) != _spki(
            x509.load_pem_x509_certificate(cert_pem).public_key()  # type: ignore[arg-type]
        ):
            raise ConfigError(f"{config.where}: the certificate of key {label!r} is another key's")
        token = self._token
        return TokenKey(
            cert_pem,
            signer=lambda data: token.sign(key_id, data),
            where=f"pkcs11 token {config.token!r} label {label!r} id {key_id.hex()}",
        )

    def _certificate(self, session: pkcs11.Session, label: str, key_id: bytes) -> bytes:
        config = self._token.config
        if config.certificates == "keys":
            path = config.keys_dir / f"{label}.cert.pem"
            try:
                return path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"{path}: {exc.strerror} (the certificate of token key {label!r})"
                ) from None
        found = list(
            session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id})
        )
        if not found:
            raise ConfigError(
                f"{config.where} holds key {label!r} without its certificate: import the CA's"
                " certificate with `gateway keys import-cert`"
            )
        der = bytes(found[0][Attribute.VALUE])
        return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)

    def entries(self) -> list[TokenEntry]:
        """Every private key in the token, with its certificate when there is one."""
        return self._token.run("listing keys", self._entries)

    def _entries(self, session: pkcs11.Session) -> list[TokenEntry]:
        entries = []
        for key in list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
            label = str(key[Attribute.LABEL])
            key_id = bytes(key[Attribute.ID])
            try:
                cert_pem: bytes | None = self._certificate(session, label, key_id)
            except ConfigError:
                cert_pem = None
            algorithm = "RSA" if key[Attribute.KEY_TYPE] == KeyType.RSA else "EC"
            entries.append(
                TokenEntry(
                    label=label,
                    id=key_id,
                    algorithm=algorithm,
                    extractable=bool(key[Attribute.EXTRACTABLE]),
                    sensitive=bool(key[Attribute.SENSITIVE]),
                    cert_pem=cert_pem,
                )
            )
        return sorted(entries, key=lambda entry: entry.label)


def activation(session: pkcs11.Session, config: TokenConfig, name: str) -> datetime:
    """The date-time from which the next key of `name` signs (a data object in the token)."""
    label = f"{name}.next.activates"
    found = _one(session, ObjectClass.DATA, label, config.where)
    if found is None:
        raise ConfigError(f"{config.where} holds {name}.next without {label}")
    text = bytes(found[Attribute.VALUE]).decode("utf-8", "replace").strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{config.where}: {label} is not an ISO date-time") from None
    if value.tzinfo is None:
        raise ConfigError(f"{config.where}: {label} has no offset")
    return value


# --- Making keys in the token (gateway keys generate --pkcs11, rotate) ---------------------------


def generate_in_token(
    session: pkcs11.Session, label: str, *, curve: bool
) -> tuple[bytes, rsa.RSAPublicKey | ec.EllipticCurvePublicKey]:
    """A new key pair made inside the token: the private key sensitive, never extractable, for
    signing only. Returns its CKA_ID and public key."""
    if _find(session, ObjectClass.PRIVATE_KEY, label):
        raise ConfigError(f"the token already holds a key labelled {label!r}")
    key_id = os.urandom(8)
    private = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    public = {Attribute.TOKEN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False}
    if curve:
        parameters = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: P256_PARAMS}, local=True
        )
        public_key, _ = parameters.generate_keypair(
            id=key_id, label=label, store=True, public_template=public, private_template=private
        )
    else:
        public_key, _ = session.generate_keypair(
            KeyType.RSA,
            RSA_BITS,
            id=key_id,
            label=label,
            store=True,
            public_template=public,
            private_template=private,
        )
    return key_id, public_key_of(public_key)


def store_certificate(session: pkcs11.Session, label: str, key_id: bytes, cert_pem: bytes) -> None:
    """Put a certificate in the token beside its key (same label and CKA_ID)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for old in list(
        session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id})
    ):
        old.destroy()
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.LABEL: label,
            Attribute.ID: key_id,
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: cert.serial_number.to_bytes(20, "big").lstrip(b"\0") or b"\0",
            Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
        }
    )


def set_activation(session: pkcs11.Session, name: str, when: datetime | None) -> None:
    """Write (or, with None, remove) the activation date of the next key of `name`."""
    label = f"{name}.next.activates"
    for old in _find(session, ObjectClass.DATA, label):
        old.destroy()
    if when is None:
        return
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.APPLICATION: APPLICATION,
            Attribute.LABEL: label,
            Attribute.VALUE: when.isoformat().encode(),
        }
    )


def relabel(session: pkcs11.Session, old: str, new: str) -> None:
    """Give the key pair and certificate labelled `old` the label `new`."""
    for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY, ObjectClass.CERTIFICATE):
        for found in _find(session, cls, old):
            found[Attribute.LABEL] = new


def key_id_in_token(session: pkcs11.Session, label: str, where: str) -> bytes:
    """The CKA_ID of the private key labelled `label`."""
    found = _one(session, ObjectClass.PRIVATE_KEY, label, where)
    if found is None:
        raise ConfigError(f"{where} has no key labelled {label!r}")
    return bytes(found[Attribute.ID])


__all__ = [
    "PIN_ENV",
    "PIN_FILE_ENV",
    "Token",
    "TokenConfig",
    "TokenEntry",
    "TokenKeyStore",
    "activation",
    "generate_in_token",
    "key_id_in_token",
    "key_id_of",
    "read_pin",
    "relabel",
    "set_activation",
    "store_certificate",
]


_tokens: dict[tuple[str, str], Token] = {}
_tokens_lock = threading.Lock()


def config_of(settings: Settings) -> TokenConfig:
    """The token the settings name."""
    return TokenConfig(
        module=settings.pkcs11_module,
        token=settings.pkcs11_token,
        pin_file=settings.path(settings.pkcs11_pin_file) if settings.pkcs11_pin_file else None,
        certificates=settings.pkcs11_certificates,
        keys_dir=settings.keys_path,
    )


def token_for(settings: Settings) -> Token:
    """The process's one Token for the module and token the settings name (a token's login is
    shared by all the sessions of a process, so there is one session per token)."""
    config = config_of(settings)
    with _tokens_lock:
        token = _tokens.get((config.module, config.token))
        if token is None or token.config != config:
            token = Token(config)
            _tokens[(config.module, config.token)] = token
        return token


# --- Key management: generate, import a certificate, rotate --------------------------------------


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key pair made in the token: its CKA_ID, and its certificate or certificate request."""

    label: str
    id: bytes
    cert_pem: bytes | None = None
    request_pem: bytes | None = None


def create_key(
    token: Token,
    label: str,
    *,
    curve: bool,
    common_name: str,
    valid_from: datetime,
    valid_until: datetime,
    request: bool = False,
) -> CreatedKey:
    """Generate a key pair in the token, then either a self-signed certificate (stored in the
    token and copied to keys/<label>.cert.pem) or a certificate request for the CA."""
    from gateway.signing.requests import certificate_request, self_signed  # noqa: PLC0415

    def operation(session: pkcs11.Session) -> CreatedKey:
        key_id, public = generate_in_token(session, label, curve=curve)

        def signer(data: bytes) -> bytes:
            return token.sign(key_id, data)

        if request:
            return CreatedKey(
                label, key_id, request_pem=certificate_request(public, signer, common_name)
            )
        cert_pem = self_signed(public, signer, common_name, valid_from, valid_until)
        _keep_certificate(session, token.config, label, key_id, cert_pem)
        return CreatedKey(label, key_id, cert_pem=cert_pem)

    return token.run(f"generating key {label!r}", operation)


def import_certificate(token: Token, label: str, cert_pem: bytes) -> bytes:
    """Put the CA's certificate of the token key `label` beside it; returns its CKA_ID."""
    cert = x509.load_pem_x509_certificate(cert_pem)

    def operation(session: pkcs11.Session) -> bytes:
        where = token.config.where
        key_id = key_id_in_token(session, label, where)
        public = _one(session, ObjectClass.PUBLIC_KEY, label, where)
        if public is None or _spki(public_key_of(public)) != _spki(cert.public_key()):  # type: ignore[arg-type]
            raise ConfigError(f"the certificate is not of the key labelled {label!r} in {where}")
        _keep_certificate(session, token.config, label, key_id, cert_pem)
        return key_id

    return token.run(f"importing the certificate of {label!r}", operation)


def _keep_certificate(
    session: pkcs11.Session, config: TokenConfig, label: str, key_id: bytes, cert_pem: bytes
) -> None:
    """The certificate in the token (when read from there) and in keys/, which banks pin."""
    if config.certificates == "token":
        store_certificate(session, label, key_id, cert_pem)
    config.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(config.keys_dir / f"{label}.cert.pem", cert_pem, 0o644)


def rotate_in_token(
    token: Token,
    name: str,
    when: datetime,
    *,
    curve: bool,
    common_name: str,
    now: datetime,
    valid_until: datetime,
) -> tuple[str | None, CreatedKey]:
    """Prepare the next key of `name` in the token, signing from `when`. A next key whose date
    has come is first made current and the current one retired (relabelled, kept). Returns the
    key id retired (if any) and the new next key."""
    config = token.config

    def promote(session: pkcs11.Session) -> str | None:
        if not _find(session, ObjectClass.PRIVATE_KEY, f"{name}.next"):
            return None
        since = activation(session, config, name)
        if since > now:
            raise ConfigError(
                f"a next key of {name} is already prepared, signing from {since.isoformat()}"
            )
        store = TokenKeyStore(token, name)
        current = store._key(session, name, required=True)
        assert current is not None
        relabel(session, name, f"{name}.retired.{current.key_id}")
        relabel(session, f"{name}.next", name)
        set_activation(session, name, None)
        retired = config.keys_dir / "retired"
        retired.mkdir(mode=0o700, exist_ok=True)
        for suffix in (".cert.pem",):
            old = config.keys_dir / f"{name}{suffix}"
            if old.exists():
                old.replace(retired / f"{name}.{current.key_id}{suffix}")
            following = config.keys_dir / f"{name}.next{suffix}"
            if following.exists():
                following.replace(config.keys_dir / f"{name}{suffix}")
        (config.keys_dir / f"{name}.next.activates").unlink(missing_ok=True)
        return current.key_id

    retired = token.run(f"promoting the next key of {name!r}", promote)
    created = create_key(
        token,
        f"{name}.next",
        curve=curve,
        common_name=common_name,
        valid_from=now,
        valid_until=valid_until,
    )
    token.run(f"dating the next key of {name!r}", lambda s: set_activation(s, name, when))
    # The activation beside the certificates in keys/: what the banks are told to pin.
    write_atomically(
        config.keys_dir / f"{name}.next.activates", (when.isoformat() + "\n").encode(), 0o644
    )
    return retired, created
