"""Taking over a running notary-server + notary-signer 0.7 deployment, and handing it back.

On MariaDB and on PostgreSQL: the real notary client publishes (several tags, a delegation, a
server-managed snapshot) through notary-server + notary-signer; they are stopped and trustbox starts
with the same ``server.json`` (plus notary-signer's config for its keys). The client's cache keeps
working with no reset, the root (and its timestamp key) is unchanged, trustbox accepts a new
publish and signs with notary-signer's keys, and notary-server started again on the same database
serves trustbox's new versions and signs with a key trustbox created in notary-signer's table.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.notary_stack import (
    Deployment,
    NotaryDatabase,
    database_reachable,
    have_notary_stack,
)
from tests.interop.clitools import NOTARY_PASSPHRASES, pem_public_key_id, run

pytestmark = pytest.mark.interop

GUN = "example.test/takeover/app"
NEW_GUN = "example.test/takeover/born-in-trustbox"


class Client:
    """The real notary CLI with its own trust folder, against the deployment's URL."""

    def __init__(self, home: Path, dep: Deployment) -> None:
        self.trust_dir = home / "trust"
        self.dep = dep
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TZ": "UTC", **NOTARY_PASSPHRASES}

    def run(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        res = run("notary", ["notary", "-d", str(self.trust_dir), "-s", self.dep.url, "--tlscacert",
                             str(self.dep.ca), *args], self.env, stdin=stdin)
        return res.rc, res.out + res.err

    def ok(self, *args: str, stdin: str | None = None) -> str:
        rc, out = self.run(*args, stdin=stdin)
        assert rc == 0, f"notary {' '.join(args)} failed ({rc}):\n{out}\n{self.dep.log_tails()}"
        return out

    def targets(self, gun: str) -> dict[str, str]:
        """``notary list`` as {name: sha256}."""
        rows = {}
        for line in self.ok("list", gun).splitlines():
            parts = line.split()
            if len(parts) >= 4 and len(parts[1]) == 64:
                rows[parts[0]] = parts[1]
        return rows

    def cached(self, gun: str, role: str) -> dict[str, object]:
        path = self.trust_dir / "tuf" / gun / "metadata" / f"{role}.json"
        value = json.loads(path.read_bytes())
        assert isinstance(value, dict)
        return value


class Docker:
    """The docker CLI 28 (client only: trust verbs need no daemon) with its own config folder."""

    def __init__(self, home: Path, dep: Deployment) -> None:
        self.home = home
        self.dep = dep
        hostport = dep.url.removeprefix("https://")
        tls = home / "config" / "tls" / hostport
        tls.mkdir(parents=True, exist_ok=True)
        (tls / "ca.crt").write_bytes(dep.ca.read_bytes())
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "DOCKER_CONFIG": str(home / "config"),
                    "DOCKER_CONTENT_TRUST_SERVER": dep.url, "DOCKER_HOST": f"unix://{home}/no-daemon.sock",
                    "DOCKER_CLI_HINTS": "false"}

    def inspect(self, gun: str) -> set[str]:
        """Signed tags ``docker trust inspect`` shows."""
        res = run("docker", ["docker", "trust", "inspect", gun], self.env)
        assert res.rc == 0, f"docker trust inspect failed:\n{res.describe()}\n{self.dep.log_tails()}"  # type: ignore[attr-defined]
        doc = json.loads(res.out)
        return {t["SignedTag"] for t in doc[0]["SignedTags"]}


def _log_tails(self: Deployment) -> str:
    out = []
    for log in sorted(self.root.glob("*.log")):
        out.append(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}")
    return "\n".join(out)


Deployment.log_tails = _log_tails  # type: ignore[attr-defined]


@pytest.fixture(params=["mariadb", "postgres"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    missing = have_notary_stack()
    if missing:
        pytest.skip(f"not installed: {missing}")
    reason = database_reachable(request.param)
    if reason:
        pytest.skip(reason)
    db = NotaryDatabase.create(request.param)
    dep = Deployment(tmp_path / "deployment", db)
    try:
        yield dep
    finally:
        dep.stop()
        db.drop()


def _payload(tmp: Path, name: str) -> Path:
    p = tmp / f"{name}.bin"
    p.write_bytes(f"payload {name}\n".encode() * 7)
    return p


def _signers(url: str, ca: Path, gun: str, role: str) -> set[str]:
    doc = httpx.get(f"{url}/v2/{gun}/_trust/tuf/{role}.json", verify=str(ca), timeout=10)
    assert doc.status_code == 200, doc.text
    return {s["keyid"] for s in doc.json()["signatures"]}


def test_takeover_and_back(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    owner = Client(tmp_path / "owner", dep)
    reader = Client(tmp_path / "reader", dep)

    # 1. upstream: several tags, a delegation with its own target, a server-managed snapshot
    dep.start_upstream()
    owner.ok("init", GUN)
    for tag in ("v1", "v2"):
        owner.ok("add", GUN, tag, str(_payload(tmp_path, tag)))
    owner.ok("publish", GUN)
    keydir = tmp_path / "keys"
    keydir.mkdir()
    owner.ok("key", "generate", "ecdsa", "--role", "targets/releases", "-o", str(keydir / "releases"))
    owner.ok("delegation", "add", GUN, "targets/releases", str(keydir / "releases.pem"), "--all-paths")
    owner.ok("publish", GUN)
    rel_id = pem_public_key_id(keydir / "releases.pem")
    key_pem = (keydir / "releases-key.pem").read_text().split("\n", 1)
    imported = keydir / "releases-import.pem"
    imported.write_text(f"{key_pem[0]}\npath: {rel_id}\n{key_pem[1]}")
    imported.chmod(0o600)
    owner.ok("key", "import", str(imported))
    owner.ok("add", GUN, "v3", str(_payload(tmp_path, "v3")), "--roles", "targets/releases")
    owner.ok("publish", GUN)
    owner.ok("key", "rotate", GUN, "snapshot", "-r")
    before = reader.targets(GUN)
    assert set(before) == {"v1", "v2", "v3"}
    docker = Docker(tmp_path / "docker", dep) if shutil.which("docker") else None
    if docker is not None:
        assert docker.inspect(GUN) == {"v1", "v2", "v3"}
    root_before = reader.cached(GUN, "root")
    signed = root_before["signed"]
    assert isinstance(signed, dict)
    ts_keys = signed["roles"]["timestamp"]["keyids"]
    sn_keys = signed["roles"]["snapshot"]["keyids"]
    feed_before = len(dep.db.query("SELECT id FROM changefeed"))
    signer_keys_before = {r[0] for r in dep.db.query("SELECT key_id FROM private_keys")}
    assert set(ts_keys) | set(sn_keys) <= signer_keys_before
    dep.stop()

    # 2. trustbox with the same server.json: caches carry on, same root and keys
    dep.start_trustbox()
    assert dep.running() == ["trustbox"]
    assert reader.targets(GUN) == before  # the reader's cache, no reset
    assert owner.targets(GUN) == before
    if docker is not None:  # docker's trust cache too
        assert docker.inspect(GUN) == {"v1", "v2", "v3"}
    root_now = httpx.get(f"{dep.url}/v2/{GUN}/_trust/tuf/root.json", verify=str(dep.ca), timeout=10).json()
    assert root_now == root_before
    assert _signers(dep.url, dep.ca, GUN, "timestamp") == set(ts_keys)

    # 3. a new publish: trustbox signs snapshot and timestamp with notary-signer's keys
    owner.ok("add", GUN, "v4", str(_payload(tmp_path, "v4")))
    owner.ok("publish", GUN)
    after = reader.targets(GUN)
    assert set(after) == {"v1", "v2", "v3", "v4"}
    assert _signers(dep.url, dep.ca, GUN, "timestamp") == set(ts_keys)
    assert _signers(dep.url, dep.ca, GUN, "snapshot") == set(sn_keys)
    assert reader.cached(GUN, "root") == root_before  # no rotation
    assert len(dep.db.query("SELECT id FROM changefeed")) > feed_before
    # rows as notary-server writes them: gorm timestamps and the checksum filled in
    newest = dep.db.query(f"SELECT created_at, updated_at, sha256, deleted_at FROM tuf_files WHERE gun = '{GUN}' "
                          "AND role = 'timestamp' ORDER BY version DESC LIMIT 1")[0]
    assert newest[0] is not None and newest[1] is not None and len(str(newest[2])) == 64 and newest[3] is None
    # a repository born under trustbox: its timestamp key goes into notary-signer's table
    born = Client(tmp_path / "born", dep)
    born.ok("init", NEW_GUN)
    born.ok("add", NEW_GUN, "b1", str(_payload(tmp_path, "b1")))
    born.ok("publish", NEW_GUN)
    born_ts = born.cached(NEW_GUN, "root")["signed"]["roles"]["timestamp"]["keyids"]  # type: ignore[index]
    assert set(born_ts) <= {r[0] for r in dep.db.query("SELECT key_id FROM private_keys")}
    dep.stop()

    # 4. back to notary-server on the same database: it serves trustbox's versions
    dep.start_upstream()
    assert dep.running() == ["notary-signer", "notary-server"]
    assert Client(tmp_path / "fresh", dep).targets(GUN) == after
    assert reader.targets(GUN) == after
    if docker is not None:
        assert docker.inspect(GUN) == {"v1", "v2", "v3", "v4"}
    # and signs with the key trustbox created (notary-signer decrypts trustbox's JWE)
    born.ok("add", NEW_GUN, "b2", str(_payload(tmp_path, "b2")))
    born.ok("publish", NEW_GUN)
    assert set(Client(tmp_path / "fresh2", dep).targets(NEW_GUN)) == {"b1", "b2"}
    assert _signers(dep.url, dep.ca, NEW_GUN, "timestamp") == set(born_ts)
