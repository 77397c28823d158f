"""Blob endpoints: uploads of every kind, reads, ranges, mounts, deletes, errors."""

from __future__ import annotations

import hashlib
import os

import pytest

from .conftest import Reg, error_code


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def test_ping(reg: Reg) -> None:
    r = reg.get("/v2/")
    assert r.status_code == 200
    assert r.json() == {}
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert reg.head("/v2/").status_code == 200


@pytest.mark.parametrize("alg", ["sha256", "sha512"])
def test_monolithic_post_then_put(reg: Reg, alg: str) -> None:
    data = os.urandom(5000)
    r = reg.post("/v2/lib/app/blobs/uploads/")
    assert r.status_code == 202
    loc = r.headers["Location"]
    assert r.headers["Docker-Upload-UUID"] in loc
    assert r.headers["Range"] == "0-0"
    r = reg.put(f"{loc}?digest={sha(data, alg)}", content=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(data, alg)
    assert r.headers["Location"] == f"/v2/lib/app/blobs/{sha(data, alg)}"
    g = reg.get(r.headers["Location"])
    assert g.status_code == 200 and g.content == data
    assert g.headers["Docker-Content-Digest"] == sha(data, alg)
    assert g.headers["Content-Length"] == str(len(data))
    h = reg.head(r.headers["Location"])
    assert h.status_code == 200 and h.headers["Content-Length"] == str(len(data)) and h.content == b""


@pytest.mark.parametrize("alg", ["sha256", "sha512"])
def test_post_with_digest_single_request(reg: Reg, alg: str) -> None:
    data = os.urandom(777)
    r = reg.post(f"/v2/a/blobs/uploads/?digest={sha(data, alg)}", content=data)
    assert r.status_code == 201
    assert reg.get(f"/v2/a/blobs/{sha(data, alg)}").content == data


def test_empty_blob(reg: Reg) -> None:
    d = reg.push_blob("a", b"")
    r = reg.get(f"/v2/a/blobs/{d}")
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize("alg", ["sha256", "sha512"])
def test_chunked_upload(reg: Reg, alg: str) -> None:
    data = os.urandom(10_000)
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    for start in range(0, 9000, 3000):
        chunk = data[start:start + 3000]
        r = reg.patch(loc, content=chunk, headers={"Content-Range": f"{start}-{start + len(chunk) - 1}",
                                                   "Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        assert r.headers["Range"] == f"0-{start + len(chunk) - 1}"
        loc = r.headers["Location"]
    st = reg.get(loc)
    assert st.status_code == 204
    assert st.headers["Range"] == "0-8999"
    assert st.headers["Docker-Upload-UUID"] in loc
    r = reg.put(f"{loc}?digest={sha(data, alg)}", content=data[9000:], headers={"Content-Range": "9000-9999"})
    assert r.status_code == 201, r.text
    assert reg.get(f"/v2/a/blobs/{sha(data, alg)}").content == data


def test_stream_patch_without_content_range(reg: Reg) -> None:
    data = os.urandom(4000)
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    loc = reg.patch(loc, content=data[:1500]).headers["Location"]
    r = reg.patch(loc, content=data[1500:])
    assert r.headers["Range"] == "0-3999"
    assert reg.put(f"{r.headers['Location']}?digest={sha(data)}").status_code == 201


def test_out_of_order_chunk_is_416_and_upload_survives(reg: Reg) -> None:
    data = os.urandom(3000)
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    r = reg.patch(loc, content=data[1000:2000], headers={"Content-Range": "1000-1999"})
    assert r.status_code == 416
    assert error_code(r) == "RANGE_INVALID"
    assert r.headers["Range"] == "0-0"
    assert reg.patch(loc, content=data[:1000], headers={"Content-Range": "0-999"}).status_code == 202
    # replaying the same chunk is out of order too, on PATCH and on the final PUT
    r = reg.patch(loc, content=data[:1000], headers={"Content-Range": "0-999"})
    assert r.status_code == 416 and r.headers["Range"] == "0-999"
    r = reg.put(f"{loc}?digest={sha(data)}", content=data[2000:], headers={"Content-Range": "2000-2999"})
    assert r.status_code == 416
    assert reg.get(loc).headers["Range"] == "0-999"
    assert reg.patch(loc, content=data[1000:2000], headers={"Content-Range": "1000-1999"}).status_code == 202
    r = reg.put(f"{loc}?digest={sha(data)}", content=data[2000:], headers={"Content-Range": "2000-2999"})
    assert r.status_code == 201


def test_malformed_content_range(reg: Reg) -> None:
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    r = reg.patch(loc, content=b"abc", headers={"Content-Range": "bogus"})
    assert r.status_code == 416 and error_code(r) == "RANGE_INVALID"
    r = reg.patch(loc, content=b"abc", headers={"Content-Range": "0-9"})
    assert r.status_code == 400 and error_code(r) == "SIZE_INVALID"
    assert reg.get(loc).headers["Range"] == "0-0"  # the short chunk was cut off again


@pytest.mark.parametrize("kind", ["post-only", "put", "chunked"])
def test_bad_digest_refused_and_nothing_stored(reg: Reg, kind: str) -> None:
    data = os.urandom(2048)
    wrong = sha(data + b"oh no")
    if kind == "post-only":
        r = reg.post(f"/v2/a/blobs/uploads/?digest={wrong}", content=data)
    elif kind == "put":
        loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
        r = reg.put(f"{loc}?digest={wrong}", content=data)
    else:
        loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
        loc = reg.patch(loc, content=data, headers={"Content-Range": "0-2047"}).headers["Location"]
        r = reg.put(f"{loc}?digest={wrong}")
        assert reg.get(loc).status_code == 404  # the session is gone
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    assert reg.head(f"/v2/a/blobs/{wrong}").status_code == 404
    assert reg.head(f"/v2/a/blobs/{sha(data)}").status_code == 404


def test_put_without_or_with_invalid_digest(reg: Reg) -> None:
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    r = reg.put(loc, content=b"x")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    for bad in ("sha256:abc", "md5:" + "0" * 32, "nonsense", "sha256:" + "Z" * 64):
        loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
        r = reg.put(f"{loc}?digest={bad}", content=b"x")
        assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID", bad


def test_upload_unknown(reg: Reg) -> None:
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        r = reg.request(method, "/v2/a/blobs/uploads/9b2c1d4e-0000-4000-8000-000000000000?digest=sha256:" + "0" * 64)
        assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN", method
    r = reg.get("/v2/a/blobs/uploads/../../etc")
    assert r.status_code in (400, 404)
    r = reg.get("/v2/a/blobs/uploads/not-a-uuid")
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_upload_is_scoped_to_its_repository(reg: Reg) -> None:
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    other = loc.replace("/v2/a/", "/v2/b/")
    assert reg.get(other).status_code == 404


def test_cancel_upload(reg: Reg) -> None:
    data = os.urandom(100)
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    reg.patch(loc, content=data)
    r = reg.delete(loc)
    assert r.status_code == 204
    assert reg.get(loc).status_code == 404
    assert reg.put(f"{loc}?digest={sha(data)}").status_code == 404
    assert reg.get(f"/v2/a/blobs/{sha(data)}").status_code == 404


def test_blob_unknown_and_scoped_to_repository(reg: Reg) -> None:
    d = reg.push_blob("a", b"hello")
    r = reg.get(f"/v2/b/blobs/{d}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"
    r = reg.head(f"/v2/b/blobs/{d}")
    assert r.status_code == 404 and r.content == b""
    r = reg.get("/v2/a/blobs/sha256:" + "1" * 64)
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"
    r = reg.get("/v2/a/blobs/sha256:short")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_ranges(reg: Reg) -> None:
    data = os.urandom(2048)
    d = reg.push_blob("a", data)
    url = f"/v2/a/blobs/{d}"
    cases = {
        "bytes=500-1499": (500, 1500),
        "bytes=500-": (500, 2048),
        "bytes=-500": (1548, 2048),
        "bytes=2000-5000": (2000, 2048),
        "bytes=0-0": (0, 1),
    }
    for header, (a, b) in cases.items():
        r = reg.get(url, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == data[a:b], header
        assert r.headers["Content-Range"] == f"bytes {a}-{b - 1}/2048"
        assert r.headers["Content-Length"] == str(b - a)
    for header in ("bytes=500-0", "bytes=5000-10000", "bytes=-0"):
        r = reg.get(url, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["Content-Range"] == "bytes */2048"
        assert error_code(r) == "RANGE_INVALID"
    r = reg.get(url, headers={"Range": "items=1-2"})
    assert r.status_code == 200 and r.content == data


def test_mount_from_repository(reg: Reg) -> None:
    d = reg.push_blob("src/repo", b"shared layer")
    r = reg.post(f"/v2/dst/blobs/uploads/?mount={d}&from=src/repo")
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/dst/blobs/{d}"
    assert r.headers["Docker-Content-Digest"] == d
    assert reg.get(f"/v2/dst/blobs/{d}").content == b"shared layer"


def test_mount_missing_falls_back_to_upload(reg: Reg) -> None:
    d = reg.push_blob("src", b"only in src")
    missing = sha(b"nowhere")
    r = reg.post(f"/v2/dst/blobs/uploads/?mount={missing}&from=src")
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]
    # the blob exists, but not in the named source repository
    r = reg.post(f"/v2/dst/blobs/uploads/?mount={d}&from=other")
    assert r.status_code == 202
    assert reg.head(f"/v2/dst/blobs/{d}").status_code == 404


def test_mount_without_from_starts_an_upload(reg: Reg) -> None:
    """As registry:2: no ``from``, no mount (a blob stored for another repository is neither
    linked nor revealed); the upload that starts works as any other."""
    d = reg.push_blob("src", b"anywhere")
    for query in (f"mount={d}", f"mount={d}&from=", f"mount={sha(b'missing')}"):
        r = reg.post(f"/v2/dst/blobs/uploads/?{query}")
        assert r.status_code == 202, query
        assert "/v2/dst/blobs/uploads/" in r.headers["Location"]
        assert reg.head(f"/v2/dst/blobs/{d}").status_code == 404
    r = reg.put(f"{r.headers['Location']}?digest={d}", content=b"anywhere")
    assert r.status_code == 201
    assert reg.get(f"/v2/dst/blobs/{d}").content == b"anywhere"


def test_blob_delete(reg: Reg) -> None:
    d = reg.push_blob("a", b"bye")
    r = reg.delete(f"/v2/a/blobs/{d}")
    assert r.status_code == 202
    assert reg.head(f"/v2/a/blobs/{d}").status_code == 404
    r = reg.delete(f"/v2/a/blobs/{d}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_large_upload_streams_in_batches(reg: Reg) -> None:
    data = os.urandom(9 << 20)  # crosses the 4 MiB write batches
    d = sha(data)
    loc = reg.post("/v2/big/blobs/uploads/").headers["Location"]
    r = reg.put(f"{loc}?digest={d}", content=iter([data[i:i + 65536] for i in range(0, len(data), 65536)]))
    assert r.status_code == 201
    g = reg.get(f"/v2/big/blobs/{d}")
    assert hashlib.sha256(g.content).hexdigest() == d.split(":")[1]
