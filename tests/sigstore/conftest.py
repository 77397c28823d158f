"""Fixtures of the sigstore interop tests: the cosign binary, once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cosign import get_cosign


@pytest.fixture(scope="session")
def cosign() -> Path:
    """Real cosign 2.5 (downloaded once, cached under ``~/.cache/trustbox-tests/cosign``)."""
    path = get_cosign()
    if path is None:
        pytest.skip("cosign: /work/shared/tools/get-cosign.sh (TRUSTBOX_GET_COSIGN) not available")
    return path
