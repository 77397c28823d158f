"""Fixtures of the sigstore interop tests: the cosign binary, found or fetched once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cosign import cosign_binary


@pytest.fixture(scope="session")
def cosign() -> Path:
    """Real cosign 2.5 (``$COSIGN``, on PATH, or fetched by get-cosign.sh into a cache folder)."""
    path = cosign_binary()
    if path is None:
        pytest.skip("cosign: not on PATH and /work/shared/tools/get-cosign.sh (TRUSTBOX_GET_COSIGN) not available")
    return Path(path)
