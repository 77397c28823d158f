"""Acceptance: the real notary 0.7 client against every trust server.

The lifecycle follows the fixtures (init, publish, delegation, key rotations, removal, remote delete).
After every step a fresh client (empty trust dir) must see exactly the expected targets, with the
sha256/size of the payload files. The whole transcript (exit status, stdout, stderr of every command,
after normalising random key IDs, ports, temp paths and log times) must also be what the same
commands print against upstream notary-server in the same session.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .clitools import (
    NotaryClient,
    Result,
    Transcript,
    add_path_header,
    check_against_upstream,
    parse_list,
    pem_public_key_id,
    sha256_file,
)
from .servers import ServerHandle

pytestmark = pytest.mark.interop

LIFECYCLE_GUN = "example.test/interop/lifecycle"
REJECT_GUN = "example.test/interop/rejected"


@dataclass
class Scenario:
    server: ServerHandle
    root: Path
    transcript: Transcript
    problems: list[str] = field(default_factory=list)
    _fresh: itertools.count = field(default_factory=lambda: itertools.count(1))

    def client(self, name: str) -> NotaryClient:
        return NotaryClient(self.root / name, self.server)

    def fresh(self) -> NotaryClient:
        return self.client(f"fresh{next(self._fresh)}")

    def rec(self, res: Result) -> Result:
        return self.transcript.add(res)

    def check(self, cond: bool, msg: str, res: Result | None = None) -> bool:
        if not cond:
            self.problems.append(msg + (("\n" + res.describe()) if res else ""))
        return cond

    def expect_ok(self, res: Result) -> Result:
        self.check(res.rc == 0, f"[{res.label}] expected success", res)
        return self.rec(res)


def make_payloads(root: Path) -> dict[str, Path]:
    d = root / "payload"
    d.mkdir(parents=True)
    files = {}
    for i, body in enumerate(
        [b"hello interop\n", b"second payload\n", b"x" * 4096, b"delegated payload\n", b"from the delegate\n"],
        start=1,
    ):
        p = d / f"v{i}.txt"
        p.write_bytes(body)
        files[f"v{i}"] = p
    return files


def expect_targets(sc: Scenario, gun: str, label: str, expected: dict[str, tuple[Path, str]]) -> NotaryClient:
    """A fresh client lists exactly ``expected`` ({name: (payload file, role)}) and looks each one up."""
    fresh = sc.fresh()
    res = sc.rec(fresh.run(f"{label}: fresh list", "list", gun))
    got = parse_list(res.out)
    want = {name: (sha256_file(p), p.stat().st_size, role) for name, (p, role) in expected.items()}
    sc.check(res.rc == 0 and got == want, f"[{label}] fresh client `notary list`: expected {want}, got {got}", res)
    for name, (p, _role) in sorted(expected.items()):
        res = sc.rec(fresh.run(f"{label}: fresh lookup {name}", "lookup", gun, name))
        line = f"{name} sha256:{sha256_file(p)} {p.stat().st_size}"
        sc.check(res.rc == 0 and res.out.strip() == line, f"[{label}] `notary lookup {name}`: want {line!r}", res)
    return fresh


def cached_root(client: NotaryClient, gun: str) -> dict:
    path = client.trust_dir / "tuf" / gun / "metadata" / "root.json"
    return json.loads(path.read_text())["signed"]


def run_lifecycle(server: ServerHandle, root: Path) -> Scenario:
    gun = LIFECYCLE_GUN
    tr = Transcript(server=server.name, tmp_roots=[str(root)])
    sc = Scenario(server, root, tr)
    pay = make_payloads(root)
    tr.keep_hex = {sha256_file(p) for p in pay.values()}
    owner = sc.client("owner")
    reader = sc.client("reader")

    # 1. init: nothing published yet
    sc.expect_ok(owner.run("init", "init", gun))
    res = sc.rec(sc.fresh().run("init: fresh list", "list", gun))
    sc.check(res.rc != 0 and "does not have trust data" in res.out + res.err,
             "[init] before the first publish a fresh client must be told the repo has no trust data", res)

    # 2. several targets, one publish
    for name in ("v1", "v2", "v3"):
        sc.expect_ok(owner.run(f"add {name}", "add", gun, name, str(pay[name])))
    sc.expect_ok(owner.run("publish targets", "publish", gun))
    state = {n: (pay[n], "targets") for n in ("v1", "v2", "v3")}
    fresh = expect_targets(sc, gun, "publish", state)
    res = sc.rec(fresh.run("verify v1", "verify", gun, "v1", stdin=pay["v1"].read_bytes()))
    sc.check(res.rc == 0 and res.out.encode() == pay["v1"].read_bytes(),
             "[verify] `notary verify` must echo the payload that matches", res)
    res = sc.rec(fresh.run("verify v1 wrong payload", "verify", gun, "v1", stdin=b"not the payload\n"))
    sc.check(res.rc != 0, "[verify] a payload with another hash must be refused", res)
    res = sc.rec(fresh.run("lookup unknown", "lookup", gun, "nope"))
    sc.check(res.rc != 0 and "No valid trust data for nope" in res.out + res.err, "[lookup] unknown target", res)
    res = sc.expect_ok(reader.run("reader list 1", "list", gun))
    root_v1 = cached_root(reader, gun)
    sc.check(root_v1["version"] == 1, f"[publish] root version 1 expected, got {root_v1['version']}")

    # 3. delegation targets/releases
    keydir = root / "delegation-key"
    keydir.mkdir()
    sc.expect_ok(owner.run("key generate releases", "key", "generate", "ecdsa", "--role", "targets/releases",
                           "-o", str(keydir / "releases")))
    rel_id = pem_public_key_id(keydir / "releases.pem")
    sc.expect_ok(owner.run("delegation add", "delegation", "add", gun, "targets/releases",
                           str(keydir / "releases.pem"), "--all-paths"))
    sc.expect_ok(owner.run("publish delegation", "publish", gun))
    res = sc.rec(sc.fresh().run("fresh delegation list", "delegation", "list", gun))
    sc.check(res.rc == 0 and "targets/releases" in res.out and rel_id in res.out,
             f"[delegation] fresh `delegation list` must show targets/releases with key {rel_id}", res)
    expect_targets(sc, gun, "delegation", state)

    # 4. publish as the delegate (owner imports the delegation key, as in the fixtures)
    imported = add_path_header(keydir / "releases-key.pem", rel_id, keydir / "releases-key-with-path.pem")
    sc.expect_ok(owner.run("key import", "key", "import", str(imported)))
    sc.expect_ok(owner.run("add v4 releases", "add", gun, "v4", str(pay["v4"]), "--roles", "targets/releases"))
    sc.expect_ok(owner.run("publish v4", "publish", gun))
    state["v4"] = (pay["v4"], "targets/releases")
    expect_targets(sc, gun, "delegate publish", state)

    # 5. snapshot key becomes server-managed
    sc.expect_ok(owner.run("rotate snapshot", "key", "rotate", gun, "snapshot", "-r"))
    fresh = expect_targets(sc, gun, "rotate snapshot", state)
    r2 = cached_root(fresh, gun)
    sc.check(r2["version"] == 2 and r2["roles"]["snapshot"]["keyids"] != root_v1["roles"]["snapshot"]["keyids"],
             f"[rotate snapshot] root v2 with a new snapshot key expected, got v{r2['version']} {r2['roles']}")

    # 6. a delegate-only client (just the delegation key) publishes; the server signs the snapshot
    delegate = sc.client("delegate")
    sc.expect_ok(delegate.run("delegate key import", "key", "import", str(imported)))
    sc.expect_ok(delegate.run("delegate add v5", "add", gun, "v5", str(pay["v5"]), "--roles", "targets/releases"))
    sc.expect_ok(delegate.run("delegate publish", "publish", gun))
    state["v5"] = (pay["v5"], "targets/releases")
    expect_targets(sc, gun, "delegate-only publish", state)
    res = sc.rec(sc.fresh().run("fresh list releases", "list", gun, "--roles", "targets/releases"))
    got = set(parse_list(res.out))
    sc.check(got == {"v4", "v5"}, f"[delegate-only] `list --roles targets/releases` wants v4, v5; got {got}", res)

    # 7. timestamp key rotation
    sc.expect_ok(owner.run("rotate timestamp", "key", "rotate", gun, "timestamp", "-r"))
    fresh = expect_targets(sc, gun, "rotate timestamp", state)
    r3 = cached_root(fresh, gun)
    sc.check(r3["version"] == 3 and r3["roles"]["timestamp"]["keyids"] != r2["roles"]["timestamp"]["keyids"],
             f"[rotate timestamp] root v3 with a new timestamp key expected, got v{r3['version']} {r3['roles']}")

    # 8. root key rotation (interactive "yes")
    sc.expect_ok(owner.run("rotate root", "key", "rotate", gun, "root", stdin="yes\n"))
    fresh = expect_targets(sc, gun, "rotate root", state)
    r4 = cached_root(fresh, gun)
    sc.check(r4["version"] == 4 and r4["roles"]["root"]["keyids"] != r3["roles"]["root"]["keyids"],
             f"[rotate root] root v4 with a new root key expected, got v{r4['version']} {r4['roles']}")
    # the reader still trusts root v1 and must walk 2.root.json, 3.root.json to v4
    res = sc.expect_ok(reader.run("reader list after rotations", "list", gun))
    want = {n: (sha256_file(p), p.stat().st_size, role) for n, (p, role) in state.items()}
    sc.check(parse_list(res.out) == want, "[rotate root] a client with cached root v1 must follow the rotations", res)
    sc.check(cached_root(reader, gun)["version"] == 4, "[rotate root] reader's cached root must now be v4")

    # 9. owner publishes after the root rotation: remove a target
    sc.expect_ok(owner.run("remove v2", "remove", gun, "v2"))
    sc.expect_ok(owner.run("publish removal", "publish", gun))
    del state["v2"]
    fresh = expect_targets(sc, gun, "remove", state)
    res = sc.rec(fresh.run("lookup removed", "lookup", gun, "v2"))
    sc.check(res.rc != 0, "[remove] the removed target must not be found", res)

    # 10. delete the repository on the server
    sc.expect_ok(owner.run("delete remote", "delete", gun, "--remote"))
    res = sc.rec(sc.fresh().run("fresh list after delete", "list", gun))
    sc.check(res.rc != 0 and "does not have trust data" in res.out + res.err,
             "[delete] after `delete --remote` a fresh client must find no trust data", res)
    return sc


def run_rejected(server: ServerHandle, root: Path) -> Scenario:
    """Publishes the server must refuse, leaving the repository unchanged."""
    gun = REJECT_GUN
    tr = Transcript(server=server.name, tmp_roots=[str(root)])
    sc = Scenario(server, root, tr)
    pay = make_payloads(root)
    tr.keep_hex = {sha256_file(p) for p in pay.values()}
    owner = sc.client("owner")

    sc.expect_ok(owner.run("init", "init", gun))
    sc.expect_ok(owner.run("add v1", "add", gun, "v1", str(pay["v1"])))
    keydir = root / "k"
    keydir.mkdir()
    sc.expect_ok(owner.run("key generate", "key", "generate", "ecdsa", "--role", "targets/releases",
                           "-o", str(keydir / "rel")))
    rel_id = pem_public_key_id(keydir / "rel.pem")
    sc.expect_ok(owner.run("delegation add -p", "delegation", "add", gun, "targets/releases",
                           str(keydir / "rel.pem"), "--all-paths", "-p"))
    state = {"v1": (pay["v1"], "targets")}
    expect_targets(sc, gun, "setup", state)

    # The snapshot key is held by the owner only: a delegate cannot produce a snapshot, and the
    # server must refuse an update without one (ErrBadHierarchy) instead of signing a snapshot itself.
    delegate = sc.client("delegate")
    key = add_path_header(keydir / "rel-key.pem", rel_id, keydir / "rel-key-path.pem")
    sc.expect_ok(delegate.run("delegate import", "key", "import", str(key)))
    sc.expect_ok(delegate.run("delegate add", "add", gun, "d1", str(pay["v4"]), "--roles", "targets/releases"))
    res = sc.rec(delegate.run("delegate publish without snapshot key", "publish", gun))
    sc.check(res.rc != 0 and "no snapshot was included in update" in res.out + res.err,
             "[rejected] publish without a snapshot must be refused with the ErrBadHierarchy message", res)
    expect_targets(sc, gun, "after refused publish", state)

    # A client whose trust was initialised with another root key (another owner) cannot take over.
    intruder = sc.client("intruder")
    sc.expect_ok(intruder.run("intruder init", "init", gun))
    sc.expect_ok(intruder.run("intruder add", "add", gun, "evil", str(pay["v2"])))
    res = sc.rec(intruder.run("intruder publish", "publish", gun))
    sc.check(res.rc != 0, "[rejected] a publish with another root key must fail", res)
    expect_targets(sc, gun, "after intruder", state)

    # The owner can still publish afterwards.
    sc.expect_ok(owner.run("owner add v3", "add", gun, "v3", str(pay["v3"])))
    sc.expect_ok(owner.run("owner publish", "publish", gun))
    state["v3"] = (pay["v3"], "targets")
    expect_targets(sc, gun, "owner again", state)
    return sc


def test_notary_lifecycle(trust_server, upstream_server, server_pool, workdir, notary_bin):
    check_against_upstream(trust_server, upstream_server, server_pool, workdir, "notary-lifecycle", run_lifecycle)


def test_notary_rejected_publishes(trust_server, upstream_server, server_pool, workdir, notary_bin):
    check_against_upstream(trust_server, upstream_server, server_pool, workdir, "notary-rejected", run_rejected)
