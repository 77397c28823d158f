"""A SoftHSM2 token store for tests (Debian package ``softhsm2``): a config file and token folder
under a temporary directory, tokens initialised with :func:`init_token`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
UTIL = shutil.which("softhsm2-util") or "/usr/bin/softhsm2-util"
USER_PIN = "4711"
SO_PIN = "271828"


def missing() -> str | None:
    """Why SoftHSM2 cannot be used here (None if it can)."""
    if not os.path.exists(MODULE):
        return f"softhsm2 not installed ({MODULE} missing)"
    if not os.access(UTIL, os.X_OK):
        return "softhsm2-util not installed"
    return None


def make_store(directory: Path) -> Path:
    """A SoftHSM2 configuration with its own token folder; returns the config path (for
    ``SOFTHSM2_CONF``)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n")
    return conf


def init_token(conf: Path, label: str, pin: str = USER_PIN) -> None:
    """Initialise a token labelled ``label`` in the next free slot."""
    subprocess.run(
        [UTIL, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", pin],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
        timeout=60,
    )
