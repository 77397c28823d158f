"""HTTP API of the trust server: routes, bodies, headers, errors (compared with upstream's)."""

from __future__ import annotations

import hashlib
import json
import re

from tests.helpers.simulator import target
from tests.trustserver.ts_helpers import GUN, error, new_repo, parse_key, post, publish_new, tuf
from trustbox.tuf.metadata import Metadata, Snapshot, Timestamp
from trustbox.tuf.verify import TrustedCollection

NOT_FOUND_BODY = b'{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist."}]}\n'
NOT_FOUND_DETAIL = (
    b'{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.",'
    b'"detail":{}}]}\n'
)
LAST_MODIFIED = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d UTC$")


def test_ping_health_metrics(client):
    r = client.get("/v2/")
    assert (r.status_code, r.content) == (200, b"{}")
    r = client.get("/_notary_server/health")
    assert (r.status_code, r.content) == (200, b"{}")
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    r = client.get("/metrics")
    assert r.status_code == 200
    assert 'trustbox_http_requests_total{handler="Ping",code="200"} 1' in r.text
    assert "trustbox_http_request_duration_seconds_bucket" in r.text


def test_unknown_paths_are_metadata_not_found(client):
    for method, path in [
        ("GET", tuf(GUN, "foo.json")),
        ("GET", tuf(GUN, "targets.key")),
        ("POST", "/v2/"),
        ("PUT", tuf(GUN, "")),
        ("GET", "/nothing/here"),
        ("HEAD", tuf(GUN, "timestamp.json")),
        ("DELETE", tuf(GUN, "root.json")),
    ]:
        r = client.request(method, path)
        assert r.status_code == 404, (method, path)
        if method != "HEAD":
            assert r.content == NOT_FOUND_BODY, (method, path)


def test_missing_metadata_404_has_empty_detail(client):
    r = client.get(tuf(GUN, "root.json"))
    assert r.status_code == 404
    assert r.content == NOT_FOUND_DETAIL
    assert "cache-control" not in r.headers


def test_publish_and_read_back_byte_identical(client):
    repo = publish_new(client)
    for role in ("root", "targets", "snapshot"):
        r = client.get(tuf(GUN, f"{role}.json"))
        assert r.status_code == 200
        assert r.content == repo.docs[role]
        assert r.headers["cache-control"] == "public, max-age=300, s-maxage=300, must-revalidate"
        assert LAST_MODIFIED.match(r.headers["last-modified"]), r.headers["last-modified"]
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
    # by version and by checksum: the consistent cache policy
    for name, data in [("1.root", repo.docs["root"]), ("2.targets", repo.docs["targets"]),
                       ("2.snapshot", repo.docs["snapshot"])]:
        r = client.get(tuf(GUN, f"{name}.json"))
        assert (r.status_code, r.content) == (200, data)
        assert r.headers["cache-control"] == "public, max-age=2592000, s-maxage=2592000"
        role = name.split(".")[1]
        r = client.get(tuf(GUN, f"{role}.{hashlib.sha256(data).hexdigest()}.json"))
        assert (r.status_code, r.content) == (200, data)
        r = client.get(tuf(GUN, f"{role}.{hashlib.sha256(data).hexdigest().upper()}.json"))
        assert r.status_code == 200
    assert client.get(tuf(GUN, "3.targets.json")).status_code == 404
    assert client.get(tuf(GUN, f"targets.{'0' * 64}.json")).content == NOT_FOUND_DETAIL
    # a sha512-length checksum matches the route but nothing is indexed by it
    assert client.get(tuf(GUN, f"targets.{'a' * 128}.json")).status_code == 404


def test_client_verifies_what_server_serves(client):
    repo = publish_new(client)
    get = lambda name: client.get(tuf(GUN, name)).content  # noqa: E731
    tc = TrustedCollection(GUN, get("root.json"), repo.now, tofu=True)
    ts = tc.update_timestamp(get("timestamp.json"))
    assert ts.signed.version == 1
    snap_hash = ts.signed.snapshot_meta.hashes["sha256"].hex()
    tc.update_snapshot(get(f"snapshot.{snap_hash}.json"))
    tc.update_targets(get("targets.json"))
    assert "v1" in tc.role_targets("targets")


def test_timestamp_is_server_made_and_cached_bytes_stable(client):
    publish_new(client)
    a = client.get(tuf(GUN, "timestamp.json"))
    b = client.get(tuf(GUN, "timestamp.json"))
    assert a.content == b.content
    assert a.headers["last-modified"] == b.headers["last-modified"]
    ts = Metadata.parse(a.content, expect=Timestamp)
    assert ts.signatures[0].method == "eddsa"
    assert client.get(tuf(GUN, "1.timestamp.json")).content == a.content


def test_key_routes(client):
    r = client.get(tuf(GUN, "timestamp.key"))
    assert r.status_code == 200
    assert re.fullmatch(rb'\{"keytype":"ed25519","keyval":\{"public":"[A-Za-z0-9+/]{43}=","private":null\}\}', r.content)
    again = client.get(tuf(GUN, "timestamp.key"))
    assert again.content == r.content  # no root yet: the same pending key, not a new one each time
    rotated = client.post(tuf(GUN, "timestamp.key"))
    assert rotated.status_code == 200 and rotated.content != r.content
    snap = client.get(tuf(GUN, "snapshot.key"))
    assert snap.status_code == 200 and snap.content not in (r.content, rotated.content)
    assert client.get(tuf(GUN, "root.key")).status_code == 404
    assert client.post(tuf(GUN, "targets.key")).status_code == 404


def test_key_route_returns_key_listed_in_root(client):
    repo = publish_new(client)
    listed = repo.timestamp_pub
    client.post(tuf(GUN, "timestamp.key"))  # a pending rotation does not change the current key
    assert parse_key(client.get(tuf(GUN, "timestamp.key")).content) == listed


def test_ecdsa_key_algorithm(backend, clock):
    from tests.trustserver.ts_asgi import ASGIClient
    from tests.trustserver.ts_env import make_app

    a = make_app(backend, clock, key_algorithm="ecdsa")
    try:
        with ASGIClient(a) as c:
            key = parse_key(c.get(tuf(GUN, "timestamp.key")).content)
            assert key.keytype == "ecdsa"
            repo = new_repo(c)
            r = post(c, GUN, {"root": repo.make_root(), "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
            assert r.status_code == 200, r.text
            ts = Metadata.parse(c.get(tuf(GUN, "timestamp.json")).content)
            assert ts.signatures[0].method == "ecdsa"
    finally:
        a.close()


def test_delete(client):
    publish_new(client)
    other = publish_new(client, "example.com/other")
    assert client.get(tuf(GUN, "root.json")).status_code == 200
    r = client.delete(tuf(GUN, ""))
    assert (r.status_code, r.content) == (200, b"")
    for name in ("root.json", "timestamp.json", "1.root.json", "targets.json", "snapshot.json"):
        assert client.get(tuf(GUN, name)).status_code == 404
    assert client.get(tuf("example.com/other", "root.json")).content == other.docs["root"]
    # deleting again (nothing there) succeeds too
    assert client.delete(tuf(GUN, "")).status_code == 200
    # and the GUN can be created anew
    publish_new(client)


def test_server_managed_snapshot(client):
    repo = publish_new(client, server_snapshot=True)
    snap = Metadata.parse(client.get(tuf(GUN, "snapshot.json")).content, expect=Snapshot)
    assert snap.signed.version == 1
    assert snap.signed.meta["targets"].matches(repo.docs["targets"])
    assert snap.signed.meta["root"].matches(repo.docs["root"])
    # next targets update without a snapshot: server makes snapshot v2
    r = post(client, GUN, {"targets": repo.make_targets({"v1": target(b"a"), "v2": target(b"b")}, version=3)})
    assert r.status_code == 200, r.text
    snap2 = Metadata.parse(client.get(tuf(GUN, "snapshot.json")).content, expect=Snapshot)
    assert snap2.signed.version == 2
    assert snap2.signed.meta["targets"].matches(repo.docs["targets"])
    ts = Metadata.parse(client.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
    assert ts.signed.version == 2
    assert ts.signed.snapshot_meta.matches(client.get(tuf(GUN, "snapshot.json")).content)


def test_part_names_with_json_suffix(client):
    repo = new_repo(client)
    r = post(client, GUN, {"root.json": repo.make_root(), "targets.json": repo.make_targets(version=2), "snapshot.json": repo.make_snapshot(version=2)})
    assert r.status_code == 200, r.text
    assert client.get(tuf(GUN, "targets.json")).content == repo.docs["targets"]


def test_json_error_body_is_go_encoded(client):
    repo = new_repo(client)
    r = post(client, GUN, {"targets/a<b": repo.make_targets(version=2)})
    assert r.status_code == 400
    assert r.content == (
        b'{"errors":[{"code":"INVALID_ROLE","message":"The role you are attempting to operate on is invalid.",'
        b'"detail":"targets/a\\u003cb"}]}\n'
    )
    assert json.loads(r.content)["errors"][0]["detail"] == "targets/a<b"
    assert error(r)["code"] == "INVALID_ROLE"
