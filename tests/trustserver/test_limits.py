"""Bad input costs little and never yields 5xx: size limits, GUN syntax, nesting, garbage."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.helpers.notary_upload import multipart
from tests.trustserver.ts_asgi import ASGIClient, raw_call
from tests.trustserver.ts_env import make_app
from tests.trustserver.ts_helpers import GUN, error, new_repo, post, publish_new, tuf


def test_oversized_body_rejected_by_content_length(backend, clock):
    app = make_app(backend, clock, max_upload_bytes=64 * 1024)
    try:
        with ASGIClient(app) as c:
            repo = new_repo(c)
            big = repo.make_root() + b" " * (70 * 1024)
            body, ct = multipart({"root": big})
            r = c.post(tuf(GUN, ""), content=body, headers={"content-type": ct})
            assert r.status_code == 413
            assert error(r)["code"] == "MALFORMED_UPLOAD"
            assert c.get(tuf(GUN, "root.json")).status_code == 404
    finally:
        app.close()


def test_oversized_streamed_body_stops_reading(backend, clock):
    """Without Content-Length the server stops reading as soon as the limit is passed."""
    limit = 64 * 1024
    app = make_app(backend, clock, max_upload_bytes=limit)
    chunk = b"x" * 8192
    received = 0
    sent: list[dict] = []

    async def receive():
        nonlocal received
        received += 1
        return {"type": "http.request", "body": chunk, "more_body": True}  # endless

    async def send(msg):
        sent.append(msg)

    scope = {
        "type": "http", "method": "POST", "path": tuf(GUN, ""), "query_string": b"",
        "headers": [(b"content-type", b"multipart/form-data; boundary=x")],
    }
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        app.close()
    assert sent[0]["status"] == 413
    assert received <= limit // len(chunk) + 1
    assert json.loads(sent[1]["body"])["errors"][0]["code"] == "MALFORMED_UPLOAD"


@pytest.mark.parametrize("gun", [
    "a/../b", "../etc", "a/./b", "a//b", "a/b/", "with space/x", "x" * 256, "tab\there", "a*b", "-lead",
])
def test_bad_gun(app, client, gun):
    repo = new_repo(client, "example.com/ok")
    body, ct = multipart({"root": repo.make_root()})
    status, headers, data = raw_call(app, "POST", tuf(gun, ""), body, [(b"content-type", ct.encode())])
    assert status in (400, 404)
    assert headers[b"content-type"] == b"application/json; charset=utf-8"
    if status == 400:
        assert json.loads(data)["errors"][0]["code"] == "INVALID_GUN"
    for path in (tuf(gun, "root.json"), tuf(gun, "timestamp.key"), f"/v2/{gun}/_trust/changefeed"):
        status, _, data = raw_call(app, "GET", path, query=b"records=1")
        assert status == 404, path
        assert json.loads(data)["errors"][0]["code"] == "METADATA_NOT_FOUND"
    assert client.get(tuf("example.com/ok", "root.json")).status_code == 404


def test_traversal_into_other_gun(app, client):
    publish_new(client)
    for path in (f"/v2/{GUN}/../x/_trust/tuf/root.json", f"/v2/x/../{GUN}/_trust/tuf/root.json"):
        assert raw_call(app, "GET", path)[0] == 404


def test_gun_prefixes(backend, clock):
    app = make_app(backend, clock, gun_prefixes=("docker.io/",))
    try:
        with ASGIClient(app) as c:
            repo = new_repo(c, "docker.io/library/x")
            r = post(c, "quay.io/x", {"root": repo.make_root()})
            assert error(r) == {
                "code": "INVALID_GUN", "message": "The server does not support actions on images of this name.",
                "detail": "Require GUNs with prefix: [docker.io/]",
            }
            assert c.get(tuf("quay.io/x", "timestamp.key")).status_code == 404
            r = post(c, "docker.io/library/x", {"root": repo.make_root(), "targets": repo.make_targets(version=2),
                                                "snapshot": repo.make_snapshot(version=2)})
            assert r.status_code == 200, r.text
    finally:
        app.close()


def test_deep_json_and_garbage_never_5xx(client):
    publish_new(client)
    nasty = [
        b"[" * 100000 + b"]" * 100000,
        b'{"signed":' * 5000 + b"1" + b"}" * 5000,
        b"\xff\xfe\x00garbage",
        b'{"signed": {"_type": "Targets", "version": 3, "expires": "2030-01-01T00:00:00Z", "targets": {"a": '
        b'{"length": -1, "hashes": {}}}, "delegations": {"keys": {}, "roles": []}}, "signatures": []}',
        b'{"signed": {"_type": "Targets", "version": 3, "expires": "2030-01-01T00:00:00Z", "targets": [], '
        b'"delegations": 7}, "signatures": [{"keyid": "k", "method": "zz", "sig": ""}]}',
        b'{"signed": {"_type": "Targets", "version": 3, "expires": "2030-01-01T00:00:00Z", "targets": {}, '
        b'"delegations": {"keys": {"k": {"keytype": "rsa", "keyval": {"public": "AAAA"}}}, "roles": []}}, '
        b'"signatures": []}',
        b'{"signed": {"_type": "Targets", "version": 1e400}, "signatures": []}',
        b'{"signed": {"_type": "Targets", "version": NaN}, "signatures": []}',
    ]
    for data in nasty:
        for role in ("targets", "root", "snapshot", "targets/releases"):
            r = post(client, GUN, {role: data})
            assert 400 <= r.status_code < 500, (role, data[:60], r.status_code, r.text)
            error(r)
    # the repository is untouched
    assert client.get(tuf(GUN, "2.targets.json")).status_code == 200
    assert client.get(tuf(GUN, "3.targets.json")).status_code == 404


def test_version_route_overflow(client):
    r = client.get(tuf(GUN, "99999999999999999999.root.json"))
    assert r.status_code == 404
    assert error(r)["detail"] == {"Func": "Atoi", "Num": "99999999999999999999", "Err": {}}
    assert client.get(tuf(GUN, "4294967296.root.json")).status_code == 404


def test_targets_and_delegations_per_update_are_limited(backend, clock):
    """Updates listing more targets / delegated roles than configured get 400 and change nothing."""
    from tests.helpers.simulator import target
    from trustbox.tuf.keys import PrivateKey

    app = make_app(backend, clock, max_targets_per_update=3, max_delegations_per_update=1)
    try:
        with ASGIClient(app) as c:
            repo = publish_new(c, server_snapshot=True)
            many = {f"t{i}": target(b"x%d" % i) for i in range(4)}
            r = post(c, GUN, {"targets": repo.make_targets(many, version=3)})
            assert r.status_code == 400 and error(r)["code"] == "MALFORMED_UPLOAD"
            assert "4 targets" in json.dumps(error(r))
            dels = [(f"targets/r{i}", PrivateKey.generate("ecdsa").public_key(), [""]) for i in range(2)]
            r = post(c, GUN, {"targets": repo.make_targets(delegations=dels, version=3)})
            assert r.status_code == 400 and "delegated roles" in json.dumps(error(r))
            # nothing was stored; within the limits the same update works
            assert json.loads(c.get(tuf(GUN, "targets.json")).content)["signed"]["version"] == 2
            r = post(c, GUN, {"targets": repo.make_targets(dict(list(many.items())[:3]), delegations=dels[:1], version=3)})
            assert r.status_code == 200, r.text
    finally:
        app.close()
