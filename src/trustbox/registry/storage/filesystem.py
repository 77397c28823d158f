"""Local filesystem storage: one file per key under a root directory."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from trustbox.registry.storage.base import ObjectInfo

_TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or create inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemDriver:
    """Keys map to files under ``root``; writes go to a temporary file, fsync, then rename."""

    name = "filesystem"
    cheap_io = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._prefix = str(self.root) + os.sep  # hot-path reads join strings, not Paths
        self._spool = self.root / "uploads"
        self._spool.mkdir(exist_ok=True)

    @property
    def spool_dir(self) -> Path:
        """Uploads live inside the root so commits are a same-filesystem rename."""
        return self._spool

    def path(self, key: str) -> Path:
        """The file that holds ``key``."""
        return self.root / key

    def read(self, key: str) -> bytes | None:
        """The whole file, or None."""
        try:
            with open(self._prefix + key, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def _make_parent(self, target: Path) -> None:
        parent = target.parent
        if not parent.is_dir():
            parent.mkdir(parents=True, exist_ok=True)

    def write(self, key: str, data: bytes) -> None:
        """Atomic, durable write: temp file in the same directory, fsync, rename, fsync dir."""
        target = self.root / key
        self._make_parent(target)
        tmp = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)

    def put_file(self, key: str, path: Path) -> None:
        """Rename an already fsynced local file into place (copy first if on another device)."""
        target = self.root / key
        self._make_parent(target)
        try:
            os.replace(path, target)
        except OSError:
            tmp = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
            try:
                shutil.copyfile(path, tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            Path(path).unlink(missing_ok=True)
        fsync_dir(target.parent)

    def put_file_if_absent(self, key: str, path: Path, sha256: bytes | None = None) -> bool:
        """Hard-link the fsynced file into place, which fails if the name exists; ``path`` is
        consumed either way (``sha256`` is not kept: the filesystem has no checksums)."""
        target = self.root / key
        self._make_parent(target)
        try:
            os.link(path, target)
        except FileExistsError:
            return False
        finally:
            Path(path).unlink(missing_ok=True)
        fsync_dir(target.parent)
        return True

    def adopt(self, src: str, dst: str, sha256_hex: str, size: int) -> bool:
        """Never: files carry no checksum (and a local upload's spool file is renamed into
        place anyway)."""
        return False

    def stat(self, key: str) -> ObjectInfo | None:
        """Size plus (inode, size, mtime, ctime) as identity: any rewrite changes ctime."""
        try:
            st = os.stat(self.root / key)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self.root / key):
            return None
        return ObjectInfo(st.st_size, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), st.st_mtime)

    def delete(self, key: str) -> bool:
        """Unlink the file; False if missing."""
        try:
            os.unlink(self.root / key)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def delete_tree(self, prefix: str) -> None:
        """Remove a whole directory (an untag in registry:2's layout, tests)."""
        shutil.rmtree(self.root / prefix, ignore_errors=True)

    def list_dir(self, prefix: str) -> list[str]:
        """Directory entries, minus in-flight temporary files."""
        try:
            names = os.listdir(self.root / prefix)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [n for n in names if not n.startswith(_TMP_PREFIX)]

    def walk(self, prefix: str) -> Iterator[tuple[str, ObjectInfo]]:
        """Every regular file under ``prefix``."""
        base = self.root / prefix
        for dirpath, _dirs, files in os.walk(base):
            for fname in files:
                if fname.startswith(_TMP_PREFIX):
                    continue
                full = Path(dirpath) / fname
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                key = full.relative_to(self.root).as_posix()
                yield key, ObjectInfo(st.st_size, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), st.st_mtime)

    def local_path(self, key: str) -> Path | None:
        """The file itself: blobs can be sent with sendfile."""
        return self.root / key

    def iter_range(self, key: str, start: int, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Read a byte range in chunks."""
        with open(self.root / key, "rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                data = f.read(min(chunk, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data

    def move(self, src: str, dst: str) -> None:
        """Rename within the root."""
        target = self.root / dst
        self._make_parent(target)
        os.replace(self.root / src, target)
