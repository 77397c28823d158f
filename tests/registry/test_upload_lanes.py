"""The in-order worker lanes an upload hashes and writes on."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time

import pytest

from trustbox.registry.uploads import _Lane


def test_batches_run_in_order_even_when_early_ones_are_slow() -> None:
    seen: list[bytes] = []

    def slow_first(batch: bytearray) -> None:
        if batch == b"0":
            time.sleep(0.05)
        seen.append(bytes(batch))

    async def scenario() -> None:
        lane = _Lane(slow_first, depth=3)
        for i in range(10):
            await lane.submit(bytearray(str(i).encode()))
            assert len(lane.tasks) <= 3  # the submitter waits beyond the depth
        await lane.drain()

    asyncio.run(scenario())
    assert seen == [str(i).encode() for i in range(10)]


def test_hash_lane_equals_hashing_in_one_go() -> None:
    h = hashlib.sha256()
    pieces = [bytearray(bytes([i]) * (1000 + i)) for i in range(50)]

    async def scenario() -> None:
        lane = _Lane(h.update, depth=2)
        for p in pieces:
            await lane.submit(p)
        await lane.drain()

    asyncio.run(scenario())
    assert h.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_an_error_stops_later_batches_and_is_raised() -> None:
    done: list[int] = []

    def fn(batch: bytearray) -> None:
        if batch[0] == 2:
            raise OSError("disk full")
        done.append(batch[0])

    async def scenario() -> None:
        lane = _Lane(fn, depth=10)
        for i in range(6):
            await lane.submit(bytearray([i]))
        with pytest.raises(OSError, match="disk full"):
            await lane.drain()
        assert not lane.tasks

    asyncio.run(scenario())
    assert done == [0, 1]  # nothing after the failed batch ran


def test_quiet_drain_swallows_the_error_for_cleanup() -> None:
    def fn(batch: bytearray) -> None:
        raise OSError("broken")

    async def scenario() -> None:
        lane = _Lane(fn)
        await lane.submit(bytearray(b"x"))
        await lane.drain(quiet=True)
        assert not lane.tasks

    asyncio.run(scenario())


def test_write_all_survives_short_writes_and_more_chunks_than_iov_max(tmp_path, monkeypatch) -> None:
    from trustbox.registry import uploads

    real_writev = os.writev
    calls: list[int] = []

    def short_writev(fd: int, views: list[memoryview]) -> int:
        calls.append(len(views))
        return real_writev(fd, views[:2]) if len(calls) % 2 else real_writev(fd, [views[0][:3]])

    monkeypatch.setattr(uploads.os, "writev", short_writev)
    chunks = [bytes([i % 251]) * (1 + i % 7) for i in range(3000)]
    path = tmp_path / "data"
    with open(path, "wb", buffering=0) as f:
        uploads._write_all(f.fileno(), chunks)
    assert path.read_bytes() == b"".join(chunks)
    assert max(calls) <= 1024  # never more vectors than IOV_MAX


def test_hash_lane_over_chunk_lists_equals_hashing_in_one_go() -> None:
    from trustbox.registry import uploads

    h = hashlib.sha256()
    batches = [[bytes([i, j]) * 300 for j in range(i % 5)] for i in range(40)]

    async def scenario() -> None:
        lane = _Lane(uploads._hash_all(h), depth=2)
        for b in batches:
            await lane.submit(b)
        await lane.drain()

    asyncio.run(scenario())
    assert h.hexdigest() == hashlib.sha256(b"".join(b"".join(b) for b in batches)).hexdigest()


def test_writer_starts_writeback_every_flush_interval(tmp_path, monkeypatch) -> None:
    from trustbox.registry import uploads

    kicked: list[tuple[int, int]] = []
    monkeypatch.setattr(uploads, "FLUSH_EVERY", 100)
    monkeypatch.setattr(uploads, "_sync_file_range", lambda fd, off, n, flags: kicked.append((off, n)) or 0)
    path = tmp_path / "data"
    path.write_bytes(b"x" * 10)
    with open(path, "r+b", buffering=0) as f:
        f.seek(10)
        w = uploads._Writer(f.fileno(), path, 10)
        for _ in range(5):
            w([b"a" * 30, b"b" * 30])
    assert path.read_bytes() == b"x" * 10 + b"a" * 30 + b"b" * 30 + (b"a" * 30 + b"b" * 30) * 4
    assert kicked == [(10, 120), (130, 120)]  # ranges in order, none twice, the tail left to fsync


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux only")
def test_sync_file_range_is_found_on_linux() -> None:
    from trustbox.registry import uploads

    assert uploads._sync_file_range is not None
