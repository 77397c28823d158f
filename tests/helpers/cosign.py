"""The cosign binary for tests: ``$COSIGN`` or ``cosign`` on the PATH, else the Debian package
fetched once by ``/work/shared/tools/get-cosign.sh`` (or ``tools/get-cosign.sh`` in the checkout)
into ``~/.cache/trustbox-test-tools``. Skips the test, naming cosign, when none can be had."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

_SCRIPTS = (Path("/work/shared/tools/get-cosign.sh"), Path(__file__).resolve().parents[2] / "tools" / "get-cosign.sh")


@functools.cache
def _find() -> str | None:
    found = os.environ.get("COSIGN") or shutil.which("cosign")
    if found:
        return found
    cache = Path.home() / ".cache" / "trustbox-test-tools"
    for script in _SCRIPTS:
        if not script.exists():
            continue
        p = subprocess.run(["bash", str(script), str(cache)], capture_output=True, text=True, timeout=300)
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip().splitlines()[-1]
    return None


def cosign_binary() -> str:
    """The path of a working cosign (skips the test when there is none)."""
    exe = _find()
    if exe is None:
        pytest.skip("cosign not available (get-cosign.sh failed)")
    return exe
