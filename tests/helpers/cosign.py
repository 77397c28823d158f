"""The real cosign 2.5 for interop tests: ``$COSIGN``, a ``cosign`` on PATH, or the one
``../shared/tools/get-cosign.sh`` fetches (Debian 13's package, unpacked into a cache folder)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

GET_COSIGN = Path(os.environ.get("TRUSTBOX_GET_COSIGN", "/work/shared/tools/get-cosign.sh"))
CACHE = Path(os.environ.get("TRUSTBOX_TOOLS_CACHE", "/tmp/trustbox-test-tools"))


@functools.cache
def cosign_binary() -> str | None:
    """Path of a working cosign binary, or None when there is none and it cannot be fetched."""
    found = os.environ.get("COSIGN") or shutil.which("cosign")
    if found:
        return found
    if not GET_COSIGN.is_file():
        return None
    p = subprocess.run(["bash", str(GET_COSIGN), str(CACHE)], capture_output=True, text=True, timeout=300)
    path = p.stdout.strip().splitlines()[-1] if p.returncode == 0 and p.stdout.strip() else ""
    return path if path and Path(path).is_file() else None
