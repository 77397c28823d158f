"""Refused updates on the wire: the same requests get the same status and error body as upstream.

A repository is made with the real notary client; then raw HTTP requests replay old metadata,
upload metadata signed by a key the root does not list, or send malformed uploads. Every refusal
must leave the repository unchanged (the current targets.json bytes and a fresh ``notary list``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.helpers.notary_upload import multipart

from .clitools import NotaryClient, Result, Transcript, check_against_upstream, parse_list
from .servers import ServerHandle

pytestmark = pytest.mark.interop

GUN = "example.test/interop/wire"


def http(server: ServerHandle, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    req = urllib.request.Request(server.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_full(server: ServerHandle, method: str, path: str):
    ctx = ssl.create_default_context(cafile=str(server.ca_path))
    req = urllib.request.Request(server.url + path, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def canonical(obj: object) -> bytes:
    # enough for the ASCII-only documents used here
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_with_new_key(signed: dict) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = base64.b64encode(key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()
    keyid = hashlib.sha256(canonical({"keytype": "ecdsa", "keyval": {"private": None, "public": pub}})).hexdigest()
    r, s = decode_dss_signature(key.sign(canonical(signed), ec.ECDSA(hashes.SHA256())))
    sig = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    return canonical({"signed": signed, "signatures": [{"keyid": keyid, "method": "ecdsa", "sig": sig}]})


class WireRun:
    def __init__(self, server: ServerHandle, root: Path):
        self.server = server
        self.transcript = Transcript(server=server.name, tmp_roots=[str(root)])
        self.problems: list[str] = []
        self.root = root

    def request(self, label: str, method: str, path: str, body: bytes | None = None, ctype: str | None = None):
        headers = {"Content-Type": ctype} if ctype else {}
        status, data = http(self.server, method, path, body, headers)
        try:
            shown = json.dumps(json.loads(data), sort_keys=True) if data.strip() else ""
        except ValueError:
            shown = data.decode(errors="replace")
        return self.transcript.add(Result(label, [method, path], status, shown, ""))

    def post(self, label: str, parts: list[tuple[str, bytes]]):
        body, ctype = multipart(parts, secrets.token_hex(16))
        return self.request(label, "POST", f"/v2/{GUN}/_trust/tuf/", body, ctype)

    def check(self, cond: bool, msg: str, res=None) -> None:
        if not cond:
            self.problems.append(msg + (("\n" + res.describe()) if res is not None else ""))


def run_wire(server: ServerHandle, root: Path) -> WireRun:
    w = WireRun(server, root)
    root.mkdir(parents=True, exist_ok=True)
    owner = NotaryClient(root / "owner", server)
    (root / "a.txt").write_bytes(b"a\n")
    (root / "b.txt").write_bytes(b"b\n")
    for args in (("init", GUN), ("add", GUN, "a", str(root / "a.txt")), ("publish", GUN),
                 ("add", GUN, "b", str(root / "b.txt")), ("publish", GUN)):
        res = owner.run(" ".join(args[:1]), *args)
        w.check(res.rc == 0, "setup with the notary client failed", res)
    tuf = f"/v2/{GUN}/_trust/tuf"
    status, current_targets = http(server, "GET", f"{tuf}/targets.json")
    w.check(status == 200, f"GET targets.json after publishing: status {status}")
    _, old_targets = http(server, "GET", f"{tuf}/2.targets.json")
    _, old_snapshot = http(server, "GET", f"{tuf}/2.snapshot.json")
    _, root_json = http(server, "GET", f"{tuf}/1.root.json")

    # reads: status, Cache-Control, and the body where it is deterministic
    targets_sha = hashlib.sha256(current_targets).hexdigest()
    for label, path in [
        ("ping", "/v2/"),
        ("current timestamp", f"{tuf}/timestamp.json"),
        ("current targets", f"{tuf}/targets.json"),
        ("versioned targets", f"{tuf}/2.targets.json"),
        ("checksummed targets", f"{tuf}/targets.{targets_sha}.json"),
        ("timestamp.key", f"{tuf}/timestamp.key"),
        ("targets.key is not a route", f"{tuf}/targets.key"),
    ]:
        status, headers, body = http_full(server, "GET", path)
        shown = ""
        if label == "ping":
            shown = body.decode(errors="replace")
        elif label == "timestamp.key" and status == 200:
            shown = "keytype=" + str(json.loads(body).get("keytype"))
        elif label == "checksummed targets":
            w.check(body == current_targets, "targets.<sha256>.json must serve the same bytes as targets.json")
        elif status >= 400:
            shown = json.dumps(json.loads(body), sort_keys=True)
        w.transcript.add(Result(label, ["GET", path], status, shown, f"Cache-Control: {headers.get('Cache-Control')}"))

    w.request("unknown repository root", "GET", "/v2/example.test/interop/none/_trust/tuf/root.json")
    w.request("unknown version", "GET", f"{tuf}/99.targets.json")

    res = w.post("replay targets v2 + snapshot v2", [("targets", old_targets), ("snapshot", old_snapshot)])
    w.check(res.rc == 400, "replaying older targets/snapshot must be refused with 400", res)
    res = w.post("replay targets v2 alone", [("targets", old_targets)])
    w.check(res.rc == 400, "targets without snapshot (client-held snapshot key) must be refused", res)

    signed = json.loads(current_targets)["signed"]
    signed["version"] += 1
    signed["targets"]["evil"] = {"hashes": {"sha256": base64.b64encode(b"\0" * 32).decode()}, "length": 1}
    res = w.post("targets signed by an unknown key", [("targets", sign_with_new_key(signed)), ("snapshot", old_snapshot)])
    w.check(res.rc == 400, "targets signed by a key the root does not list must be refused", res)

    root_signed = json.loads(root_json)["signed"]
    root_signed["version"] += 1
    res = w.post("root v2 signed by an unknown key", [("root", sign_with_new_key(root_signed))])
    w.check(res.rc == 400, "a root not signed by the current root key must be refused", res)

    res = w.post("invalid role name", [("targets/../evil", old_targets)])
    w.check(res.rc == 400, "an invalid role name must be refused", res)
    res = w.post("malformed JSON", [("targets", b"{not json")])
    w.check(res.rc == 400, "malformed JSON must be refused", res)
    res = w.request("not multipart", "POST", f"{tuf}/", b"{}", "application/json")
    w.check(res.rc == 400, "a non-multipart update must be refused", res)

    w.request("delete unknown repository", "DELETE", "/v2/example.test/interop/none/_trust/tuf/")
    status, after = http(server, "GET", f"{tuf}/targets.json")
    w.check(status == 200 and after == current_targets, "refused updates changed targets.json")
    res = NotaryClient(root / "fresh", server).run("fresh list", "list", GUN)
    w.check(set(parse_list(res.out)) == {"a", "b"}, "a fresh client must still see exactly a, b", res)
    return w


def test_refused_updates_match_upstream(trust_server, upstream_server, server_pool, workdir, notary_bin):
    check_against_upstream(trust_server, upstream_server, server_pool, workdir, "wire", run_wire)
