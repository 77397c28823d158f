"""Server-side properties the notary client relies on beyond one request/response.

* parallel publishers to different repositories (and one shared one) all land, on every server;
* trustbox keeps repositories and its server-held keys across a restart (upstream's memory storage
  cannot, so that test runs on the trustbox variants only).
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .clitools import NotaryClient, parse_list, sha256_file
from .servers import create_pg_database, make_tls, pg_reachable, start_trustbox

pytestmark = pytest.mark.interop


def _payload(d: Path, name: str) -> Path:
    p = d / f"{name}.txt"
    p.write_text(f"payload {name}\n")
    return p


def test_parallel_publishers(trust_server, workdir, notary_bin):
    """8 owners publish to 8 repositories at the same time, twice each; every fresh list is exact."""
    pay = workdir / "payload"
    pay.mkdir()

    def owner_flow(i: int) -> str | None:
        gun = f"example.test/parallel/repo{i}"
        owner = NotaryClient(workdir / f"owner{i}", trust_server)
        steps = [("init", gun)]
        for n in (f"a{i}", f"b{i}"):
            steps.append(("add", gun, n, str(_payload(pay, n))))
            steps.append(("publish", gun))
        for args in steps:
            res = owner.run(args[0], *args)
            if res.rc != 0:
                return res.describe()
        res = NotaryClient(workdir / f"fresh{i}", trust_server).run("list", "list", gun)
        want = {n: (sha256_file(pay / f"{n}.txt"), (pay / f"{n}.txt").stat().st_size, "targets") for n in (f"a{i}", f"b{i}")}
        if parse_list(res.out) != want:
            return f"repo{i}: fresh list wants {want}\n{res.describe()}"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        errors = [e for e in pool.map(owner_flow, range(8)) if e]
    assert not errors, f"{trust_server.name}: parallel publishes failed:\n" + "\n\n".join(errors)


@pytest.mark.parametrize("variant", ["trustbox-sqlite", "trustbox-postgres"])
def test_trustbox_restart_keeps_repositories_and_keys(variant, workdir, notary_bin):
    if variant == "trustbox-postgres":
        reason = pg_reachable()
        if reason:
            pytest.skip(reason)
    tls = make_tls(workdir / "tls")
    drop = None
    env = {"TRUSTBOX_KEY_PASSPHRASE": "restart-" + secrets.token_hex(8)}
    if variant == "trustbox-sqlite":
        db = f"sqlite:///{workdir / 'db' / 'trust.db'}"
        (workdir / "db").mkdir()
        env = {}
    else:
        db, drop = create_pg_database()
    gun = "example.test/restart/app"
    pay = workdir / "payload"
    pay.mkdir()
    handles = []
    try:
        server = start_trustbox(workdir / "run1", tls, db, name=f"{variant}-1", extra_env=env)
        handles.append(server)
        owner = NotaryClient(workdir / "owner", server)
        owner.ok("init", "init", gun)
        owner.ok("add", "add", gun, "v1", str(_payload(pay, "v1")))
        owner.ok("publish", "publish", gun)
        owner.ok("rotate snapshot", "key", "rotate", gun, "snapshot", "-r")  # the server holds snapshot + timestamp
        server.stop()

        server = start_trustbox(workdir / "run2", tls, db, name=f"{variant}-2", extra_env=env)
        handles.append(server)
        res = NotaryClient(workdir / "fresh1", server).run("list after restart", "list", gun)
        assert set(parse_list(res.out)) == {"v1"}, f"after a restart the repository must still be there:\n{res.describe()}"
        owner = NotaryClient(workdir / "owner", server)
        owner.ok("add v2", "add", gun, "v2", str(_payload(pay, "v2")))
        res = owner.run("publish after restart", "publish", gun)
        assert res.rc == 0, (
            "publishing after a restart must work (the server signs snapshot/timestamp with its stored keys):\n"
            + res.describe()
        )
        res = NotaryClient(workdir / "fresh2", server).run("list", "list", gun)
        assert set(parse_list(res.out)) == {"v1", "v2"}, res.describe()
    finally:
        for h in handles:
            h.stop()
        if drop:
            drop()
