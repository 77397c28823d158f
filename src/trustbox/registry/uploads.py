"""Blob uploads: a local spool file per session, hashed while it streams in.

An upload lives in ``<spool>/<uuid>/`` (``data``, ``repo`` and ``owner``; layout in
:mod:`trustbox.registry.spool`). Chunks are appended with the running sha256 kept in memory; if
the in-memory state is missing or stale (another worker process took a chunk, or a restart) the
hash is recomputed from the file. On local storage the spool file is written past the page cache
(:mod:`trustbox.registry.direct_io`: an upload is written once and rarely read back at once). A
failed or interrupted chunk is cut off again, so the session stays at its last good offset. Committing fsyncs the file, checks the digest, then renames it
into blob storage: nothing partial is ever visible.

Open sessions are limited per owner (the authenticated user, else the repository), so one
pusher holding many sessions cannot refuse anyone else's push, and a session idle for longer
than ``idle_timeout`` expires: it is unknown from then on (404 ``BLOB_UPLOAD_UNKNOWN``, as
registry:2 answers for a purged upload) and its files, local and shared, are removed by a purge
that runs in a worker thread at most every ``purge_interval`` seconds, started by new sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from trustbox.oci.digest import Digest
from trustbox.registry.aio import in_thread
from trustbox.registry.blobs import BlobStore
from trustbox.registry.direct_io import DirectWriter, open_direct
from trustbox.registry.errors import (
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    SizeInvalid,
    TooManyRequests,
)
from trustbox.registry.sessions import SharedSession, SharedSessions
from trustbox.registry.spool import TRASH as _TRASH
from trustbox.registry.spool import OwnerIndex, last_activity, owner_key, session_entries

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
WRITE_BATCH = 4 << 20
FLUSH_EVERY = 16 << 20
#: the longest pause between two purges of idle sessions (shorter for short idle timeouts)
PURGE_INTERVAL = 60.0
_BIG_DELETE = 16 << 20  # spool files from this size are deleted off the event loop


@dataclass
class _HashState:
    offset: int
    hasher: Any


@dataclass(frozen=True, slots=True)
class Upload:
    """An open upload session."""

    id: str
    repo: str
    directory: Path
    size: int
    remote: SharedSession | None = None  # the shared record, for sessions kept in storage

    @property
    def data(self) -> Path:
        """The spool file."""
        return self.directory / "data"


def _writeback(path: Path) -> None:
    """Flush what is written of ``path`` so far; errors are left to the commit's fsync."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fdatasync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """glibc's sync_file_range(2) (Linux), or None where it is missing."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError, ImportError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


class _Writer:
    """The write lane's work: append batches at the descriptor's position and, every
    ``FLUSH_EVERY`` bytes, start the kernel writing them out (sync_file_range, which does not
    wait; where it is missing, an fdatasync on a thread of its own), so the commit's fsync has
    little left to do. Writeback errors are left to that fsync."""

    def __init__(self, fd: int, path: Path, offset: int) -> None:
        self.fd = fd
        self.path = path
        self.flushed = self.end = offset
        self._flushing: threading.Thread | None = None

    def finish(self) -> None:
        """Nothing is held back: every batch went to the descriptor."""

    def close(self) -> None:
        """Nothing to release (the descriptor is the caller's)."""

    def __call__(self, batch: list[bytes]) -> None:
        _write_all(self.fd, batch)
        self.end += sum(len(c) for c in batch)
        if self.end - self.flushed < FLUSH_EVERY:
            return
        if _sync_file_range is not None:
            _sync_file_range(self.fd, self.flushed, self.end - self.flushed, _SYNC_FILE_RANGE_WRITE)
        elif self._flushing is None or not self._flushing.is_alive():
            # its own descriptor: it may outlive the request, which does not wait for it
            self._flushing = threading.Thread(target=_writeback, args=(self.path,), daemon=True)
            self._flushing.start()
        self.flushed = self.end


def _read_good(directory: Path) -> int:
    """How many leading bytes of a shared session's local copy match what is stored."""
    try:
        return int((directory / "good").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _write_good(directory: Path, size: int) -> None:
    tmp = directory / "good.tmp"
    tmp.write_text(str(size))
    os.replace(tmp, directory / "good")


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Write ``chunks`` at the descriptor's position with as few system calls as possible."""
    views = [memoryview(c) for c in chunks]
    while views:
        n = os.writev(fd, views[:1024])  # IOV_MAX
        while n and views:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0


def _hash_all(hasher: Any) -> Callable[[list[bytes]], None]:
    def update(chunks: list[bytes]) -> None:
        for c in chunks:
            hasher.update(c)

    return update


class _Lane:
    """Runs ``fn(batch)`` in a worker thread for each submitted batch, in submission order,
    with at most ``depth`` batches queued (the receiver waits beyond that)."""

    def __init__(self, fn: Callable[[Any], object], depth: int = 3) -> None:
        self.fn = fn
        self.depth = depth
        self.tasks: deque[asyncio.Task[None]] = deque()

    async def _run(self, prev: asyncio.Task[None] | None, batch: Any) -> None:
        if prev is not None:
            await asyncio.shield(prev)
        await asyncio.get_running_loop().run_in_executor(None, self.fn, batch)

    async def submit(self, batch: Any) -> None:
        """Queue ``batch``; waits while ``depth`` batches are still queued. Raises the
        error of an earlier batch."""
        while len(self.tasks) >= self.depth:
            await self.tasks.popleft()
        prev = self.tasks[-1] if self.tasks else None
        self.tasks.append(asyncio.ensure_future(self._run(prev, batch)))

    async def drain(self, quiet: bool = False) -> None:
        """Wait for every queued batch; with ``quiet`` errors are swallowed (cleanup path)."""
        while self.tasks:
            task = self.tasks.popleft()
            try:
                await task
            except Exception:
                if not quiet:
                    for rest in self.tasks:
                        rest.cancel()
                    await asyncio.gather(*self.tasks, return_exceptions=True)
                    self.tasks.clear()
                    raise


class UploadStore:
    """Create, append to, inspect, commit and cancel uploads."""

    def __init__(
        self,
        blobs: BlobStore,
        max_sessions: int | None = None,
        shared: bool | None = None,
        *,
        idle_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
        direct_io: bool = True,
    ) -> None:
        """``max_sessions``: open sessions per owner; ``idle_timeout``: seconds after the last
        chunk (or the start) that a session expires (None: never); ``clock``: wall-clock time,
        compared with file and object modification times. ``shared`` (default: when storage is
        remote) records sessions in the storage driver so that any replica can continue them
        (see :mod:`trustbox.registry.sessions`). ``direct_io``: write local spool files past the
        page cache where the file system allows (see :mod:`trustbox.registry.direct_io`)."""
        self.blobs = blobs
        self.spool = blobs.driver.spool_dir
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.purge_interval = min(PURGE_INTERVAL, idle_timeout / 4) if idle_timeout else PURGE_INTERVAL
        if shared is None:
            shared = not blobs.driver.cheap_io
        self.shared = SharedSessions(blobs.driver) if shared else None
        # a shared session's chunks are read back at once to be stored: keep those in the cache
        self.direct_io = direct_io and blobs.driver.cheap_io and self.shared is None
        self.owners = OwnerIndex(self.spool)
        self._hashes: dict[str, _HashState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._next_purge = float("-inf")

    def lock(self, upload_id: str) -> asyncio.Lock:
        """A per-session lock serialising chunks of one upload within this process."""
        lk = self._locks.get(upload_id)
        if lk is None:
            lk = self._locks[upload_id] = asyncio.Lock()
        return lk

    async def create(self, repo: str, *, owner: str = "", transient: bool = False) -> Upload:
        """Start a new session for ``repo`` on behalf of ``owner`` (a user; default: the
        repository). Raises TooManyRequests when the owner holds ``max_sessions`` open
        sessions (after idle ones expired), OSError when the spool is unusable.

        A ``transient`` session lives only within the current request (POST with ``digest``):
        it is never recorded in shared storage.
        """
        await self.purge_idle()
        up = self._create_local(repo, owner_key(owner or f"repository:{repo}"))
        if self.shared is not None and not transient:
            try:
                await in_thread(self.shared.create, up.id, repo)
            except BaseException:
                self._forget_local(up.id)
                raise
            up = Upload(up.id, repo, up.directory, 0, SharedSession(repo, (), self.clock()))
        return up

    def _create_local(self, repo: str, key: str) -> Upload:
        if self.max_sessions is not None:
            open_sessions = self.owners.count(key)
            if open_sessions >= self.max_sessions:
                raise TooManyRequests(
                    f"you have {open_sessions} upload sessions open (limit {self.max_sessions}); "
                    "finish or cancel some, or retry later",
                    detail={"limit": self.max_sessions},
                    headers={"Retry-After": "10"},
                )
        upload_id = str(uuid.uuid4())
        d = self.spool / upload_id
        d.mkdir(parents=True)
        (d / "data").touch()
        (d / "repo").write_text(repo)
        (d / "owner").write_text(key)
        self.owners.add(key, upload_id)
        self._hashes[upload_id] = _HashState(0, hashlib.sha256())
        return Upload(upload_id, repo, d, 0)

    async def get(self, repo: str, upload_id: str) -> Upload:
        """The session ``upload_id`` of ``repo``; BlobUploadUnknown otherwise (also once it
        has been idle for longer than ``idle_timeout``: it is then removed)."""
        if not _UUID_RE.match(upload_id):
            raise BlobUploadUnknown(detail={"uuid": upload_id[:100]})
        if self.shared is None:
            up, touched = self._get_local(repo, upload_id)
            await self._expire_if_idle(up, touched)
            return up
        session = await in_thread(self.shared.describe, upload_id)
        if session is None:  # finished or cancelled, maybe by another replica: drop our copy
            self._forget_local(upload_id)
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        if session.repo != repo:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        remote = Upload(upload_id, repo, self.spool / upload_id, session.size, session)
        await self._expire_if_idle(remote, session.touched)
        d = self.spool / upload_id
        if not (d / "data").exists():
            d.mkdir(parents=True, exist_ok=True)
            (d / "data").touch()
            (d / "repo").write_text(repo)
        return Upload(upload_id, repo, d, session.size, session)

    def _get_local(self, repo: str, upload_id: str) -> tuple[Upload, float]:
        """The local session and when its data last changed; BlobUploadUnknown when it is
        missing or belongs to another repository."""
        d = self.spool / upload_id
        try:
            owner = (d / "repo").read_text()
            st = (d / "data").stat()
        except (FileNotFoundError, NotADirectoryError):
            raise BlobUploadUnknown(detail={"uuid": upload_id}) from None
        if owner != repo:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        return Upload(upload_id, repo, d, st.st_size), st.st_mtime

    def _idle(self, touched: float) -> bool:
        return self.idle_timeout is not None and self.clock() - touched > self.idle_timeout

    def _busy(self, upload_id: str) -> bool:
        """True while a request of this process works on the session (its lock is held)."""
        lk = self._locks.get(upload_id)
        return lk is not None and lk.locked()

    async def _expire_if_idle(self, up: Upload, touched: float) -> None:
        """Remove the session and raise BlobUploadUnknown if it was idle for too long."""
        if self._idle(touched) and not self._busy(up.id):
            await self.cancel(up)
            raise BlobUploadUnknown(
                "upload session expired (idle for too long); start the upload again",
                detail={"uuid": up.id, "idle_timeout_seconds": self.idle_timeout},
            )

    def _state(self, up: Upload) -> _HashState:
        st = self._hashes.get(up.id)
        if st is None or st.offset != up.size:
            h = hashlib.sha256()
            with open(up.data, "rb") as f:
                while chunk := f.read(4 << 20):
                    h.update(chunk)
            st = self._hashes[up.id] = _HashState(up.size, h)
        return st

    def _catch_up(self, up: Upload) -> None:
        """Make the local spool file hold exactly the session's acknowledged bytes: cut off
        what was never acknowledged, download the chunks other replicas took."""
        assert self.shared is not None and up.remote is not None
        if not up.data.exists():
            up.directory.mkdir(parents=True, exist_ok=True)
            up.data.touch()
        # only the first ``good`` bytes of the local copy are known to be acknowledged ones
        # (a chunk written here but never stored, e.g. by a process that died, must go)
        have = min(_read_good(up.directory), up.size)
        with open(up.data, "r+b") as f:
            if f.seek(0, os.SEEK_END) != have:
                f.truncate(have)
        if have < up.size:
            have = self.shared.fetch(up.remote, have, up.data)
            if have != up.size:
                raise BlobUploadUnknown(
                    "the upload changed while it was being read; start it again",
                    detail={"uuid": up.id},
                )
            _write_good(up.directory, have)
        state = self._hashes.get(up.id)
        if state is not None and state.offset != up.size:
            self._hashes.pop(up.id, None)

    async def append(
        self, up: Upload, stream: AsyncIterator[bytes], expected: int | None = None, *, publish: bool = True
    ) -> Upload:
        """Append a request body to the session; on any failure the chunk is cut off again.

        ``expected`` is the chunk length announced by Content-Range/Content-Length; a body of a
        different length is refused (SizeInvalid) and discarded. For a shared session the
        chunk is stored for the other replicas before this returns, unless ``publish`` is
        false (the commit in the same request follows).
        """
        if self.shared is not None and up.remote is not None:
            await in_thread(self._catch_up, up)
        # Hash in-line only if this process holds the hash state for exactly this offset;
        # otherwise (another worker took the previous chunk) write now and hash once at commit.
        state = self._hashes.get(up.id)
        if state is not None and state.offset != up.size:
            self._hashes.pop(up.id, None)
            state = None
        if state is None and up.size == 0:  # nothing to catch up on (the POST went to another replica)
            state = self._hashes[up.id] = _HashState(0, hashlib.sha256())
        hasher = state.hasher if state is not None else None
        saved = hasher.copy() if hasher is not None else None
        start = up.size
        f = open(up.data, "r+b", buffering=0)  # noqa: SIM115 - closed in finally
        written = 0
        # Hashing and writing both release the GIL, so each runs on its own lane (in order
        # within the lane, a few batches deep): a batch costs the slowest of receive, hash and
        # write instead of their sum (sha256 without SHA-NI runs at only ~250 MB/s). A batch is
        # the list of received chunks as they came: copying them into one buffer cost a copy
        # of the whole upload plus a page fault for every fresh page of the buffers.
        direct_fd = open_direct(up.data) if self.direct_io else None
        writer: _Writer | DirectWriter = (
            _Writer(f.fileno(), up.data, start) if direct_fd is None else DirectWriter(f.fileno(), direct_fd, start)
        )
        lanes = [_Lane(writer)] + ([_Lane(_hash_all(hasher))] if hasher is not None else [])
        ok = False
        try:
            f.seek(start)
            buf: list[bytes] = []
            buffered = 0
            async for chunk in stream:
                if not chunk:
                    continue
                buf.append(chunk)
                buffered += len(chunk)
                written += len(chunk)
                if buffered >= WRITE_BATCH:
                    batch, buf = buf, []  # handed over: nothing changes it afterwards
                    for lane in lanes:
                        await lane.submit(batch)
                    buffered = 0
            if buf:
                for lane in lanes:
                    await lane.submit(buf)
            for lane in lanes:
                await lane.drain()
            writer.finish()  # direct I/O: the partial last block, one small buffered write
            if expected is not None and written != expected:
                raise SizeInvalid(
                    f"chunk length {written} does not match the declared length {expected}",
                    detail={"declared": expected, "received": written},
                )
            if publish and written and self.shared is not None and up.remote is not None:
                # a first chunk's digest is the running hash: stored with it, a chunk that turns
                # out to be the whole blob is adopted at commit instead of uploaded again
                sha256 = hasher.digest() if hasher is not None and start == 0 else None
                if not await in_thread(self.shared.publish, up.id, start, up.data, start, written, sha256):
                    raise RangeInvalid(
                        f"another request stored a chunk at offset {start} of this upload first; "
                        "ask for the upload's status and continue from there",
                        detail={"start": start},
                        headers={"Location": f"/v2/{up.repo}/blobs/uploads/{up.id}", "Docker-Upload-UUID": up.id},
                    )
                _write_good(up.directory, start + written)
            ok = True
        finally:
            # early writeback is not waited for: the commit's fsync is what makes the blob durable
            for lane in lanes:
                await lane.drain(quiet=True)
            writer.close()
            if not ok:
                f.truncate(start)
                if state is not None and saved is not None:
                    state.hasher = saved
                    state.offset = start
            elif state is not None:
                state.offset = start + written
            f.close()
        return Upload(up.id, up.repo, up.directory, start + written, up.remote)

    def _final_digest(self, up: Upload, algorithm: str) -> str:
        if algorithm == "sha256":
            return str(self._state(up).hasher.hexdigest())
        h = hashlib.new(algorithm)
        with open(up.data, "rb") as f:
            while chunk := f.read(4 << 20):
                h.update(chunk)
        return h.hexdigest()

    def _fsync(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def commit(self, up: Upload, d: Digest) -> int:
        """Check the digest, move the data into blob storage, link it; return its size.

        On a digest mismatch the session is deleted and DigestInvalid raised.
        """
        actual = await in_thread(self._final_digest, up, d.algorithm)
        if actual != d.hex:
            await self.cancel(up)
            raise DigestInvalid(
                "provided digest did not match uploaded content",
                detail={"expected": str(d), "actual": f"{d.algorithm}:{actual}"},
            )
        driver = self.blobs.driver
        key = self.blobs.paths.blob_key(d)
        mark = self.blobs.verified_identity(d)  # no mark, no need to look (a HEAD on S3)
        existing = await in_thread(driver.stat, key) if mark is not None else None
        if existing is not None and existing.identity == mark:
            # The same content is stored already and verified unchanged since: keep it. Writing
            # the copy over it would only free the old one's blocks (~0.2 s per GiB) or upload
            # it to remote storage again.
            await self.blobs.link(up.repo, d)
            await self.cancel(up)
            return up.size
        if not await self._adopt_chunk(up, d, key):  # adopted: copied inside the store, not sent again
            if driver.cheap_io:  # local storage: the spool file becomes the blob, so it must be on disk
                await in_thread(self._fsync, up.data)
            await in_thread(driver.put_file, key, up.data)
        info = await in_thread(driver.stat, key)
        if info is not None:
            self.blobs.mark_verified(d, info)
        await self.blobs.link(up.repo, d)
        await self.cancel(up)
        return up.size

    async def _adopt_chunk(self, up: Upload, d: Digest, key: str) -> bool:
        """For a shared session whose one stored chunk is the whole upload (docker's PATCH of
        the whole layer, then an empty PUT): let the store copy that chunk to ``key`` if it
        vouches for its sha256 (see ``StorageDriver.adopt``). The local copy was verified
        against ``d`` already; this spares uploading the same bytes a second time."""
        remote = up.remote
        if remote is None or d.algorithm != "sha256" or len(remote.chunks) != 1:
            return False
        chunk = remote.chunks[0]
        if chunk.offset != 0 or chunk.size != up.size:
            return False
        return await in_thread(self.blobs.driver.adopt, chunk.key, key, d.hex, up.size)

    async def cancel(self, up: Upload) -> None:
        """Forget the session and remove its files (and its shared record)."""
        self._forget_local(up.id)
        if self.shared is not None and up.remote is not None:
            await in_thread(self.shared.remove, up.id)

    def _forget_local(self, upload_id: str) -> None:
        """Drop the session's state and files. The directory is renamed away at once; deleting
        a big spool file takes long (~0.2 s per GiB), so under an event loop that happens in a
        worker thread, not waited for (:meth:`purge_idle` and ``registry gc`` remove leftovers)."""
        self._hashes.pop(upload_id, None)
        self._locks.pop(upload_id, None)
        d = self.spool / upload_id
        try:
            self.owners.remove((d / "owner").read_text(), upload_id)
        except (OSError, ValueError):  # no owner recorded here (a session another replica started)
            pass
        try:
            big = (d / "data").stat().st_size >= _BIG_DELETE
        except OSError:
            big = False
        loop: asyncio.AbstractEventLoop | None = None
        if big:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        if loop is None:
            shutil.rmtree(d, ignore_errors=True)
            return
        trash = self.spool / f"{_TRASH}{upload_id}"
        try:
            os.rename(d, trash)
        except FileNotFoundError:
            return
        except OSError:
            trash = d
        loop.run_in_executor(None, partial(shutil.rmtree, trash, ignore_errors=True))

    async def purge_idle(self, *, force: bool = False) -> list[str]:
        """Remove sessions idle for longer than ``idle_timeout``, local and shared; return their
        ids. Runs at most every ``purge_interval`` seconds (unless ``force``); the storage scans
        run in a worker thread. Sessions a request of this process is working on are kept."""
        now = self.clock()
        if self.idle_timeout is None or (now < self._next_purge and not force):
            return []
        self._next_purge = now + self.purge_interval
        local, shared = await in_thread(self._idle_sessions, now, self.idle_timeout)
        removed: list[str] = []
        for upload_id in dict.fromkeys(local + shared):
            if self._busy(upload_id):
                continue
            # a local copy idle here may belong to a shared session another replica is
            # continuing: only what storage says is idle is removed for everyone
            self._forget_local(upload_id)
            removed.append(upload_id)
        gone = [u for u in shared if u in removed]
        if gone and self.shared is not None:
            await in_thread(_remove_all, self.shared, gone)
        return removed

    def _idle_sessions(self, now: float, max_idle: float) -> tuple[list[str], list[str]]:
        """(local session ids, shared session ids) idle for longer than ``max_idle``; deletes
        leftover ``.gone-*`` directories and index entries of vanished sessions on the way."""
        local: list[str] = []
        for entry in session_entries(self.spool):
            touched = last_activity(entry)
            if touched is None or now - touched <= max_idle:
                continue
            if entry.name.startswith(_TRASH):
                shutil.rmtree(entry, ignore_errors=True)
            elif _UUID_RE.match(entry.name):
                local.append(entry.name)
        for key, upload_id in self.owners.orphans(self.spool):
            self.owners.remove(key, upload_id)
        shared = self.shared.older_than(now, max_idle) if self.shared is not None else []
        return local, shared


def _remove_all(shared: SharedSessions, upload_ids: Iterable[str]) -> None:
    for upload_id in upload_ids:
        shared.remove(upload_id)
