"""Fixtures for the image-transfer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustbox.client.images.sample import write_sample_image
from trustbox.oci.manifest import Manifest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient docker config, trust or insecure-registry settings leak into a test."""
    for var in ("DOCKER_CONTENT_TRUST", "DOCKER_CONTENT_TRUST_SERVER", "TRUSTBOX_INSECURE_REGISTRIES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, Manifest]:
    """A single-platform sample image at ``tmp/sample`` under ref ``v1``."""
    d = tmp_path / "sample"
    return d, write_sample_image(d, "v1")


@pytest.fixture
def multi(tmp_path: Path) -> tuple[Path, Manifest]:
    """A two-platform sample image (OCI index) at ``tmp/multi`` under ref ``m``."""
    d = tmp_path / "multi"
    return d, write_sample_image(d, "m", multi_arch=True)
