"""Upload sessions on S3 are shared: any replica can continue, finish or cancel them.

Two registry apps (two "replicas") share one moto bucket but each has its own local spool,
as two machines behind a load balancer would.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.registry.conftest import Reg, build_reg, error_code, make_bucket
from trustbox.registry import gc
from trustbox.registry.sessions import SharedSessions


@pytest.fixture
def pair(moto_endpoint: str, tmp_path: Path) -> tuple[Reg, Reg]:
    bucket = make_bucket(moto_endpoint)
    spec: dict[str, Any] = {"storage": f"s3://{bucket}/reg", "s3_endpoint_url": moto_endpoint}
    a = build_reg({**spec, "spool_dir": str(tmp_path / "spool-a")})
    b = build_reg({**spec, "spool_dir": str(tmp_path / "spool-b")})
    return a, b


def _path(location: str) -> str:
    return location.split("://", 1)[1].split("/", 1)[1] if "://" in location else location.lstrip("/")


def _start(r: Reg, repo: str = "team/app") -> str:
    resp = r.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status_code == 202, resp.text
    return "/" + _path(resp.headers["location"])


def _patch(r: Reg, loc: str, data: bytes, offset: int) -> Any:
    return r.patch(loc, content=data, headers={
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{offset}-{offset + len(data) - 1}",
    })


def _sessions(r: Reg) -> list[str]:
    return sorted({key.split("/")[1] for key, _ in r.driver.walk("uploads")})


def _spool_entries(r: Reg) -> list[str]:
    spool = Path(r.driver.spool_dir)
    return sorted(p.name for p in spool.iterdir()) if spool.is_dir() else []


def test_chunks_alternate_between_replicas_and_either_one_commits(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    data = os.urandom(3 * (5 << 20) + 12345)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = _start(a)
    cuts = [0, 5 << 20, 6 << 20, 13 << 20, len(data) - 100, len(data)]
    replicas = [b, a, a, b, a]
    for (lo, hi), r in zip(itertools.pairwise(cuts), replicas, strict=True):
        resp = _patch(r, loc, data[lo:hi], lo)
        assert resp.status_code == 202, resp.text
        assert resp.headers["range"] == f"0-{hi - 1}"
        loc = "/" + _path(resp.headers["location"])
        # the other replica sees the same progress at once
        other = a if r is b else b
        status = other.get(loc)
        assert status.status_code == 204 and status.headers["range"] == f"0-{hi - 1}"
    resp = b.put(f"{loc}?digest={digest}")
    assert resp.status_code == 201, resp.text
    for r in (a, b):
        got = r.get(f"/v2/team/app/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
    assert _sessions(a) == []  # the shared record is gone once committed
    assert _spool_entries(b) == []
    # replica a still holds a stale local copy; touching the session drops it
    assert a.get(loc).status_code == 404
    assert _spool_entries(a) == []


def test_docker_style_patch_without_range_then_put_with_last_bytes(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    data = os.urandom(9 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = _start(a)
    resp = b.patch(loc, content=data[:-10], headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 202, resp.text
    resp = a.put(f"{loc}?digest={digest}", content=data[-10:],
                 headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    assert b.get(f"/v2/team/app/blobs/{digest}").content == data
    assert _sessions(a) == []


def test_monolithic_put_on_another_replica(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    data = os.urandom(70000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = _start(a)
    resp = b.put(f"{loc}?digest={digest}", content=data, headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    assert a.head(f"/v2/team/app/blobs/{digest}").status_code == 200


def test_out_of_order_chunk_on_the_other_replica_is_416_with_the_real_range(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    loc = _start(a)
    assert _patch(a, loc, b"x" * 1000, 0).status_code == 202
    resp = _patch(b, loc, b"y" * 10, 0)  # b's spool knows nothing, storage says 1000 bytes
    assert resp.status_code == 416
    assert error_code(resp) == "BLOB_UPLOAD_INVALID" or resp.headers["range"] == "0-999"
    assert resp.headers["range"] == "0-999"
    assert _patch(b, loc, b"y" * 10, 1000).status_code == 202
    data = b"x" * 1000 + b"y" * 10
    resp = a.put(f"{loc}?digest=sha256:{hashlib.sha256(data).hexdigest()}")
    assert resp.status_code == 201, resp.text


def test_cancel_on_one_replica_ends_the_session_everywhere(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    loc = _start(a)
    assert _patch(a, loc, b"abc", 0).status_code == 202
    assert b.delete(loc).status_code == 204
    for r in (a, b):
        resp = _patch(r, loc, b"def", 3)
        assert resp.status_code == 404 and error_code(resp) == "BLOB_UPLOAD_UNKNOWN"
    assert _sessions(a) == []
    assert _spool_entries(a) == [] and _spool_entries(b) == []


def test_digest_mismatch_on_commit_removes_the_shared_session(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    loc = _start(a)
    assert _patch(a, loc, b"hello", 0).status_code == 202
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    resp = b.put(f"{loc}?digest={wrong}")
    assert resp.status_code == 400 and error_code(resp) == "DIGEST_INVALID"
    assert _sessions(a) == []
    assert b.head(f"/v2/team/app/blobs/{wrong}").status_code == 404


def test_unacknowledged_bytes_in_a_local_spool_are_cut_off(pair: tuple[Reg, Reg]) -> None:
    """A replica that died after writing a chunk locally but before storing it must not let
    those bytes into the blob."""
    a, b = pair
    loc = _start(a)
    assert _patch(a, loc, b"A" * 100, 0).status_code == 202
    upload_id = loc.rstrip("/").rsplit("/", 1)[1]
    with open(Path(a.driver.spool_dir) / upload_id / "data", "ab") as f:
        f.write(b"GARBAGE")  # never acknowledged
    assert _patch(b, loc, b"B" * 50, 100).status_code == 202
    assert _patch(a, loc, b"C" * 25, 150).status_code == 202
    data = b"A" * 100 + b"B" * 50 + b"C" * 25
    resp = a.put(f"{loc}?digest=sha256:{hashlib.sha256(data).hexdigest()}")
    assert resp.status_code == 201, resp.text


def test_a_session_of_another_repository_is_unknown(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    loc = _start(a, "team/app")
    upload_id = loc.rstrip("/").rsplit("/", 1)[1]
    resp = b.get(f"/v2/team/other/blobs/uploads/{upload_id}")
    assert resp.status_code == 404 and error_code(resp) == "BLOB_UPLOAD_UNKNOWN"
    resp = b.get(f"/v2/team/app/blobs/uploads/{uuid.uuid4()}")
    assert resp.status_code == 404 and error_code(resp) == "BLOB_UPLOAD_UNKNOWN"


def test_single_request_upload_leaves_no_shared_record(pair: tuple[Reg, Reg]) -> None:
    a, _ = pair
    a.push_blob("team/app", b"one request")
    assert _sessions(a) == []


def test_gc_removes_abandoned_shared_sessions(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    loc = _start(a)
    assert _patch(b, loc, b"abandoned", 0).status_code == 202
    assert len(_sessions(a)) == 1
    kept = gc.collect(a.driver, upload_max_age=3600)
    assert kept.uploads_removed == [] and len(_sessions(a)) == 1
    dry = gc.collect(a.driver, upload_max_age=-1, dry_run=True)
    assert len(dry.uploads_removed) >= 1 and len(_sessions(a)) == 1
    report = gc.collect(a.driver, upload_max_age=-1)
    assert loc.rstrip("/").rsplit("/", 1)[1] in report.uploads_removed
    assert _sessions(a) == []
    assert _patch(a, loc, b"more", 9).status_code == 404


def test_describe_counts_only_the_contiguous_run_of_chunks(pair: tuple[Reg, Reg]) -> None:
    a, _ = pair
    shared = SharedSessions(a.driver)
    sid = str(uuid.uuid4())
    shared.create(sid, "r")
    a.driver.write(f"uploads/{sid}/chunks/{0:020d}", b"abcd")
    a.driver.write(f"uploads/{sid}/chunks/{10:020d}", b"gap")  # not after 4 bytes: ignored
    session = shared.describe(sid)
    assert session is not None and session.repo == "r" and session.size == 4
    assert shared.describe(str(uuid.uuid4())) is None
    shared.remove(sid)
    assert shared.describe(sid) is None


def test_interrupted_chunk_is_not_stored_and_the_other_replica_goes_on(pair: tuple[Reg, Reg]) -> None:
    from starlette.requests import ClientDisconnect

    a, b = pair
    loc = _start(a)
    assert _patch(a, loc, b"1" * 4096, 0).status_code == 202
    upload_id = loc.rstrip("/").rsplit("/", 1)[1]
    uploads = a.c.app.state.registry.uploads

    async def broken() -> Any:
        yield b"2" * 1000
        raise ClientDisconnect()

    async def scenario() -> None:
        up = await uploads.get("team/app", upload_id)
        with pytest.raises(ClientDisconnect):
            await uploads.append(up, broken())

    asyncio.run(scenario())
    status = b.get(loc)
    assert status.headers["range"] == "0-4095"  # nothing of the broken chunk was stored
    assert _patch(b, loc, b"3" * 10, 4096).status_code == 202
    data = b"1" * 4096 + b"3" * 10
    resp = a.put(f"{loc}?digest=sha256:{hashlib.sha256(data).hexdigest()}")
    assert resp.status_code == 201, resp.text


def test_concurrent_patches_at_one_offset_on_two_replicas_one_wins(pair: tuple[Reg, Reg]) -> None:
    """Both replicas accepted the same offset before either stored its chunk (the race a load
    balancer allows): the first stored chunk stays, the second PATCH gets 416 and its bytes are
    dropped from that replica's spool, and the upload completes with the winner's bytes."""
    from trustbox.registry.errors import RangeInvalid

    a, b = pair
    loc = _start(a)
    assert _patch(a, loc, b"0" * 1000, 0).status_code == 202
    upload_id = loc.rstrip("/").rsplit("/", 1)[1]
    ua, ub = a.c.app.state.registry.uploads, b.c.app.state.registry.uploads

    async def body(data: bytes) -> Any:
        yield data

    async def scenario() -> None:
        up_a = await ua.get("team/app", upload_id)
        up_b = await ub.get("team/app", upload_id)
        assert up_a.size == up_b.size == 1000
        await ua.append(up_a, body(b"A" * 500))
        with pytest.raises(RangeInvalid, match="another request stored a chunk at offset 1000"):
            await ub.append(up_b, body(b"B" * 700))
        assert (up_b.directory / "data").stat().st_size == 1000  # the loser's bytes are cut off

    asyncio.run(scenario())
    status = b.get(loc)
    assert status.headers["range"] == "0-1499"
    data = b"0" * 1000 + b"A" * 500
    resp = b.put(f"{loc}?digest=sha256:{hashlib.sha256(data).hexdigest()}")
    assert resp.status_code == 201, resp.text
    assert a.get(f"/v2/team/app/blobs/sha256:{hashlib.sha256(data).hexdigest()}").content == data


def test_put_file_if_absent_never_replaces(pair: tuple[Reg, Reg], tmp_path: Path) -> None:
    from trustbox.registry.storage import FilesystemDriver

    drivers = [pair[0].driver, FilesystemDriver(tmp_path / "fs")]
    for i, driver in enumerate(drivers):
        first, second = tmp_path / f"first-{i}", tmp_path / f"second-{i}"
        first.write_bytes(b"first")
        second.write_bytes(b"second")
        assert driver.put_file_if_absent("x/chunk", first) is True
        assert driver.put_file_if_absent("x/chunk", second) is False
        assert driver.read("x/chunk") == b"first"
        assert not first.exists() and not second.exists()  # both staged copies consumed


def test_store_without_conditional_writes_falls_back(pair: tuple[Reg, Reg], tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    driver: Any = pair[0].driver
    calls = []
    real_put = driver.client.put_object

    def no_conditions(**kwargs: Any) -> Any:
        if "IfNoneMatch" not in kwargs:
            return real_put(**kwargs)
        calls.append(kwargs)
        raise ClientError({"Error": {"Code": "NotImplemented", "Message": "If-None-Match"},
                           "ResponseMetadata": {"HTTPStatusCode": 501}}, "PutObject")

    driver.client.put_object = no_conditions
    staged = tmp_path / "staged"
    staged.write_bytes(b"data")
    assert driver.put_file_if_absent("y/chunk", staged) is True
    assert driver.read("y/chunk") == b"data" and len(calls) == 1
    staged.write_bytes(b"more")
    assert driver.put_file_if_absent("y/other", staged) is True  # no second conditional attempt
    assert len(calls) == 1


def test_two_server_processes_share_sessions(moto_endpoint: str, tmp_path: Path) -> None:
    """Real `trustbox serve registry` processes on one bucket: chunks sent to either."""
    import httpx

    from tests.registry.servers import registry_process

    bucket = make_bucket(moto_endpoint)
    args = ["--storage", f"s3://{bucket}/r", "--s3-endpoint-url", moto_endpoint]
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    data = os.urandom(6 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with registry_process(args, {**env, "TRUSTBOX_SPOOL_DIR": str(tmp_path / "s1")}) as one, \
            registry_process(args, {**env, "TRUSTBOX_SPOOL_DIR": str(tmp_path / "s2")}) as two:
        urls = [f"http://{one}", f"http://{two}"]
        with httpx.Client(timeout=30) as http:
            resp = http.post(f"{urls[0]}/v2/lb/app/blobs/uploads/")
            assert resp.status_code == 202
            loc = "/" + _path(resp.headers["location"])
            step = 1 << 20
            for i, off in enumerate(range(0, len(data), step)):
                piece = data[off:off + step]
                resp = http.patch(urls[(i + 1) % 2] + loc, content=piece, headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{off}-{off + len(piece) - 1}"})
                assert resp.status_code == 202, resp.text
                loc = "/" + _path(resp.headers["location"])
            resp = http.put(f"{urls[1]}{loc}?digest={digest}")
            assert resp.status_code == 201, resp.text
            got = http.get(f"{urls[0]}/v2/lb/app/blobs/{digest}")
            assert got.status_code == 200 and got.content == data


# --- a stored chunk that is the whole blob is adopted, not uploaded again ------------------------


def _count_blob_uploads(r: Reg) -> list[str]:
    """Record the keys the replica uploads whole files to (chunk stores are not counted)."""
    driver: Any = r.driver
    seen: list[str] = []
    real = driver.put_file

    def put_file(key: str, path: Path) -> None:
        seen.append(key)
        real(key, path)

    driver.put_file = put_file
    return seen


def _s3_sha256(r: Reg, key: str) -> str | None:
    driver: Any = r.driver
    head = driver.client.head_object(Bucket=driver.bucket, Key=driver._key(key), ChecksumMode="ENABLED")
    return head.get("ChecksumSHA256")


def _one_patch(a: Reg, b: Reg, data: bytes) -> tuple[str, str]:
    """docker's way: POST on ``a``, one PATCH with everything on ``b``; the PUT's path and the
    key of the one stored chunk."""
    loc = _start(a)
    resp = b.patch(loc, content=data, headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 202, resp.text
    [chunk] = [k for k, _ in b.driver.walk("uploads") if "/chunks/" in k]
    return "/" + _path(resp.headers["location"]), chunk


def test_docker_push_of_one_patch_adopts_the_chunk(pair: tuple[Reg, Reg]) -> None:
    """docker: POST, one PATCH with the whole layer, PUT without a body (here on two replicas)."""
    import base64

    a, b = pair
    data = os.urandom((6 << 20) + 7)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    uploads = _count_blob_uploads(a)
    put_path, chunk = _one_patch(a, b, data)
    # the first chunk was stored with its SHA-256 (the store checked it on receipt)
    assert _s3_sha256(b, chunk) == base64.b64encode(hashlib.sha256(data).digest()).decode()
    resp = a.put(f"{put_path}?digest={digest}")
    assert resp.status_code == 201, resp.text
    assert uploads == []  # nothing sent again: copied inside the bucket
    for r in (a, b):
        assert r.get(f"/v2/team/app/blobs/{digest}").content == data
    assert _sessions(a) == []
    from trustbox.registry.names import parse_digest

    assert a.app.state.registry.blobs.verified_identity(parse_digest(digest)) is not None


def test_a_chunk_changed_in_the_bucket_is_not_adopted(pair: tuple[Reg, Reg]) -> None:
    """Someone with write access to the bucket replaces the stored chunk with as many other
    bytes, even claiming the right checksum (S3 itself refuses that PUT; moto stores the claim,
    and the copy's checksum gives it away): the blob is uploaded from the replica's verified
    copy instead."""
    import base64

    a, b = pair
    data = os.urandom(5 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    uploads = _count_blob_uploads(b)
    put_path, chunk = _one_patch(a, b, data)
    driver: Any = b.driver
    claimed = base64.b64encode(hashlib.sha256(data).digest()).decode()
    for tampered in ({}, {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": claimed}):
        try:
            driver.client.put_object(Bucket=driver.bucket, Key=driver._key(chunk), Body=os.urandom(len(data)), **tampered)
        except Exception:  # a store that checks the claimed checksum refuses the forgery outright
            continue
        assert driver.adopt(chunk, "blobs/probe", hashlib.sha256(data).hexdigest(), len(data)) is False
    resp = b.put(f"{put_path}?digest={digest}")  # b holds the verified copy
    assert resp.status_code == 201, resp.text
    assert len(uploads) == 1  # uploaded, not adopted
    assert a.get(f"/v2/team/app/blobs/{digest}").content == data


def test_only_a_single_whole_chunk_is_adopted(pair: tuple[Reg, Reg]) -> None:
    a, b = pair
    data = os.urandom(6 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    uploads = _count_blob_uploads(a)
    # two chunks
    loc = _start(a)
    resp = _patch(b, loc, data[: 5 << 20], 0)
    resp = _patch(a, "/" + _path(resp.headers["location"]), data[5 << 20:], 5 << 20)
    assert a.put(f"/{_path(resp.headers['location'])}?digest={digest}").status_code == 201
    assert len(uploads) == 1
    # one chunk, the rest in the PUT's body (other bytes: a stored, verified blob is kept as it is)
    data = os.urandom(6 << 20)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    loc = _start(a, "team/other")
    resp = b.patch(loc, content=data[:-10], headers={"Content-Type": "application/octet-stream"})
    resp = a.put(f"/{_path(resp.headers['location'])}?digest={digest}", content=data[-10:],
                 headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    assert len(uploads) == 2
    assert a.get(f"/v2/team/other/blobs/{digest}").content == data


def test_adopt_needs_the_checksum_and_the_size(pair: tuple[Reg, Reg], tmp_path: Path) -> None:
    from trustbox.registry.storage import FilesystemDriver

    driver: Any = pair[0].driver
    data = b"payload" * 1000
    hex_ = hashlib.sha256(data).hexdigest()
    staged = tmp_path / "staged"
    staged.write_bytes(data)
    assert driver.put_file_if_absent("z/with", staged, hashlib.sha256(data).digest()) is True
    staged.write_bytes(data)
    assert driver.put_file_if_absent("z/without", staged) is True
    assert driver.adopt("z/with", "z/wrong-size", hex_, len(data) + 1) is False
    assert driver.adopt("z/with", "z/wrong-digest", "00" * 32, len(data)) is False
    assert driver.adopt("z/without", "z/no-checksum", hex_, len(data)) is False
    assert driver.adopt("z/missing", "z/gone", hex_, len(data)) is False
    for never in ("z/wrong-size", "z/wrong-digest", "z/no-checksum", "z/gone"):
        assert driver.stat(never) is None
    assert driver.adopt("z/with", "z/copy", hex_, len(data)) is True
    assert driver.read("z/copy") == data
    fs = FilesystemDriver(tmp_path / "fs")
    staged.write_bytes(data)
    assert fs.put_file_if_absent("z/with", staged, hashlib.sha256(data).digest()) is True
    assert fs.adopt("z/with", "z/copy", hex_, len(data)) is False


def test_store_refusing_checksums_stores_chunks_without_them(pair: tuple[Reg, Reg], tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    driver: Any = pair[0].driver
    refused = []
    real_put = driver.client.put_object

    def no_checksums(**kwargs: Any) -> Any:
        if "ChecksumSHA256" in kwargs:
            refused.append(kwargs["Key"])
            raise ClientError({"Error": {"Code": "InvalidArgument", "Message": "x-amz-checksum-sha256"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutObject")
        return real_put(**kwargs)

    driver.client.put_object = no_checksums
    data = b"chunk" * 100
    for name in ("first", "second"):
        staged = tmp_path / name
        staged.write_bytes(data)
        assert driver.put_file_if_absent(f"c/{name}", staged, hashlib.sha256(data).digest()) is True
        assert driver.read(f"c/{name}") == data
    assert len(refused) == 1  # asked once, then no more
    assert driver.adopt("c/first", "c/copy", hashlib.sha256(data).hexdigest(), len(data)) is False
    # a digest mismatch is an error, not a reason to drop checksums
    driver._checksums = True

    def bad_digest(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "BadDigest", "Message": "mismatch"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutObject")

    driver.client.put_object = bad_digest
    staged = tmp_path / "third"
    staged.write_bytes(data)
    with pytest.raises(ClientError):
        driver.put_file_if_absent("c/third", staged, hashlib.sha256(data).digest())
    assert driver._checksums is True and not staged.exists()
