"""Issue 16 proof: trust data made by the real ``docker trust`` (CLI 28) and ``notary`` 0.7 clients on
upstream notary-server 0.7 behind docker token auth is exported, imported into trustbox's trust
server (and into another notary-server), and the docker config and notary clients that pinned the
repository on the source keep their caches, switch server, see the same signed tags, digests and
signers, and accept a new signature published on the new server (with no "using cached
timestamp" fallback: they really fetched and accepted the new server's data and its root rotation).
The same from ``--from-cache`` after the source server is gone, and ``--as`` to another host name."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import TokenServer
from tests.interop.servers import ServerHandle
from tests.migration.conftest import Source, need, start_source
from tests.migration.tools import (
    CACHED_TIMESTAMP,
    DOCKER_PASSPHRASES,
    NOTARY_PASSPHRASES,
    add_server_ca,
    docker_config,
    docker_ok,
    notary_ok,
    notary_rows,
    signed_tags,
    signers,
    trustbox,
    trustbox_ok,
)
from trustbox.client.trust.archive import TrustArchive
from trustbox.client.trust.importer import import_archive
from trustbox.client.trust.remote import RemoteStore
from trustbox.errors import NetworkError
from trustbox.keystore.pkcs8 import encode_key_file
from trustbox.tuf.keys import PrivateKey

pytestmark = pytest.mark.interop

GUN = "registry.example.test/team/app"
NEW_GUN = "registry.acme.internal/team/app"
LOGIN = ("alice", "alice-pw")
ADMIN = ("root", "root-pw")  # notary key rotate asks for the "*" scope


def _digest(tag: str) -> tuple[str, str]:
    body = json.dumps({"schemaVersion": 2, "annotations": {"tag": tag}}).encode()
    return hashlib.sha256(body).hexdigest(), str(len(body))


@dataclass
class History:
    """The source repository and the clients that pinned it."""

    source: Source
    root: Path
    docker_dir: Path  # the owner's docker config (keys, cache)
    pinned_v1: Path  # a notary trust dir that pinned root version 1 (before the root key rotation), untouched since
    pinned_new: Path  # a notary trust dir that pinned the rotated root
    inspect_json: str = ""
    inspect_pretty: str = ""
    notary_list: list[list[str]] = field(default_factory=list)
    snapshots: dict[str, Path] = field(default_factory=dict)

    def copy(self, name: str, what: Path) -> Path:
        """A copy of a config / trust folder as it is now (for the --from-cache scenario)."""
        dest = self.root / "copies" / name / what.name
        shutil.copytree(what, dest)
        return dest


@pytest.fixture(scope="module")
def history(token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    need("notary-server", "notary", "docker")
    root = tmp_path_factory.mktemp("migration")
    source = start_source(root / "source", token_server)
    try:
        ca = source.ca
        ddir = docker_config(root / "owner" / "docker", ca, [source.url], {"registry.example.test": LOGIN})
        h = History(source, root, ddir, root / "p1" / "trust", root / "p2" / "trust")
        keys = root / "keys"
        keys.mkdir()
        for name in ("alice", "bob"):
            docker_ok(ddir, source.url, "trust", "key", "generate", name, "--dir", str(keys))
        docker_ok(ddir, source.url, "trust", "signer", "add", "--key", str(keys / "alice.pub"), "alice", GUN)
        docker_ok(ddir, source.url, "trust", "signer", "add", "--key", str(keys / "bob.pub"), "bob", GUN)
        owner_trust = ddir / "trust"
        # a consumer pins root version 1
        notary_ok(h.pinned_v1, source.url, ca, "list", GUN, login=LOGIN)
        d1, n1 = _digest("v1")
        notary_ok(owner_trust, source.url, ca, "addhash", GUN, "v1", n1, "--sha256", d1,
                  "-r", "targets/releases", "-r", "targets/alice", "-p", login=LOGIN)
        docker_ok(ddir, source.url, "trust", "sign", f"{GUN}:v1")  # co-signed: alice and bob
        d2, n2 = _digest("v2")
        notary_ok(owner_trust, source.url, ca, "addhash", GUN, "v2", n2, "--sha256", d2,
                  "-r", "targets/releases", "-r", "targets/bob", "-p", login=LOGIN)
        # the root key is rotated (root version 2), then the timestamp key (root version 3)
        notary_ok(owner_trust, source.url, ca, "key", "rotate", GUN, "root", login=ADMIN, confirm=True)
        notary_ok(owner_trust, source.url, ca, "key", "rotate", GUN, "timestamp", "-r", login=ADMIN)
        d3, n3 = _digest("v3")
        notary_ok(owner_trust, source.url, ca, "addhash", GUN, "v3", n3, "--sha256", d3,
                  "-r", "targets/releases", "-r", "targets/alice", "-p", login=LOGIN)
        notary_ok(h.pinned_new, source.url, ca, "list", GUN, login=LOGIN)
        h.inspect_json = docker_ok(ddir, source.url, "trust", "inspect", GUN).out
        h.inspect_pretty = docker_ok(ddir, source.url, "trust", "inspect", "--pretty", GUN).out
        assert signed_tags(h.inspect_json) == {"v1": (d1, ["alice", "bob"]), "v2": (d2, ["bob"]), "v3": (d3, ["alice"])}
        h.notary_list = notary_rows(notary_ok(h.pinned_new, source.url, ca, "list", GUN, login=LOGIN).out)
        assert len(h.notary_list) == 3
        # what stays behind when the server is gone: copies of the pinned caches as they are now
        for name, what in (("docker", ddir), ("p1", h.pinned_v1), ("p2", h.pinned_new)):
            h.snapshots[name] = h.copy(name, what)
        yield h
    finally:
        source.stop()


def _check_pinned_clients(h: History, docker_dir: Path, notary_dirs: list[Path], server: ServerHandle,
                          tag: str, login: tuple[str, str] | None = None) -> None:
    """Old caches switched to ``server``: same tags, digests and signers, no cache fallback; then a
    new signature by alice published there is seen by all of them."""
    add_server_ca(docker_dir, server.url, server.ca_path)
    res = docker_ok(docker_dir, server.url, "trust", "inspect", GUN)
    assert CACHED_TIMESTAMP not in res.err, res.describe()
    assert json.loads(res.out) == json.loads(h.inspect_json)
    res = docker_ok(docker_dir, server.url, "trust", "inspect", "--pretty", GUN)
    assert CACHED_TIMESTAMP not in res.err and res.out == h.inspect_pretty, res.describe()
    for trust_dir in notary_dirs:
        res = notary_ok(trust_dir, server.url, server.ca_path, "list", GUN, login=login)
        assert CACHED_TIMESTAMP not in res.out, res.describe()
        assert notary_rows(res.out) == h.notary_list, res.describe()
    # a new signature by an existing signer (alice's key in docker's trust folder), on the new server
    digest, size = _digest(tag)
    notary_ok(docker_dir / "trust", server.url, server.ca_path, "addhash", GUN, tag, size, "--sha256", digest,
              "-r", "targets/releases", "-r", "targets/alice", "-p", login=login)
    res = docker_ok(docker_dir, server.url, "trust", "inspect", GUN)
    assert CACHED_TIMESTAMP not in res.err and signed_tags(res.out)[tag] == (digest, ["alice"]), res.describe()
    for trust_dir in notary_dirs:
        res = notary_ok(trust_dir, server.url, server.ca_path, "list", GUN, login=login)
        assert CACHED_TIMESTAMP not in res.out, res.describe()
        assert [tag, digest, size] in [r[:3] for r in notary_rows(res.out)], res.describe()


def test_export_import_keeps_pinned_clients(history: History, destinations: dict[str, ServerHandle]) -> None:
    h = history
    archive_path = h.root / "app.trust.tar"
    res = trustbox_ok(h.docker_dir, "trust", "export", GUN, "--server", h.source.url, "-o", str(archive_path))
    assert "root versions 1..3" in res.out, res.describe()
    archive = TrustArchive.read(archive_path)
    assert sorted(archive.root_versions) == [1, 2, 3]
    assert sorted(archive.delegations) == ["targets/alice", "targets/bob", "targets/releases"]
    res = trustbox_ok(h.docker_dir, "tuf", "verify", str(archive_path))
    assert "all 10 files verified" in res.out, res.describe()

    dest = destinations["trustbox"]
    add_server_ca(h.docker_dir, dest.url, dest.ca_path)
    res = trustbox_ok(h.docker_dir, "trust", "import", str(archive_path), "--server", dest.url)
    assert f"imported {GUN} to {dest.url}" in res.out, res.describe()
    # a second run finds it done
    res = trustbox_ok(h.docker_dir, "trust", "import", str(archive_path), "--server", dest.url)
    assert "already imported" in res.out, res.describe()
    _check_pinned_clients(h, h.docker_dir, [h.pinned_v1, h.pinned_new], dest, "v4")


def test_migrate_rerun_brings_new_source_signatures_to_pinned_clients(
    history: History, destinations: dict[str, ServerHandle]
) -> None:
    """``trust migrate`` (trust data only: no registries given) from notary-server, then a signature
    made on the source with ``notary`` after the migration: the next run brings it across, and a
    notary client that pinned the source (and cached its newer versions) switches to the new server
    with no cache fallback and sees it; docker trust inspect on the new server shows it. Then a
    signature made at the destination is never replaced by a later one from the source."""
    h = history
    gun = "registry.example.test/team/resync"
    src, dest = h.source, destinations["trustbox"]
    owner = h.docker_dir / "trust"
    add_server_ca(h.docker_dir, dest.url, dest.ca_path)
    docker_ok(h.docker_dir, src.url, "trust", "signer", "add", "--key", str(h.root / "keys" / "alice.pub"), "alice", gun)

    def sign(server: str, ca: Path, tag: str, login: tuple[str, str] | None, trust: Path = owner) -> tuple[str, str]:
        digest, size = _digest(tag)
        notary_ok(trust, server, ca, "addhash", gun, tag, size, "--sha256", digest,
                  "-r", "targets/releases", "-r", "targets/alice", "-p", login=login)
        return digest, size

    sign(src.url, src.ca, "r1", LOGIN)
    # the owner at the destination: the same keys and config in a folder of its own (docker and
    # notary keep one cache per repository name, whichever server they talk to)
    at_dest = h.copy("resync-docker", h.docker_dir)
    pinned = h.root / "p-resync" / "trust"
    notary_ok(pinned, src.url, src.ca, "list", gun, login=LOGIN)
    state = h.root / "resync-state.json"
    args = ("trust", "migrate", "--from-server", src.url, "--to-server", dest.url, "--state", str(state), "-q", gun)
    res = trustbox_ok(h.docker_dir, *args)
    assert res.out.strip().endswith("1 moved"), res.describe()
    d2, n2 = sign(src.url, src.ca, "r2", LOGIN)
    notary_ok(pinned, src.url, src.ca, "list", gun, login=LOGIN)  # the pinned client caches the newer versions
    res = trustbox_ok(h.docker_dir, *args)
    assert res.out.strip().endswith("1 moved") and "re-synced" in res.out, res.describe()
    res = notary_ok(pinned, dest.url, dest.ca_path, "list", gun)
    assert CACHED_TIMESTAMP not in res.out and ["r2", d2, n2] in [r[:3] for r in notary_rows(res.out)], res.describe()
    res = docker_ok(at_dest, dest.url, "trust", "inspect", gun)
    assert CACHED_TIMESTAMP not in res.err and signed_tags(res.out)["r2"] == (d2, ["alice"]), res.describe()
    # signed at the destination, then at the source: refused, nothing replaced
    sign(dest.url, dest.ca_path, "r3", None, at_dest / "trust")
    sign(src.url, src.ca, "r4", LOGIN)
    res = trustbox(h.docker_dir, *args)
    assert res.rc == 1 and "signed there after the import" in res.out + res.err, res.describe()
    res = notary_ok(pinned, dest.url, dest.ca_path, "list", gun)
    assert sorted(r[0] for r in notary_rows(res.out)) == ["r1", "r2", "r3"], res.describe()


def test_export_uses_credential_helpers(history: History) -> None:
    """The source's token auth gets the registry credentials from a docker credential helper; without
    credentials the export is refused in one line."""
    h = history
    bindir = h.root / "helper-bin"
    bindir.mkdir()
    log = h.root / "helper.log"
    helper = bindir / "docker-credential-migtest"
    helper.write_text(f"""#!/bin/sh
read server
echo "$1 $server" >> {log}
[ "$server" = registry.example.test ] || {{ echo "credentials not found in native keychain"; exit 1; }}
echo '{{"ServerURL": "registry.example.test", "Username": "alice", "Secret": "alice-pw"}}'
""")
    helper.chmod(0o755)
    cfg = docker_config(h.root / "helper" / "docker", h.source.ca, [h.source.url])
    (cfg / "config.json").write_text(json.dumps({"credHelpers": {"registry.example.test": "migtest"}}))
    path = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    res = trustbox_ok(cfg, "trust", "export", GUN, "--server", h.source.url, "-o", str(h.root / "helper.tar"),
                      extra_env=path)
    assert "root versions 1..3" in res.out and "get registry.example.test" in log.read_text(), res.describe()
    assert TrustArchive.read(h.root / "helper.tar").files == TrustArchive.read(h.root / "app.trust.tar").files
    anonymous = docker_config(h.root / "anonymous" / "docker", h.source.ca, [h.source.url])
    res = trustbox(anonymous, "trust", "export", GUN, "--server", h.source.url, "-o", str(h.root / "anon.tar"))
    assert res.rc == 1 and res.err.strip().splitlines() == [
        f"Error: cannot export {GUN} from {h.source.url.split('://')[1]}: you are not authorized to perform this "
        "operation: server returned 401."], res.describe()


def test_import_as_new_name(history: History, destinations: dict[str, ServerHandle]) -> None:
    h = history
    dest = destinations["trustbox"]
    archive_path = h.root / "app.trust.tar"
    res = trustbox_ok(h.docker_dir, "trust", "import", str(archive_path), "--server", dest.url, "--as", NEW_GUN)
    assert f"imported {NEW_GUN}" in res.out, res.describe()
    fresh = docker_config(h.root / "fresh" / "docker", dest.ca_path, [dest.url])
    res = docker_ok(fresh, dest.url, "trust", "inspect", NEW_GUN)
    assert signed_tags(res.out) == signed_tags(h.inspect_json)
    assert signers(res.out) == signers(h.inspect_json) == ["alice", "bob"]
    old, new = json.loads(h.inspect_json)[0], json.loads(res.out)[0]
    assert old["Signers"] == new["Signers"]
    # same root key, certificate re-issued for the new name: the root key ID differs, targets' does not
    admin = {a["Name"]: a["Keys"] for a in new["AdministrativeKeys"]}
    old_admin = {a["Name"]: a["Keys"] for a in old["AdministrativeKeys"]}
    assert admin["Repository"] == old_admin["Repository"] and admin["Root"] != old_admin["Root"]


def test_import_into_upstream_notary_server(history: History, destinations: dict[str, ServerHandle]) -> None:
    h = history
    dest = destinations["upstream"]
    docker_dir = h.copy("to-upstream", h.snapshots["docker"])
    pinned = h.copy("to-upstream-p1", h.snapshots["p1"])
    add_server_ca(docker_dir, dest.url, dest.ca_path)
    res = trustbox_ok(docker_dir, "trust", "import", str(h.root / "app.trust.tar"), "--server", dest.url)
    assert f"imported {GUN}" in res.out, res.describe()
    _check_pinned_clients(h, docker_dir, [pinned], dest, "v5")


def test_publisher_snapshot_key_is_kept(history: History, destinations: dict[str, ServerHandle]) -> None:
    """A repository made by ``notary init`` signs its own snapshots: the import keeps that key (only the
    timestamp key becomes the new server's) and the publisher's notary goes on signing snapshots."""
    h = history
    src, ca = h.source.url, h.source.ca
    gun = "registry.example.test/team/tool"
    owner, pinned = h.root / "tool-owner" / "trust", h.root / "tool-pinned" / "trust"
    notary_ok(owner, src, ca, "init", gun, login=LOGIN)
    d1, n1 = _digest("t1")
    notary_ok(owner, src, ca, "addhash", gun, "t1", n1, "--sha256", d1, "-p", login=LOGIN)
    notary_ok(pinned, src, ca, "list", gun, login=LOGIN)
    archive_path = h.root / "tool.tar"
    trustbox_ok(h.docker_dir, "trust", "export", gun, "--server", src, "-o", str(archive_path),
                "--trust-dir", str(h.root / "tool-export"))
    dest = destinations["trustbox"]
    trustbox_ok(h.docker_dir, "trust", "import", str(archive_path), "--server", dest.url, "--trust-dir", str(owner),
                extra_env={"NOTARY_ROOT_PASSPHRASE": NOTARY_PASSPHRASES["NOTARY_ROOT_PASSPHRASE"],
                           "NOTARY_SNAPSHOT_PASSPHRASE": NOTARY_PASSPHRASES["NOTARY_SNAPSHOT_PASSPHRASE"]})
    old = json.loads(TrustArchive.read(archive_path).files["root.json"])["signed"]["roles"]
    with httpx.Client(verify=ssl.create_default_context(cafile=str(dest.ca_path))) as http:
        new = http.get(f"{dest.url}/v2/{gun}/_trust/tuf/root.json").json()["signed"]["roles"]
    assert new["snapshot"] == old["snapshot"] and new["timestamp"] != old["timestamp"]
    res = notary_ok(pinned, dest.url, dest.ca_path, "list", gun)
    assert CACHED_TIMESTAMP not in res.out and [r[:2] for r in notary_rows(res.out)] == [["t1", d1]], res.describe()
    d2, n2 = _digest("t2")
    notary_ok(owner, dest.url, dest.ca_path, "addhash", gun, "t2", n2, "--sha256", d2, "-p")
    res = notary_ok(pinned, dest.url, dest.ca_path, "list", gun)
    assert CACHED_TIMESTAMP not in res.out and ["t2", d2] in [r[:2] for r in notary_rows(res.out)], res.describe()


def test_import_failing_half_way_is_completed_by_a_second_run(
        history: History, destinations: dict[str, ServerHandle], monkeypatch: pytest.MonkeyPatch) -> None:
    """Into a trustbox server behind docker token auth (the docker config's credentials are used)."""
    h = history
    dest = destinations["trustbox-resume"]
    docker_dir = h.copy("resume", h.snapshots["docker"])
    pinned = h.copy("resume-p1", h.snapshots["p1"])
    add_server_ca(docker_dir, dest.url, dest.ca_path)
    archive = TrustArchive.read(h.root / "app.trust.tar")
    real_post = RemoteStore.post_update
    posted: list[int] = []

    def failing_post(self: RemoteStore, parts: list[tuple[str, bytes]]) -> None:
        if len(posted) == 2:
            raise NetworkError("connection lost (test)")
        real_post(self, parts)
        posted.append(1)

    monkeypatch.setattr(RemoteStore, "post_update", failing_post)
    with pytest.raises(NetworkError, match="connection lost"):
        import_archive(archive, server_url=dest.url, trust_dir=docker_dir / "trust", ca_files=(dest.ca_path,),
                       environ={"DOCKER_CONFIG": str(docker_dir), **DOCKER_PASSPHRASES})
    monkeypatch.undo()
    assert len(posted) == 2  # two root versions are there (through token auth); no client would accept them yet
    with httpx.Client(verify=ssl.create_default_context(cafile=str(dest.ca_path))) as http:
        assert http.get(f"{dest.url}/v2/{GUN}/_trust/tuf/root.json").status_code == 401  # anonymous: refused
    res = trustbox_ok(docker_dir, "trust", "import", str(h.root / "app.trust.tar"), "--server", dest.url)
    assert f"imported {GUN}" in res.out and "publishing root version 3 " in res.err, res.describe()
    assert "publishing root version 1 " not in res.err, res.describe()
    _check_pinned_clients(h, docker_dir, [pinned], dest, "v7", login=LOGIN)


def _server_has(server: ServerHandle, gun: str) -> bool:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca_path))) as http:
        return http.get(f"{server.url}/v2/{gun}/_trust/tuf/root.json").status_code == 200


def test_root_key_refusals_and_new_root(history: History, destinations: dict[str, ServerHandle]) -> None:
    h = history
    dest = destinations["trustbox-cache"]
    archive_path = h.root / "app.trust.tar"
    nokeys = docker_config(h.root / "nokeys" / "docker", dest.ca_path, [dest.url])
    # the root key is not in this docker config: refused, the consequence of --new-root explained
    res = trustbox(nokeys, "trust", "import", str(archive_path), "--server", dest.url)
    assert res.rc == 1 and "nothing was uploaded" in res.err and "--new-root" in res.err, res.describe()
    assert f"notary -s {dest.url} list {GUN}" in res.err, res.describe()
    # a wrong root key file: refused before anything is uploaded
    wrong = h.root / "wrong-root.key"
    wrong.write_bytes(encode_key_file(PrivateKey.generate(), None, "root"))
    res = trustbox(nokeys, "trust", "import", str(archive_path), "--server", dest.url, "--root-key", str(wrong))
    assert res.rc == 1 and "is not a root key of" in res.err, res.describe()
    assert not _server_has(dest, GUN)
    # --new-root (under another name here, so the same-name import below still finds the server empty)
    other = "registry.example.test/team/newroot"
    res = trustbox_ok(nokeys, "trust", "import", str(archive_path), "--server", dest.url, "--as", other, "--new-root")
    assert "must forget the old root" in res.out and f'rm -rf "$HOME/.notary/tuf/{other}"' in res.out, res.describe()
    res = docker_ok(nokeys, dest.url, "trust", "inspect", other)
    assert signed_tags(res.out) == signed_tags(h.inspect_json)


def test_from_cache_after_the_source_is_gone(history: History, destinations: dict[str, ServerHandle]) -> None:
    h = history
    h.source.stop()
    docker_dir = h.snapshots["docker"]
    res = trustbox(docker_dir, "trust", "export", GUN, "--server", h.source.url, "-o", str(h.root / "x.tar"))
    assert res.rc != 0 and len(res.err.strip().splitlines()) == 1 and res.err.startswith("Error: "), res.describe()
    cached = h.root / "cached.trust.tar"
    res = trustbox_ok(docker_dir, "trust", "export", GUN, "--from-cache", "-o", str(cached))
    archive = TrustArchive.read(cached)
    assert sorted(archive.root_versions) == [3]
    assert sorted(archive.delegations) == ["targets/alice", "targets/bob", "targets/releases"]
    dest = destinations["trustbox-cache"]
    add_server_ca(docker_dir, dest.url, dest.ca_path)
    res = trustbox_ok(docker_dir, "trust", "import", str(cached), "--server", dest.url)
    assert f"imported {GUN}" in res.out, res.describe()
    # a cache holds only the newest root: clients that pinned a root from before the root key rotation
    # (p1) cannot be served by a cache export (docs/migrate.md); those pinned after it can
    _check_pinned_clients(h, docker_dir, [h.snapshots["p2"]], dest, "v6")
