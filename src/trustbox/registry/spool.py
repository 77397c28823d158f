"""The local upload spool: session directories and the index of sessions by owner.

::

    <spool>/<uuid>/{data,repo,owner,good}   a session's local copy (see uploads.py)
    <spool>/.gone-<uuid>/                   a session directory being deleted
    <spool>/.owners/<key>/<uuid>            an empty file per session created here, by owner

The owner index lets the per-owner cap on open sessions count one owner's sessions without
reading every session (``<key>`` is a hash of the owner: a user name or a repository). Several
processes may share a spool: every step is a single atomic file-system call, and an empty
owner directory is removed again, so an idle spool is empty.

All functions do blocking file-system calls: run them in a worker thread where they may touch
many entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

INDEX = ".owners"
TRASH = ".gone-"  # prefix of session directories being deleted
_KEY_RE = re.compile(r"[0-9a-f]{32}")


def owner_key(owner: str) -> str:
    """The index directory name of ``owner`` (any string; hashed, so always a safe name)."""
    return hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def session_entries(spool: Path) -> list[Path]:
    """Every session directory in ``spool``, including ones being deleted (``.gone-*``), but not
    the owner index."""
    try:
        return [Path(e.path) for e in os.scandir(spool) if e.name != INDEX]
    except FileNotFoundError:
        return []


def last_activity(directory: Path) -> float | None:
    """The newest modification time of ``directory`` and the files in it (a chunk written to
    ``data`` updates it), or None when the directory is gone."""
    try:
        newest = directory.stat().st_mtime
        with os.scandir(directory) as it:
            for e in it:
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, e.stat().st_mtime)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return newest


class OwnerIndex:
    """``<spool>/.owners/<key>/<uuid>`` markers: which sessions each owner holds."""

    def __init__(self, spool: Path) -> None:
        self.root = spool / INDEX

    def add(self, key: str, upload_id: str) -> None:
        """Record that ``key`` holds ``upload_id``. Raises OSError when the spool is unusable."""
        for attempt in range(5):  # a concurrent remove() may take the owner directory away in between
            try:
                (self.root / key).mkdir(parents=True, exist_ok=True)
                (self.root / key / upload_id).touch()
                return
            except FileNotFoundError:
                if attempt == 4:
                    raise

    def remove(self, key: str, upload_id: str) -> None:
        """Forget ``upload_id``; drop the owner's directory (and the index) once empty."""
        if not _KEY_RE.fullmatch(key):  # read back from a session directory: only our own names
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / key / upload_id)
        for d in (self.root / key, self.root):
            try:
                os.rmdir(d)
            except OSError:  # not empty (or gone): keep it
                return

    def count(self, key: str) -> int:
        """How many sessions ``key`` holds."""
        try:
            with os.scandir(self.root / key) as it:
                return sum(1 for _ in it)
        except FileNotFoundError:
            return 0

    def sessions(self, key: str) -> list[str]:
        """The ids of the sessions ``key`` holds."""
        try:
            return os.listdir(self.root / key)
        except FileNotFoundError:
            return []

    def orphans(self, spool: Path) -> list[tuple[str, str]]:
        """``(key, upload_id)`` of markers whose session directory is gone (removed by another
        process, or by ``registry gc``)."""
        out: list[tuple[str, str]] = []
        try:
            keys = os.listdir(self.root)
        except FileNotFoundError:
            return out
        for key in keys:
            out.extend((key, upload_id) for upload_id in self.sessions(key) if not (spool / upload_id).is_dir())
        return out
