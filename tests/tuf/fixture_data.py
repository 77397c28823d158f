"""Helpers to load the golden fixture repositories."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.testdata import FIXTURES

PINNED_NOW = datetime(2026, 11, 23, tzinfo=UTC)
REPOS = {
    "notary-demo": ("localhost:25000/spec/notary-demo", FIXTURES / "notary-demo/server/_trust/tuf"),
    "docker-demo": ("localhost:25000/spec/docker-demo", FIXTURES / "docker-demo/server/_trust/tuf"),
}


def metadata_files() -> list[Path]:
    """Every metadata file of both fixture repositories."""
    out: list[Path] = []
    for _gun, d in REPOS.values():
        out.extend(sorted(d.rglob("*.json")))
    return out


def read_dir(d: Path) -> dict[str, bytes]:
    """``{relative path: bytes}`` of a metadata folder."""
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*.json")}
