"""The on-disk metadata cache shared with notary and docker: ``<trust dir>/tuf/<gun>/metadata/<role>.json``.

Only verified documents are written (files 0600, directories 0700, atomic replace), so the
docker CLI and notary can read what trustbox cached and the other way round.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from trustbox.atomicfile import atomic_write
from trustbox.tuf.metadata import check_role


class MetadataCache:
    """Cached metadata of one GUN."""

    def __init__(self, trust_dir: Path, gun: str) -> None:
        self.root_dir = Path(trust_dir) / "tuf" / gun
        self.dir = self.root_dir / "metadata"

    def path(self, role: str) -> Path:
        """The file of a role (``targets/releases`` -> ``metadata/targets/releases.json``)."""
        check_role(role)
        return self.dir / (role + ".json")

    def get(self, role: str) -> bytes | None:
        """The cached bytes of ``role``, or None."""
        try:
            return self.path(role).read_bytes()
        except OSError:
            return None

    def set(self, role: str, data: bytes) -> None:
        """Store verified bytes for ``role``."""
        atomic_write(self.path(role), data)

    def remove(self, role: str) -> None:
        """Forget one role."""
        try:
            self.path(role).unlink()
        except FileNotFoundError:
            pass

    def clear(self) -> None:
        """Forget everything cached for the GUN (keeps the changelist directory of notary)."""
        shutil.rmtree(self.dir, ignore_errors=True)
