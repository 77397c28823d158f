"""registry:2's storage layout served by trustbox (keys, link contents, media types, untag,
detection), registry:2's HTTP behaviours a config.yml asks for (prefix, headers, absolute
URLs, catalog cap), and webhook notifications (events, a receiver that is down, bounds, ignores)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from starlette.testclient import TestClient

from tests.helpers.net import free_port
from tests.helpers.webhook import start_receiver
from trustbox.errors import ConfigError
from trustbox.oci.digest import parse_digest
from trustbox.registry.app import create_app
from trustbox.registry.config import RegistryConfig
from trustbox.registry.events import RequestRecord, blob_event, envelope_bytes
from trustbox.registry.gc import collect
from trustbox.registry.layout import Layout, choose_layout
from trustbox.registry.notify import Endpoint
from trustbox.registry.storage import FilesystemDriver

from .conftest import OCI_INDEX, OCI_MANIFEST, Reg, build_reg, make_bucket

R2 = "docker/registry/v2"


@pytest.fixture
def r2reg(tmp_path: Path) -> Reg:
    return build_reg({"storage": str(tmp_path / "store"), "layout": "registry2"})


def test_keys_and_link_contents_are_registry2s(r2reg: Reg, tmp_path: Path) -> None:
    d, body, doc = r2reg.image("lib/app", layers=1, tag="v1")
    root = tmp_path / "store" / R2
    hexd = d.split(":")[1]
    assert (root / "blobs/sha256" / hexd[:2] / hexd / "data").read_bytes() == body
    layer = doc["layers"][0]["digest"]
    assert (root / "repositories/lib/app/_layers/sha256" / layer.split(":")[1] / "link").read_text() == layer
    assert (root / "repositories/lib/app/_manifests/revisions/sha256" / hexd / "link").read_text() == d
    assert (root / "repositories/lib/app/_manifests/tags/v1/current/link").read_text() == d
    assert (root / "repositories/lib/app/_manifests/tags/v1/index/sha256" / hexd / "link").read_text() == d
    assert not (tmp_path / "store" / "blobs").exists() and not (tmp_path / "store" / "repositories").exists()


def test_media_type_comes_from_the_document(r2reg: Reg) -> None:
    cfg = r2reg.push_blob("m", b"{}")
    image = {"schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                             "digest": cfg, "size": 2}, "layers": []}
    assert r2reg.push_manifest("m", "img", image, OCI_MANIFEST).status_code == 201
    r = r2reg.get("/v2/m/manifests/img")
    assert r.headers["content-type"] == OCI_MANIFEST
    d = r.headers["docker-content-digest"]
    index = {"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(r.content)}]}
    assert r2reg.push_manifest("m", "idx", index, OCI_INDEX).status_code == 201
    assert r2reg.get("/v2/m/manifests/idx").headers["content-type"] == OCI_INDEX


def test_untag_removes_the_tag_folder_and_delete_removes_tags(r2reg: Reg, tmp_path: Path) -> None:
    d, _body, _doc = r2reg.image("a", tag="one")
    assert r2reg.put("/v2/a/manifests/two", content=r2reg.get(f"/v2/a/manifests/{d}").content,
                     headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    tags = tmp_path / "store" / R2 / "repositories/a/_manifests/tags"
    assert r2reg.delete("/v2/a/manifests/one").status_code == 202
    assert not (tags / "one").exists()
    assert r2reg.get("/v2/a/tags/list").json()["tags"] == ["two"]
    assert r2reg.delete(f"/v2/a/manifests/{d}").status_code == 202
    assert not (tags / "two").exists()
    assert r2reg.get("/v2/a/manifests/two").status_code == 404


def test_layout_detection(tmp_path: Path) -> None:
    empty = FilesystemDriver(tmp_path / "empty")
    assert choose_layout(empty, "auto") is Layout.TRUSTBOX
    r2 = FilesystemDriver(tmp_path / "r2")
    r2.write(f"{R2}/repositories/x/_layers/sha256/{'0' * 64}/link", b"")
    assert choose_layout(r2, "auto") is Layout.REGISTRY2
    r2.write(f"blobs/sha256/00/{'0' * 64}", b"")
    with pytest.raises(ConfigError, match="both"):
        choose_layout(r2, "auto")
    assert choose_layout(r2, "trustbox") is Layout.TRUSTBOX
    # an existing registry:2 storage is served in its layout without being told
    reg = build_reg({"storage": str(tmp_path / "r2b")})
    assert reg.paths is Layout.TRUSTBOX
    build_reg({"storage": str(tmp_path / "r2b2"), "layout": "registry2"}).image("z", tag="t")
    assert build_reg({"storage": str(tmp_path / "r2b2")}).paths is Layout.REGISTRY2


def test_blob_digest_round_trips_in_both_layouts() -> None:
    d = parse_digest("sha256:" + "ab" * 32)
    for paths in (Layout.TRUSTBOX, Layout.REGISTRY2):
        assert paths.blob_digest(paths.blob_key(d)) == d
        assert paths.link_digest(paths.layer_link("r", d)) == d
        assert paths.link_digest(paths.revision_link("r", d)) == d
    assert Layout.REGISTRY2.blob_digest(f"{R2}/blobs/sha256/zz/{'ab' * 32}/data") is None


def test_prefix_headers_and_absolute_urls(tmp_path: Path) -> None:
    reg = build_reg({"storage": str(tmp_path / "s"), "layout": "registry2", "http_prefix": "/registry",
                     "relative_urls": False, "http_headers": {"X-Content-Type-Options": ["nosniff"]}})
    r = reg.get("/registry/v2/")
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    assert reg.get("/v2/").status_code == 404
    r = reg.post("/registry/v2/a/blobs/uploads/", headers={"Host": "reg.example:5000"})
    assert r.status_code == 202
    assert r.headers["location"].startswith("http://reg.example:5000/registry/v2/a/blobs/uploads/")
    r = reg.post("/registry/v2/a/blobs/uploads/",
                 headers={"Host": "inner:5000", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "outer.example"})
    assert r.headers["location"].startswith("https://outer.example/registry/v2/a/")
    hosted = build_reg({"storage": str(tmp_path / "h"), "http_host": "https://registry.example"})
    assert hosted.post("/v2/a/blobs/uploads/").headers["location"].startswith("https://registry.example/v2/a/")


def test_catalog_max_entries(tmp_path: Path) -> None:
    reg = build_reg({"storage": str(tmp_path / "s"), "catalog_max_entries": 2})
    for name in ("a", "b", "c"):
        reg.image(name, tag="t")
    r = reg.get("/v2/_catalog")
    assert r.json()["repositories"] == ["a", "b"] and "last=b" in r.headers["link"]
    assert reg.get("/v2/_catalog?n=3").status_code == 400


def _events_app(tmp_path: Path, receiver_url: str, **endpoint: Any) -> Reg:
    ep = {"name": "t", "url": receiver_url, "headers": {"X-Hook": ["1"]}, "timeout": 1.0, "threshold": 2,
          "backoff": 0.2, "ignored_media_types": [], "ignored_actions": [], **endpoint}
    return build_reg({"storage": str(tmp_path / "s"), "layout": "registry2", "notifications": [ep],
                      "relative_urls": False, "notify_include_references": True})


def test_events_for_push_pull_and_delete(tmp_path: Path) -> None:
    receiver, server = start_receiver()
    try:
        reg = _events_app(tmp_path, receiver.url)
        d, _body, doc = reg.image("ev", layers=1, tag="v1")
        reg.get("/v2/ev/manifests/v1")
        layer = doc["layers"][0]["digest"]
        reg.head(f"/v2/ev/blobs/{layer}")
        reg.delete(f"/v2/ev/manifests/{d}")
        events = receiver.wait_quiet(at_least=7, quiet=0.5)
    finally:
        server.shutdown()
    summary = [(e["action"], e["target"].get("mediaType"), e["target"].get("tag")) for e in events]
    assert summary == [
        ("push", "application/octet-stream", None), ("push", "application/octet-stream", None),
        ("push", OCI_MANIFEST, "v1"), ("pull", OCI_MANIFEST, "v1"), ("pull", "application/octet-stream", None),
        ("delete", None, None), ("delete", None, "v1"),
    ]
    push = events[2]
    assert list(push) == ["id", "timestamp", "action", "target", "request", "actor", "source"]
    assert push["target"]["url"] == f"http://testserver/v2/ev/manifests/{d}"
    assert [r["digest"] for r in push["target"]["references"]] == [doc["config"]["digest"], layer]
    assert push["request"]["method"] == "PUT" and push["actor"] == {}
    assert events[5]["target"] == {"digest": d, "repository": "ev"}


def test_events_survive_a_receiver_that_is_down_for_a_while(tmp_path: Path) -> None:
    port = free_port()
    reg = _events_app(tmp_path, f"http://127.0.0.1:{port}/events")
    d, _body, _doc = reg.image("down", layers=2, tag="v1")  # 4 pushes while nobody listens
    reg.get("/v2/down/manifests/v1")
    endpoint = reg.c.app.state.registry.notifier.endpoints[0]
    deadline = time.monotonic() + 10
    while endpoint.stats.failures < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert endpoint.stats.failures >= 3 and endpoint.pending() == 5
    receiver, server = start_receiver(port)
    try:
        events = receiver.wait_quiet(at_least=5, quiet=0.5)
    finally:
        server.shutdown()
    assert [e["action"] for e in events] == ["push", "push", "push", "push", "pull"]  # in order
    assert events[3]["target"]["digest"] == d and endpoint.pending() == 0


def test_receiver_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    receiver, server = start_receiver()
    receiver.failing = 500
    try:
        reg = _events_app(tmp_path, receiver.url)
        reg.push_blob("r", b"one")
        endpoint = reg.c.app.state.registry.notifier.endpoints[0]
        time.sleep(0.7)  # threshold 2: two quick tries, then one per 0.2 s backoff
        assert 3 <= endpoint.stats.failures <= 7
        receiver.failing = 0
        assert len(receiver.wait_quiet(at_least=1, quiet=0.3)) == 1
    finally:
        server.shutdown()


def test_queue_is_bounded_and_ignore_rules_apply() -> None:
    sent: list[bytes] = []
    gate: list[int] = [503]

    def post(url: str, body: bytes, headers: list[tuple[str, str]], timeout: float) -> int:
        if gate[0] == 200:
            sent.append(body)
        return gate[0]

    ep = Endpoint("q", "http://x/", {}, 1.0, 1, 0.05, frozenset({"application/x-ignored"}), frozenset({"pull"}), 3,
                  post=post)
    req = RequestRecord("i", "1.2.3.4", "h", "GET", "ua", None, "")
    for n in range(6):
        ep.write(blob_event("push", req, {}, "r", parse_digest("sha256:" + f"{n:02d}" * 32), 1))
    ep.write(blob_event("pull", req, {}, "r", parse_digest("sha256:" + "aa" * 32), 1))  # ignored action
    ignored = blob_event("push", req, {}, "r", parse_digest("sha256:" + "bb" * 32), 1)
    ignored["target"]["mediaType"] = "application/x-ignored"
    ep.write(ignored)
    assert ep.pending() <= 3 and ep.stats.dropped >= 3
    gate[0] = 200
    deadline = time.monotonic() + 5
    while ep.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    digests = [json.loads(b)["events"][0]["target"]["digest"] for b in sent]
    assert digests[-2:] == ["sha256:" + "04" * 32, "sha256:" + "05" * 32]
    assert all("aa" * 32 not in d and "bb" * 32 not in d for d in digests)
    ep.close()


def test_envelope_is_indented_like_go() -> None:
    req = RequestRecord("i", "a", "h", "GET", "ua<>", None, "")
    body = envelope_bytes([blob_event("pull", req, {}, "r", parse_digest("sha256:" + "aa" * 32), 5)])
    assert body.startswith(b'{\n   "events": [\n      {\n         "id": ')
    assert b"ua\\u003c\\u003e" in body and b'"actor": {}' in body


def test_gc_removes_registry2_uploads_left_in_flight(tmp_path: Path) -> None:
    reg = build_reg({"storage": str(tmp_path / "s"), "layout": "registry2"})
    d, _body, _doc = reg.image("g", tag="t")
    old = f"{R2}/repositories/g/_uploads/0b1d"
    fresh = f"{R2}/repositories/g/_uploads/f4e5"
    for prefix in (old, fresh):
        reg.driver.write(f"{prefix}/data", b"partial")
        reg.driver.write(f"{prefix}/startedat", b"2026-01-01T00:00:00Z")
    for name in ("data", "startedat"):
        os.utime(tmp_path / "s" / old / name, (1, 1))
    report = collect(reg.driver, min_age=0, upload_max_age=3600)
    assert "0b1d" in report.uploads_removed and "f4e5" not in report.uploads_removed
    assert not (tmp_path / "s" / old).exists() and (tmp_path / "s" / fresh / "data").exists()
    assert report.removed == [] and reg.get(f"/v2/g/manifests/{d}").status_code == 200


def test_detection_on_s3_without_a_prefix(moto_endpoint: str, tmp_path: Path) -> None:
    bucket = make_bucket(moto_endpoint)
    spec = {"storage": f"s3://{bucket}", "s3_endpoint_url": moto_endpoint, "spool_dir": str(tmp_path / "spool")}
    build_reg({**spec, "layout": "registry2"}).image("s", tag="t")
    reg = build_reg(spec)
    assert reg.paths is Layout.REGISTRY2
    assert sorted(reg.driver.list_dir("")) == ["docker"]
    assert reg.get("/v2/s/tags/list").json()["tags"] == ["t"]


def _foreign(reg: Reg, repo: str, url: str) -> int:
    cfg = reg.push_blob(repo, b"{}")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                       "digest": "sha256:" + "ab" * 32, "size": 10, "urls": [url]}]}
    return int(reg.push_manifest(repo, "t", doc).status_code)


def test_layer_urls_follow_registry2_validation(tmp_path: Path) -> None:
    assert _foreign(build_reg({"storage": str(tmp_path / "a")}), "f", "https://x.example/l") == 201
    strict = build_reg({"storage": str(tmp_path / "b"), "manifest_urls_checked": True})
    assert _foreign(strict, "f", "https://x.example/l") == 400  # registry:2 allows none by default
    rules = build_reg({"storage": str(tmp_path / "c"), "manifest_urls_checked": True,
                       "manifest_urls_allow": [r"^https://mirror\.example/"], "manifest_urls_deny": ["secret"]})
    assert _foreign(rules, "f", "https://mirror.example/l") == 201
    assert _foreign(rules, "g", "https://mirror.example/secret") == 400
    assert _foreign(rules, "h", "http://other.example/l") == 400
    assert _foreign(rules, "i", "https://mirror.example/l#frag") == 400


def test_event_actor_is_the_authenticated_user(tmp_path: Path) -> None:
    receiver, server = start_receiver()
    try:
        htpasswd = tmp_path / "htpasswd"
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"alice:{hashed}\n")
        ep = {"name": "t", "url": receiver.url, "headers": {}, "timeout": 1.0, "threshold": 2, "backoff": 0.2,
              "ignored_media_types": [], "ignored_actions": []}
        reg = build_reg({"storage": str(tmp_path / "s"), "notifications": [ep], "htpasswd": str(htpasswd)})
        auth = {"Authorization": "Basic " + base64.b64encode(b"alice:pw").decode(),
                "X-Forwarded-For": "203.0.113.9, 10.0.0.1", "User-Agent": "probe/1"}
        data = b"actor"
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        assert reg.post(f"/v2/a/blobs/uploads/?digest={d}", content=data, headers=auth).status_code == 201
        (event,) = receiver.wait_quiet(at_least=1, quiet=0.3)
    finally:
        server.shutdown()
    assert event["actor"] == {"name": "alice"}
    assert event["request"]["addr"] == "203.0.113.9" and event["request"]["useragent"] == "probe/1"
    assert event["target"]["url"] == f"/v2/a/blobs/{d}"  # trustbox's own config: relative URLs


class _BrokenDriver(FilesystemDriver):
    broken = False

    def list_dir(self, prefix: str) -> list[str]:
        if self.broken and prefix == "":
            raise OSError("disk gone")
        return super().list_dir(prefix)


def test_storage_health_check_answers_503_while_failing(tmp_path: Path) -> None:
    driver = _BrokenDriver(tmp_path / "s")
    config = RegistryConfig(storage=str(tmp_path / "s"), health_interval=0.05, health_threshold=2)
    client = TestClient(create_app(config, driver))
    assert client.get("/v2/").status_code == 200
    driver.broken = True
    deadline = time.monotonic() + 5
    while client.get("/v2/").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = client.get("/v2/")
    assert r.status_code == 503 and r.json()["errors"][0]["code"] == "UNAVAILABLE"
    driver.broken = False
    deadline = time.monotonic() + 5
    while client.get("/v2/").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/v2/").status_code == 200
