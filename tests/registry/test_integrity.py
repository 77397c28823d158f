"""Integrity: stored blobs are verified on read, tampering is caught, uploads never half-land."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from trustbox.registry import layout
from trustbox.registry.names import parse_digest
from trustbox.registry.storage import FilesystemDriver

from .conftest import Reg, build_reg, error_code


def corrupt(reg: Reg, d: str, data: bytes = b"tampered!") -> None:
    """Overwrite a stored blob behind the registry's back (works on every driver)."""
    reg.driver.write(reg.paths.blob_key(parse_digest(d)), data)


def test_corrupted_blob_refused_and_quarantined(reg: Reg) -> None:
    data = os.urandom(4096)
    d = reg.push_blob("a", data)
    assert reg.get(f"/v2/a/blobs/{d}").content == data
    corrupt(reg, d, data[:-1] + bytes([data[-1] ^ 1]))
    r = reg.get(f"/v2/a/blobs/{d}")
    assert r.status_code == 404
    assert error_code(r) == "BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"]["reason"] == "verification failed"
    assert r.json()["errors"][0]["message"].startswith("stored blob failed digest verification")
    # quarantined: gone from blob storage, kept aside for inspection
    assert reg.head(f"/v2/a/blobs/{d}").status_code == 404
    r = reg.get(f"/v2/a/blobs/{d}")  # later reads still say why, in the repositories that link it
    assert r.status_code == 404 and "failed digest verification" in r.json()["errors"][0]["message"]
    r = reg.get(f"/v2/other/blobs/{d}")
    assert r.status_code == 404 and r.json()["errors"][0]["message"] == "blob unknown to registry"
    assert reg.driver.stat(reg.paths.blob_key(parse_digest(d))) is None
    assert [k for k, _ in reg.driver.walk(layout.QUARANTINE)]
    # pushing the good content again heals the repository
    reg.push_blob("a", data)
    assert reg.get(f"/v2/a/blobs/{d}").content == data


def test_range_and_head_reads_recheck_after_tampering(reg: Reg) -> None:
    data = os.urandom(4096)
    d = reg.push_blob("a", data)
    corrupt(reg, d, os.urandom(4096))
    r = reg.get(f"/v2/a/blobs/{d}", headers={"Range": "bytes=0-9"})
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"
    d2 = reg.push_blob("a", b"second blob")
    corrupt(reg, d2, b"SECOND BLOB")
    assert reg.head(f"/v2/a/blobs/{d2}").status_code == 404


def test_verify_first_rechecks_when_the_file_changes(storage_spec: dict[str, Any]) -> None:
    reg = build_reg(storage_spec, verify_blobs="first")
    data = os.urandom(1000)
    d = reg.push_blob("a", data)
    assert reg.get(f"/v2/a/blobs/{d}").content == data
    corrupt(reg, d)
    assert reg.get(f"/v2/a/blobs/{d}").status_code == 404


def test_verify_never_serves_what_is_on_disk(storage_spec: dict[str, Any]) -> None:
    reg = build_reg(storage_spec, verify_blobs="never")
    d = reg.push_blob("a", b"original")
    corrupt(reg, d, b"evil")
    r = reg.get(f"/v2/a/blobs/{d}")
    assert r.status_code == 200 and r.content == b"evil"  # what registry:2 does


def test_corrupted_manifest_not_served(storage_spec: dict[str, Any]) -> None:
    reg = build_reg(storage_spec)
    d, body, _ = reg.image("a", tag="v1")
    corrupt(reg, d, body + b" ")
    fresh = build_reg(storage_spec)  # no cache of the verified bytes
    r = fresh.get("/v2/a/manifests/v1")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"


def test_tampered_file_on_disk_at_documented_path(fsreg: Reg) -> None:
    data = os.urandom(2000)
    d = fsreg.push_blob("lib/x", data)
    assert isinstance(fsreg.driver, FilesystemDriver)
    hexd = d.split(":")[1]
    path = fsreg.driver.root / "blobs" / "sha256" / hexd[:2] / hexd
    assert path.read_bytes() == data
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"X")
    assert fsreg.get(f"/v2/lib/x/blobs/{d}").status_code == 404
    assert not path.exists()


async def _chunks(data: bytes, fail_after: int | None) -> AsyncIterator[bytes]:
    sent = 0
    for i in range(0, len(data), 65536):
        if fail_after is not None and sent >= fail_after:
            raise ClientDisconnect()
        piece = data[i:i + 65536]
        sent += len(piece)
        yield piece


def test_interrupted_upload_leaves_no_blob_and_resumes(fsreg: Reg) -> None:
    registry = fsreg.c.app.state.registry
    uploads = registry.uploads
    data = os.urandom(10 << 20)
    d = parse_digest("sha256:" + hashlib.sha256(data).hexdigest())

    async def scenario() -> None:
        up = await uploads.create("a")
        up = await uploads.append(up, _chunks(data[:1 << 20], None))
        with pytest.raises(ClientDisconnect):
            await uploads.append(up, _chunks(data[1 << 20:], 6 << 20))
        again = await uploads.get("a", up.id)
        assert again.size == 1 << 20  # the broken chunk was cut off
        assert fsreg.driver.stat(fsreg.paths.blob_key(d)) is None
        up = await uploads.append(again, _chunks(data[1 << 20:], None))
        await uploads.commit(up, d)

    asyncio.run(scenario())
    assert fsreg.get(f"/v2/a/blobs/{d}").content == data
    assert not any(Path(fsreg.driver.spool_dir).iterdir())


def test_no_temporary_files_left(fsreg: Reg) -> None:
    for i in range(5):
        fsreg.image(f"r{i}", tag="t")
    assert isinstance(fsreg.driver, FilesystemDriver)
    leftovers = [p for p in fsreg.driver.root.rglob(".tmp-*")]
    assert leftovers == []


def test_chunks_across_worker_processes_are_still_verified(reg: Reg) -> None:
    """Another worker process takes a chunk: the hash state is gone, the commit rehashes."""
    uploads = reg.c.app.state.registry.uploads
    data = os.urandom(3 << 20)
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    for digest, status in ((good[:-1] + ("0" if good[-1] != "0" else "1"), 400), (good, 201)):
        loc = reg.post("/v2/w/blobs/uploads/").headers["Location"]
        for start in range(0, len(data), 1 << 20):
            uploads._hashes.clear()  # as if the previous request was served by another process
            r = reg.patch(loc, content=data[start:start + (1 << 20)],
                          headers={"Content-Range": f"{start}-{start + (1 << 20) - 1}"})
            assert r.status_code == 202
            loc = r.headers["Location"]
        r = reg.put(f"{loc}?digest={digest}")
        assert r.status_code == status
    assert reg.get(f"/v2/w/blobs/{good}").content == data


def _upload_in_chunks(reg: Reg, repo: str, data: bytes, pieces: int = 3) -> Any:
    r = reg.post(f"/v2/{repo}/blobs/uploads/")
    loc = r.headers["Location"]
    step = -(-len(data) // pieces)
    for off in range(0, len(data), step):
        part = data[off:off + step]
        r = reg.patch(loc, content=part, headers={"Content-Range": f"{off}-{off + len(part) - 1}"})
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
    return reg.put(f"{loc}{'&' if '?' in loc else '?'}digest=sha256:{hashlib.sha256(data).hexdigest()}")


def test_pushing_a_stored_verified_blob_again_keeps_the_stored_file(fsreg: Reg) -> None:
    data = os.urandom(20 << 20)  # big enough for the spool copy to be deleted off the event loop
    d = fsreg.push_blob("a", data)
    path = fsreg.driver.local_path(fsreg.paths.blob_key(parse_digest(d)))
    assert path is not None
    before = os.stat(path)
    r = _upload_in_chunks(fsreg, "b", data)
    assert r.status_code == 201, r.text
    after = os.stat(path)
    assert (after.st_ino, after.st_ctime_ns) == (before.st_ino, before.st_ctime_ns)  # not rewritten
    assert fsreg.get(f"/v2/b/blobs/{d}").content == data  # linked into the second repository
    spool = Path(fsreg.driver.spool_dir)
    for _ in range(200):  # the spool copy goes away in the background
        if not any(spool.iterdir()):
            break
        time.sleep(0.02)
    assert not any(spool.iterdir())


def test_pushing_again_over_a_tampered_blob_replaces_it(reg: Reg) -> None:
    data = os.urandom(5000)
    d = reg.push_blob("a", data)
    corrupt(reg, d, data[:-1] + bytes([data[-1] ^ 1]))  # changed behind the registry's back, unseen
    r = _upload_in_chunks(reg, "a", data)
    assert r.status_code == 201, r.text
    stored = reg.driver.read(reg.paths.blob_key(parse_digest(d)))
    assert stored == data
    assert reg.get(f"/v2/a/blobs/{d}").content == data
