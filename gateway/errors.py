"""Errors that say how they are handled: retried, parked or refused with a clear message."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class TransientError(GatewayError):
    """A fault that may pass (broker gone, database busy): retry with backoff."""


class PermanentError(GatewayError):
    """A fault that will not pass by retrying: park the message with this reason."""


class InvalidMessage(PermanentError):
    """Input that breaks a contract: refuse it and say exactly what is wrong."""


class ConfigError(GatewayError):
    """A setting or partner profile that cannot be used as written."""


class UnknownPartner(ConfigError):
    """A command or message names a partner that has no profile in conf/partners/."""
