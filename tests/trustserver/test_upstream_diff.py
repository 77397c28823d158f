"""Differential test: the same requests against the real notary-server 0.7 (memory store, local
signer) and against trustbox must give the same status codes and byte-identical bodies."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.legacy_certs import sha1_certificate_key
from tests.helpers.notary_upload import multipart
from tests.helpers.simulator import RepositorySimulator, target
from tests.trustserver.ts_asgi import ASGIClient
from tests.trustserver.ts_helpers import parse_key, root_listing
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.metadata import Metadata
from trustbox.tuf.timefmt import utcnow

NOTARY_SERVER = shutil.which("notary-server")
pytestmark = [pytest.mark.interop, pytest.mark.skipif(NOTARY_SERVER is None, reason="notary-server not installed")]

EDGE_REQUESTS = [
    "GET /v2/", "GET /v2", "HEAD /v2/", "OPTIONS /v2/", "PATCH /v2/x/_trust/tuf/", "GET /v2/x/_trust/tuf/",
    "GET /v2/x/_trust/tuf/root.json", "GET /v2/x/_trust/tuf/1.root.json", "GET /v2/x/_trust/tuf/0.root.json",
    "GET /v2/x/_trust/tuf/01.root.json", "GET /v2/x/_trust/tuf/root.abc.json", "GET /v2/x/_trust/tuf/targets/a/b.json",
    "GET /v2/x/_trust/tuf/targets/.json", "GET /v2/*/_trust/tuf/root.json", "DELETE /v2/x/_trust/tuf/",
    "GET /v2/x/_trust/changefeed?records=2", "GET /v2/_trust/changefeed?records=2&change_id=5",
    "GET /v2/_trust/changefeed?records=-2&change_id=abc", "POST /v2/x/_trust/tuf/root.key",
    "GET /v2/x/_trust/tuf/timestamp.key/", "GET /_notary_server/health/", "POST /_notary_server/health",
    "GET /v2/x/_trust/tuf/TIMESTAMP.json", "GET /v2/x/_trust/tuf/timestamp.JSON", "HEAD /v2/x/_trust/tuf/root.json",
    "PUT /v2/x/_trust/tuf/", "GET /v2/_trust/changefeed?records=+3", "GET /v2/_trust/changefeed?records=",
    "GET /v2/_trust/changefeed?change_id=-5&records=2", "POST /v2/x/_trust/tuf/",
    "GET /v2/x/y/_trust/changefeed?records=1", "GET /v2/x/_trust/tuf/snapshot.json", "GET /v2/_trust/tuf/root.json",
    "GET /_notary_server/health",
]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("upstream")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = d / "server.json"
    cfg.write_text(json.dumps({
        "server": {"http_addr": f"127.0.0.1:{port}"}, "trust_service": {"type": "local", "key_algorithm": "ed25519"},
        "storage": {"backend": "memory"}, "logging": {"level": "error"},
    }))
    proc = subprocess.Popen([NOTARY_SERVER, "-config", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        for _ in range(100):
            try:
                if client.get("/_notary_server/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def test_edge_requests_identical(upstream, client):
    for req in EDGE_REQUESTS:
        method, path = req.split(" ", 1)
        a = upstream.request(method, path)
        b = client.request(method, path)
        assert (b.status_code, b.content) == (a.status_code, a.content), req
        for h in ("content-type", "cache-control"):
            assert b.headers.get(h) == a.headers.get(h), (req, h)


def _scenario(c: httpx.Client, gun: str, now: datetime) -> list[tuple[str, int, bytes]]:
    out: list[tuple[str, int, bytes]] = []

    def post(label: str, parts: dict[str, bytes]) -> None:
        body, ct = multipart(parts)
        r = c.post(f"/v2/{gun}/_trust/tuf/", content=body, headers={"content-type": ct})
        out.append((label, r.status_code, r.content))

    repo = RepositorySimulator(gun, now, timestamp_key=parse_key(c.get(f"/v2/{gun}/_trust/tuf/timestamp.key").content))
    stranger = PrivateKey.generate("ecdsa")
    post("no root", {"targets": repo.make_targets(version=2)})
    post("root v5", {"root": repo.make_root(version=5), "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    repo.root_version = 0
    post("root wrong sig", {"root": repo.make_root(signers=[(stranger, repo.root_pub.keyid)]),
                            "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    repo.root_version = 0
    post("root expired", {"root": repo.make_root(expires=repo.now.replace(microsecond=0) - timedelta(days=1)),
                          "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    repo.root_version = 0
    other = RepositorySimulator("example.com/other", now, timestamp_key=repo.timestamp_pub)
    post("cross gun", {"root": other.make_root(), "targets": other.make_targets(version=2), "snapshot": other.make_snapshot(version=2)})
    post("delegation first", {"root": repo.make_root(), "targets/releases": repo.make_targets(role="targets/releases", version=1),
                              "snapshot": repo.make_snapshot(version=2)})
    repo.root_version = 0
    post("ok", {"root": repo.make_root(), "targets": repo.make_targets({"v1": target(b"1")}, version=2), "snapshot": repo.make_snapshot(version=2)})
    post("no snapshot", {"targets": repo.make_targets(version=3)})
    post("bad targets sig", {"targets": repo.make_targets(key=stranger, version=3), "snapshot": repo.make_snapshot(version=3)})
    post("targets expired", {"targets": repo.make_targets(expires=repo.now.replace(microsecond=0) - timedelta(seconds=3), version=3),
                             "snapshot": repo.make_snapshot(version=3)})
    doc = json.loads(repo.make_targets(version=3))
    doc["signatures"] = []
    repo.docs["targets"] = json.dumps(doc).encode()
    post("no sigs", {"targets": repo.docs["targets"], "snapshot": repo.make_snapshot(version=3)})
    post("snapshot wrong key", {"targets": repo.make_targets(version=3), "snapshot": repo.make_snapshot(key=repo.targets_key, version=3)})
    post("snapshot missing targets", {"targets": repo.make_targets(version=3),
                                      "snapshot": repo.make_snapshot(roles={"root": repo.docs["root"]}, version=3)})
    dk = PrivateKey.generate("ecdsa")
    post("child not direct", {"targets": repo.make_targets(delegations=[("targets/a/b", dk.public_key(), [""])], version=3),
                              "snapshot": repo.make_snapshot(version=3)})
    post("delegation ok", {"targets": repo.make_targets(delegations=[("targets/releases", dk.public_key(), [""])], version=3),
                           "snapshot": repo.make_snapshot(version=3)})
    post("delegation wrong key", {"targets/releases": repo.make_targets(key=stranger, role="targets/releases", version=1),
                                  "snapshot": repo.make_snapshot(version=4)})
    post("undelegated", {"targets/other": repo.make_targets(key=dk, role="targets/other", version=1), "snapshot": repo.make_snapshot(version=4)})
    post("replay", {"targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=5)})
    post("bogus role", {"bogus": repo.docs["targets"]})
    post("malformed", {"targets": b"notjson"})
    return out


def test_validation_errors_identical(upstream, client):
    gun = "example.com/diff/repo"
    # one clock for both runs: the expiry messages print the documents' expiry times, which are
    # derived from `now`; two clocks could straddle a second and make the bodies differ
    now = utcnow().replace(microsecond=0)
    expected = _scenario(upstream, gun, now)
    got = _scenario(client, gun, now)
    for (label, sa, ba), (_, sb, bb) in zip(expected, got, strict=True):
        assert (sb, bb) == (sa, ba), label


def _certificate_scenario(c: httpx.Client, gun: str, now: datetime) -> list[tuple[str, int, bytes]]:
    """Root and delegation certificates, and key IDs: notary's rules the core applies."""
    out: list[tuple[str, int, bytes]] = []

    def post(label: str, parts: dict[str, bytes]) -> None:
        body, ct = multipart(parts)
        r = c.post(f"/v2/{gun}/_trust/tuf/", content=body, headers={"content-type": ct})
        out.append((label, r.status_code, r.content))

    ts_key = parse_key(c.get(f"/v2/{gun}/_trust/tuf/timestamp.key").content)
    repo = RepositorySimulator(gun, now, timestamp_key=ts_key)
    legacy = PrivateKey.generate("ecdsa")
    good, old_sha1 = (repo.root_key, repo.root_pub), (legacy, sha1_certificate_key(legacy, gun, now))
    post("root with a SHA-1 certificate too", {"root": root_listing(repo, [good, old_sha1], [0, 1]),
                                               "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    trusted = repo.docs["root"]
    repo.rotate_root_key()
    repo.extra_root_signers = []
    new = (repo.root_key, repo.root_pub)
    post("rotation signed by the SHA-1 certificate", {"root": root_listing(repo, [new, old_sha1], [0, 1]),
                                                      "snapshot": repo.make_snapshot(version=3)})
    other = RepositorySimulator("example.com/other", now, timestamp_key=ts_key)
    post("root for another GUN, not chained", {"root": other.make_root(version=2), "snapshot": repo.make_snapshot(version=3)})
    repo.docs["root"] = trusted
    dk = PrivateKey.generate("ecdsa")
    dpub = sha1_certificate_key(dk, "signer", now)
    post("delegating to a SHA-1 certificate", {"targets": repo.make_targets(delegations=[("targets/releases", dpub, [""])], version=3),
                                               "snapshot": repo.make_snapshot(version=3)})
    rel: Metadata[Any] = Metadata.parse(repo.make_targets(role="targets/releases", key=dk, version=1))
    rel.sign(dk, dpub.keyid)
    rel.signatures = rel.signatures[1:]
    repo.docs["targets/releases"] = rel.to_bytes()
    post("delegation signed by the SHA-1 certificate", {"targets/releases": repo.docs["targets/releases"],
                                                        "snapshot": repo.make_snapshot(version=4)})
    qa, stranger = PrivateKey.generate("ecdsa"), PrivateKey.generate("ecdsa")
    post("delegating to a plain key", {"targets": repo.make_targets(delegations=[("targets/qa", qa.public_key(), [""])], version=4),
                                       "snapshot": repo.make_snapshot(version=5)})
    post("delegation badly formed and badly signed", {
        "targets/qa": repo.make_targets(role="targets/qa", key=stranger,
                                   delegations=[("targets/other/x", stranger.public_key(), [""])], version=1),
        "snapshot": repo.make_snapshot(version=6)})
    fresh = RepositorySimulator(gun + "/keyid", now, timestamp_key=parse_key(c.get(f"/v2/{gun}/keyid/_trust/tuf/timestamp.key").content))
    wrong = "ab" * 32
    fresh.root_version = 0
    root = root_listing(fresh, [(fresh.root_key, fresh.root_pub)], [0], targets=wrong)
    targets: Metadata[Any] = Metadata.parse(fresh.make_targets(version=2))
    targets.sign(fresh.targets_key, wrong)
    targets.signatures = targets.signatures[1:]
    fresh.docs["targets"] = targets.to_bytes()
    body, ct = multipart({"root": root, "targets": fresh.docs["targets"], "snapshot": fresh.make_snapshot(version=2)})
    r = c.post(f"/v2/{gun}/keyid/_trust/tuf/", content=body, headers={"content-type": ct})
    out.append(("targets key listed under another ID", r.status_code, r.content))
    return out


def test_certificate_and_key_id_rules_identical(upstream, client):
    """The previous root's SHA-1 certificate does not count for a rotation; a new root's
    certificates are checked before the rotation; a delegation key certificate signed with SHA-1
    is refused; a delegation's structure is checked before its signatures; a key listed under
    another key's ID is refused: as notary-server words each."""
    gun = "example.com/diff/certs"
    now = utcnow().replace(microsecond=0)
    expected = _certificate_scenario(upstream, gun, now)
    got = _certificate_scenario(client, gun, now)
    assert [status for _label, status, _body in expected] == [200, 400, 400, 200, 400, 200, 400, 400]
    assert b"targets/qa type metadata invalid: delegation role targets/other/x invalid" in expected[6][2]
    for (label, sa, ba), (_, sb, bb) in zip(expected, got, strict=True):
        assert (sb, bb) == (sa, ba), label


@pytest.fixture
def client(tmp_path):
    from tests.trustserver.ts_env import make_app

    app = make_app({"db": f"sqlite:///{tmp_path}/t.db", "table_prefix": ""})
    with ASGIClient(app) as c:
        yield c
    app.close()
