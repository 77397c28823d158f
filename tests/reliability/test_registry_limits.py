"""Registry limits: manifest size, JSON nesting depth, open upload sessions, stalled bodies,
header sizes. Every refusal is a 4xx with the spec's JSON error body, never a 5xx."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

warnings.filterwarnings("ignore", message=".*httpx.*")

from starlette.testclient import TestClient  # noqa: E402

from tests.helpers.net import free_port  # noqa: E402
from trustbox.errors import ConfigError  # noqa: E402
from trustbox.registry.app import create_app  # noqa: E402
from trustbox.registry.config import RegistryConfig, load_config  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def client(tmp_path: Path, **overrides: Any) -> TestClient:
    return TestClient(create_app(RegistryConfig(storage=str(tmp_path / "store"), **overrides)))


def err(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body["errors"], list) and body["errors"]
    entry: dict[str, Any] = body["errors"][0]
    assert isinstance(entry["code"], str) and isinstance(entry["message"], str)
    return entry


def push_blob(c: TestClient, repo: str, data: bytes) -> str:
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    r = c.post(f"/v2/{repo}/blobs/uploads/?digest={d}", content=data)
    assert r.status_code == 201, r.text
    return d


def manifest_with_annotation_value(c: TestClient, repo: str) -> dict[str, Any]:
    cfg = b"{}"
    d = push_blob(c, repo, cfg)
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 2},
            "layers": []}


@pytest.mark.parametrize("depth", [65, 999, 1000, 5000, 100_000])
def test_deeply_nested_manifest_is_400(tmp_path: Path, depth: int) -> None:
    """Used to be 503 UNKNOWN "internal error" (RecursionError in json.loads) from ~1000 levels."""
    c = client(tmp_path)
    doc = manifest_with_annotation_value(c, "a/b")
    text = json.dumps(doc)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    r = c.put("/v2/a/b/manifests/t", content=text.encode(), headers={"content-type": OCI_MANIFEST})
    assert r.status_code == 400, r.text
    assert err(r)["code"] == "MANIFEST_INVALID"


def test_nesting_limit_is_configurable(tmp_path: Path) -> None:
    c = client(tmp_path, max_json_depth=3)
    doc = manifest_with_annotation_value(c, "a/b")
    r = c.put("/v2/a/b/manifests/t", content=json.dumps(doc).encode(), headers={"content-type": OCI_MANIFEST})
    assert r.status_code == 201, r.text  # depth 2: manifest object + config object / layers list
    doc["x"] = [[[]]]
    r = c.put("/v2/a/b/manifests/t", content=json.dumps(doc).encode(), headers={"content-type": OCI_MANIFEST})
    assert r.status_code == 400 and err(r)["code"] == "MANIFEST_INVALID"
    assert r.json()["errors"][0]["detail"] == {"limit": 3}


def test_manifest_size_limit(tmp_path: Path) -> None:
    c = client(tmp_path, max_manifest_size=1024)
    doc = manifest_with_annotation_value(c, "a/b")
    doc["annotations"] = {"pad": "x" * 2000}
    r = c.put("/v2/a/b/manifests/t", content=json.dumps(doc).encode(), headers={"content-type": OCI_MANIFEST})
    assert r.status_code == 413 and err(r)["code"] == "SIZE_INVALID"

    def chunks() -> Any:  # no Content-Length: the limit applies while reading
        yield json.dumps(doc).encode()

    r = c.put("/v2/a/b/manifests/t", content=chunks(), headers={"content-type": OCI_MANIFEST})
    assert r.status_code == 413 and err(r)["code"] == "SIZE_INVALID"


def test_open_upload_sessions_are_limited(tmp_path: Path) -> None:
    c = client(tmp_path, max_upload_sessions=3)
    locations = []
    for _ in range(3):
        r = c.post("/v2/a/b/blobs/uploads/")
        assert r.status_code == 202
        locations.append(r.headers["location"])
    r = c.post("/v2/a/b/blobs/uploads/")
    assert r.status_code == 429, r.text
    assert err(r)["code"] == "TOOMANYREQUESTS"
    assert r.headers["retry-after"] == "10"
    # a monolithic upload needs a session too
    r = c.post("/v2/a/b/blobs/uploads/?digest=sha256:" + hashlib.sha256(b"x").hexdigest(), content=b"x")
    assert r.status_code == 429
    # finishing or cancelling one frees a slot
    assert c.delete(locations[0]).status_code == 204
    data = b"hello"
    r = c.put(locations[1] + "?digest=sha256:" + hashlib.sha256(data).hexdigest(), content=data)
    assert r.status_code == 201
    assert c.post("/v2/a/b/blobs/uploads/").status_code == 202
    assert c.post("/v2/a/b/blobs/uploads/").status_code == 202
    assert c.post("/v2/a/b/blobs/uploads/").status_code == 429


def test_limits_are_validated_and_read_from_environment(tmp_path: Path) -> None:
    cfg = load_config(None, {}, {"TRUSTBOX_MAX_UPLOAD_SESSIONS": "7", "TRUSTBOX_BODY_TIMEOUT": "5",
                                 "TRUSTBOX_MAX_JSON_DEPTH": "9", "TRUSTBOX_STORAGE": str(tmp_path)})
    assert (cfg.max_upload_sessions, cfg.body_timeout, cfg.max_json_depth) == (7, 5, 9)
    with pytest.raises(ConfigError):
        load_config(None, {"body_timeout": 0}, {})


def _stalling_call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
                   first: bytes) -> tuple[int, bytes, float]:
    """Send ``first`` then stall forever; return (status, body, seconds until the answer)."""
    sent: list[dict[str, Any]] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": first, "more_body": True}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "http_version": "1.1", "scheme": "http", "server": ("t", 80),
             "client": ("c", 1), "root_path": ""}
    t0 = time.monotonic()
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    elapsed = time.monotonic() - t0
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, elapsed


def test_stalled_upload_body_times_out_and_session_survives(tmp_path: Path) -> None:
    app = create_app(RegistryConfig(storage=str(tmp_path / "store"), body_timeout=1))
    c = TestClient(app)
    loc = c.post("/v2/a/b/blobs/uploads/").headers["location"]
    status, body, _ = _stalling_call(app, "PATCH", loc, [(b"content-type", b"application/octet-stream")],
                                     b"partial")
    assert status == 408
    assert json.loads(body)["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    # the stalled chunk was cut off: the session is still at 0 and can be completed
    r = c.get(loc)
    assert r.status_code == 204 and r.headers["range"] == "0-0"
    data = b"complete"
    r = c.put(loc + "?digest=sha256:" + hashlib.sha256(data).hexdigest(), content=data)
    assert r.status_code == 201


def test_stalled_manifest_body_times_out(tmp_path: Path) -> None:
    app = create_app(RegistryConfig(storage=str(tmp_path / "store"), body_timeout=1))
    status, body, _ = _stalling_call(app, "PUT", "/v2/a/b/manifests/t",
                                     [(b"content-type", OCI_MANIFEST.encode())], b'{"schemaVersion":')
    assert status == 408
    assert json.loads(body)["errors"][0]["code"] == "MANIFEST_INVALID"


# -- the real process: header limits of the HTTP server ---------------------------------------


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = free_port()
    store = tmp_path_factory.mktemp("reg-limits")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustbox", "serve", "registry", "--listen", f"127.0.0.1:{port}",
         "--storage", str(store)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v2/", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)
    shutil.rmtree(store, ignore_errors=True)


def test_huge_headers_are_refused_without_5xx(registry_url: str) -> None:
    """A 1 MiB header never reaches the app: the server refuses it (or closes the connection)."""
    try:
        r = httpx.get(registry_url + "/v2/", headers={"x-big": "a" * (1 << 20)}, timeout=10)
    except httpx.HTTPError:
        return  # connection closed by the server: acceptable
    assert 400 <= r.status_code < 500, r.status_code
    # and the server still answers
    assert httpx.get(registry_url + "/v2/", timeout=5).status_code == 200


def test_many_headers_are_refused_without_5xx(registry_url: str) -> None:
    headers = [(f"x-h{i}", "v" * 100) for i in range(5000)]
    try:
        r = httpx.get(registry_url + "/v2/", headers=headers, timeout=10)
    except httpx.HTTPError:
        return
    assert r.status_code < 500, r.status_code
    assert httpx.get(registry_url + "/v2/", timeout=5).status_code == 200


@pytest.mark.parametrize("method,path", [("TRACE", "/v2/"), ("FOO", "/v2/a/b/blobs/uploads/"),
                                         ("OPTIONS", "/v2/a/manifests/x"), ("CONNECT", "/v2/_catalog")])
def test_unknown_methods_get_the_json_405(tmp_path: Path, method: str, path: str) -> None:
    """Used to be Starlette's plain-text ``405 Method Not Allowed`` (found by schemathesis)."""
    r = client(tmp_path).request(method, path)
    assert r.status_code == 405
    assert err(r)["code"] == "UNSUPPORTED"
    assert r.headers["allow"]


@pytest.mark.parametrize("method,path", [("GET", "/v2/a%0Ab/tags/list"), ("GET", "/v2/a/b/manifests/x%0A"),
                                         ("DELETE", "/v2/%0A/blobs/uploads/x"), ("GET", "/x%0Ay")])
def test_paths_no_route_matches_get_the_json_404(tmp_path: Path, method: str, path: str) -> None:
    """A percent-encoded newline defeated every route pattern and got Starlette's plain-text 404
    (found by schemathesis)."""
    r = client(tmp_path).request(method, path)
    assert r.status_code in (400, 404)
    assert err(r)["code"] in ("NOT_FOUND", "NAME_INVALID", "TAG_INVALID")


def test_trailing_newline_is_no_valid_name_tag_or_digest(tmp_path: Path) -> None:
    """``PUT /v2/a/b/manifests/v1%0A`` was 201 and stored the tag "v1" (request.url.path drops a
    trailing newline, and the name/tag/digest patterns used ``$``, which matches before one)."""
    c = client(tmp_path)
    doc = manifest_with_annotation_value(c, "a/b")
    body = json.dumps(doc).encode()
    r = c.put("/v2/a/b/manifests/v1%0A", content=body, headers={"content-type": OCI_MANIFEST})
    assert r.status_code in (400, 404) and err(r)["code"] in ("TAG_INVALID", "NOT_FOUND")
    r = c.put("/v2/a/b%0A/manifests/v1", content=body, headers={"content-type": OCI_MANIFEST})
    assert r.status_code in (400, 404) and err(r)["code"] in ("NAME_INVALID", "NOT_FOUND")
    d = "sha256:" + hashlib.sha256(b"x").hexdigest()
    r = c.post(f"/v2/a/b/blobs/uploads/?digest={d}%0A", content=b"x")
    assert r.status_code == 400 and err(r)["code"] == "DIGEST_INVALID"
    assert c.get("/v2/a/b/tags/list").json()["tags"] == []


def test_in_memory_caches_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verified-blob marks grew by one entry per blob ever seen, and the manifest cache could
    hold 4096 x 256 KiB = 1 GiB: both are bounded now (the soak showed steady registry RSS growth)."""
    from trustbox.registry import blobs as blobs_mod
    from trustbox.registry import manifests as manifests_mod

    monkeypatch.setattr(blobs_mod, "VERIFIED_ENTRIES", 5)
    monkeypatch.setattr(manifests_mod, "CACHE_MAX_BYTES", 3000)
    app = create_app(RegistryConfig(storage=str(tmp_path / "store")))
    c = TestClient(app)
    reg = app.state.registry
    digests = [push_blob(c, "a/b", f"blob {i}".encode()) for i in range(12)]
    assert len(reg.blobs._verified) == 5
    for d in digests:  # forgotten blobs are hashed again on read, and still served
        r = c.get(f"/v2/a/b/blobs/{d}")
        assert r.status_code == 200 and "sha256:" + hashlib.sha256(r.content).hexdigest() == d
    base = manifest_with_annotation_value(c, "a/b")
    for i in range(10):
        doc = {**base, "annotations": {"pad": f"{i}" * 900}}
        r = c.put(f"/v2/a/b/manifests/t{i}", content=json.dumps(doc).encode(),
                  headers={"content-type": OCI_MANIFEST})
        assert r.status_code == 201
    for i in range(10):
        assert c.get(f"/v2/a/b/manifests/t{i}").status_code == 200
    assert reg.manifests._cache_bytes <= 3000
    assert reg.manifests._cache_bytes == sum(len(b) for b in reg.manifests._cache.values())
