"""The operations console's users: add, disable, and check a password.

Passwords are never kept: only a memory-hard hash (the `Hasher` port; the composition root
gives the Argon2id one). Every change is appended to the audit trail in the same unit of work.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol

from gateway.errors import GatewayError
from gateway.service.audit import logged
from gateway.service.clock import utcnow
from gateway.service.ports import AuditEntry, ConsoleUser, Storage

ROLES = ("viewer", "operator")
# What each role may do in the console: a viewer looks, an operator also acts.
OPERATOR = "operator"
VIEWER = "viewer"
MIN_PASSWORD = 12
_NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")


class Hasher(Protocol):
    """A password hash (memory-hard, salted) and its check."""

    def hash(self, password: str) -> str:
        """The encoded hash of a password."""

    def verify(self, encoded: str, password: str) -> bool:
        """Whether the password matches the encoded hash."""


def add_user(
    storage: Storage,
    hasher: Hasher,
    *,
    name: str,
    role: str,
    password: str,
    actor: str,
    via: str,
    now: datetime | None = None,
) -> None:
    """Add a console user; GatewayError for a bad name, role or password, or a taken name."""
    if not _NAME.fullmatch(name):
        raise GatewayError(
            f"user name {name!r}: 2-32 characters, lower-case letters, digits, '.', '_', '-',"
            " starting with a letter"
        )
    if role not in ROLES:
        raise GatewayError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise GatewayError(f"the password must have at least {MIN_PASSWORD} characters")
    moment = now or utcnow()
    with storage.unit_of_work() as uow:
        if not uow.users.add(name, role, hasher.hash(password), moment):
            raise GatewayError(f"user {name!r} exists already")
        row = uow.audit.append(AuditEntry(actor, via, "users.add", name, {"role": role}), moment)
    logged(row)


def set_disabled(
    storage: Storage,
    *,
    name: str,
    disabled: bool,
    actor: str,
    via: str,
    now: datetime | None = None,
) -> None:
    """Disable (or enable again) a console user; GatewayError when there is no such user."""
    moment = now or utcnow()
    action = "users.disable" if disabled else "users.enable"
    with storage.unit_of_work() as uow:
        if not uow.users.set_disabled(name, disabled, moment):
            raise GatewayError(f"no user {name!r}")
        row = uow.audit.append(AuditEntry(actor, via, action, name, {}), moment)
    logged(row)


def authenticate(storage: Storage, hasher: Hasher, name: str, password: str) -> ConsoleUser | None:
    """The user when the name and password match an enabled user, else None."""
    user = storage.queries.user(name)
    if user is None:
        hasher.hash(password)  # as long as a check would take: no telling which names exist
        return None
    if not hasher.verify(user.password_hash, password) or user.disabled:
        return None
    return user
