"""Real cosign 2.5 for the sigstore interop tests: ``/work/shared/tools/get-cosign.sh`` (or
``$TRUSTBOX_GET_COSIGN``) downloads Debian 13's package into a folder and prints the binary.

Plain Python (no pytest): the fixture in ``tests/sigstore/conftest.py`` calls it once per session.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GET_COSIGN = Path(os.environ.get("TRUSTBOX_GET_COSIGN", "/work/shared/tools/get-cosign.sh"))
#: where the binary is cached between sessions (the script reuses a working binary it finds there)
CACHE_DIR = Path(os.environ.get("TRUSTBOX_COSIGN_DIR", str(Path.home() / ".cache" / "trustbox-tests" / "cosign")))


def get_cosign(dest: Path = CACHE_DIR) -> Path | None:
    """The path of a working cosign binary, or None when the download script is not available.

    Raises:
        RuntimeError: the script exists but failed (its stderr in the message).
    """
    if not GET_COSIGN.is_file():
        return None
    p = subprocess.run(["bash", str(GET_COSIGN), str(dest)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"{GET_COSIGN} failed: {p.stderr.strip()}")
    return Path(p.stdout.strip().splitlines()[-1])


def run_cosign(cosign: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run cosign with a clean HOME-scoped environment (no ambient docker credentials)."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
            "COSIGN_EXPERIMENTAL": "0", "SIGSTORE_NO_CACHE": "1", "TUF_ROOT": str(Path(cosign).parent / "tuf-root")}
    base.update(env or {})
    return subprocess.run([str(cosign), *args], env=base, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
