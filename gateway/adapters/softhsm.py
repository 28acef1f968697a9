"""A private SoftHSM2 token (Debian's softhsm2) for the tests, the soak and the benchmarks.

Its own softhsm2.conf, with `directories.tokendir` in a folder of the caller's, is selected by
SOFTHSM2_CONF, which must be set before the module is first loaded in a process (SoftHSM reads
it once, when it is initialised). The system's own tokens are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError

MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)


def softhsm_module() -> str | None:
    """The SoftHSM2 module installed on this machine, if any."""
    return next((path for path in MODULES if Path(path).is_file()), None)


@dataclass(frozen=True, slots=True)
class SoftToken:
    """A token initialised in a private folder: what the gateway's settings need to reach it."""

    conf: Path
    module: str
    label: str
    pin: str

    @property
    def environment(self) -> dict[str, str]:
        """The variables that point a gateway process at this token."""
        return {
            "SOFTHSM2_CONF": str(self.conf),
            "GATEWAY_KEY_SOURCE": "pkcs11",
            "GATEWAY_PKCS11_MODULE": self.module,
            "GATEWAY_PKCS11_TOKEN": self.label,
            "GATEWAY_PKCS11_PIN": self.pin,
        }


def softhsm_conf(folder: Path) -> Path:
    """Write folder/softhsm2.conf keeping its tokens in folder/tokens; returns its path."""
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    return conf


def init_token(conf: Path, label: str, pin: str, so_pin: str = "87654321") -> SoftToken:
    """Initialise a new token labelled `label` in the folder of `conf` (softhsm2-util)."""
    module = softhsm_module()
    tool = shutil.which("softhsm2-util")
    if module is None or tool is None:
        raise ConfigError("SoftHSM2 is not installed: apt-get install softhsm2")
    result = subprocess.run(
        [tool, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"softhsm2-util --init-token {label}: {result.stderr.strip()[:200]}")
    return SoftToken(conf, module, label, pin)


def delete_token(conf: Path, label: str) -> None:
    """Remove the token labelled `label`, as if it were pulled out of its slot."""
    subprocess.run(
        ["softhsm2-util", "--delete-token", "--token", label],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        capture_output=True,
        check=True,
    )
