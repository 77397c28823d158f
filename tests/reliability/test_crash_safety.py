"""Crash safety: SIGKILL the real servers at random (seeded) moments under 50 concurrent writers,
restart them on the same data, and prove that nothing acknowledged was lost, nothing half-written
is visible, and the servers still work.

notary-server and registry:2 are the anchors; trustbox must hold where they promise nothing.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.crashlib import (  # noqa: E402
    KillableServer,
    RegistryLoop,
    TrustLoop,
    retrying,
    run_with_kills,
    sha256,
)
from trustbox.tuf.metadata import Metadata, Snapshot, Timestamp  # noqa: E402
from trustbox.tuf.timefmt import utcnow  # noqa: E402
from trustbox.tuf.verify import TrustedCollection  # noqa: E402

pytestmark = pytest.mark.slow

LOOPS = 50
KILLS = 3
SEED = int(os.environ.get("TRUSTBOX_CRASH_SEED", "20240607"))
PG_ADMIN_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


# -- trust server -------------------------------------------------------------------------------


def _pg_admin() -> str | None:
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return None
    for url in PG_ADMIN_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error:
            continue
    return None


@pytest.fixture(params=["sqlite", "postgres"])
def trust_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/trust.db"
        return
    admin = _pg_admin()
    if admin is None:
        pytest.skip("PostgreSQL on 127.0.0.1:5432 is not reachable")
    import psycopg

    name = f"tb_crash_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _get(c: httpx.Client, url: str) -> httpx.Response:
    return retrying(lambda: c.get(url))


def _check_gun(base: str, loop: TrustLoop) -> list[str]:
    """Problems with one GUN after the crashes (empty list: all good)."""
    problems: list[str] = []
    gun = loop.gun
    tuf = f"{base}/v2/{gun}/_trust/tuf/"
    with httpx.Client(timeout=30) as c:
        if not loop.acked:
            return problems
        last_acked = max(loop.acked)
        # nothing acknowledged lost: every acked targets version is served byte for byte
        for v, data in loop.acked.items():
            r = _get(c, f"{tuf}{v}.targets.json")
            if r.status_code != 200 or r.content != data:
                problems.append(f"{gun}: acknowledged targets v{v} not served ({r.status_code})")
        # the current chain verifies in TUF order
        root, ts, snap, targets = (_get(c, f"{tuf}{role}.json") for role in
                                   ("root", "timestamp", "snapshot", "targets"))
        for role, r in (("root", root), ("timestamp", ts), ("snapshot", snap), ("targets", targets)):
            if r.status_code != 200:
                problems.append(f"{gun}: current {role} missing ({r.status_code})")
        if problems:
            return problems
        if root.content != loop.root:
            problems.append(f"{gun}: served root differs from the one published")
        tc = TrustedCollection(gun, root.content, utcnow())
        try:
            tc.update_timestamp(ts.content)
            tc.update_snapshot(snap.content)
            current = tc.update_targets(targets.content)
        except Exception as exc:
            return [f"{gun}: current chain does not verify: {exc!r}"]
        cur_v = current.signed.version
        if cur_v < last_acked:
            problems.append(f"{gun}: current targets v{cur_v} older than acknowledged v{last_acked}")
        if cur_v > loop.attempted:
            problems.append(f"{gun}: current targets v{cur_v} was never sent (sent up to v{loop.attempted})")
        if cur_v in loop.acked and targets.content != loop.acked[cur_v]:
            problems.append(f"{gun}: current targets v{cur_v} differs from what was acknowledged")
        # no role version without its siblings from the same update: every stored targets
        # version is listed by a stored snapshot, which a stored timestamp lists
        snapshots: list[tuple[int, bytes]] = []
        v = 1
        while True:
            r = _get(c, f"{tuf}{v}.snapshot.json")
            if r.status_code != 200:
                break
            snapshots.append((v, r.content))
            v += 1
        latest_snap = Metadata.parse(snap.content, "snapshot", Snapshot).signed.version
        if not snapshots or snapshots[-1][0] != latest_snap:
            problems.append(f"{gun}: snapshot versions not contiguous up to the current v{latest_snap}")
        listed_targets = {Metadata.parse(b, "snapshot", Snapshot).signed.meta["targets"].hashes["sha256"].hex()
                          for _v, b in snapshots}
        snap_hashes = {sha256(b) for _v, b in snapshots}
        ts_listed: set[str] = set()
        v = 1
        while True:
            r = _get(c, f"{tuf}{v}.timestamp.json")
            if r.status_code != 200:
                break
            ts_listed.add(Metadata.parse(r.content, "timestamp", Timestamp).signed.meta["snapshot"].hashes["sha256"].hex())
            v += 1
        for sv, b in snapshots:
            if sha256(b) not in ts_listed:
                problems.append(f"{gun}: snapshot v{sv} is listed by no stored timestamp")
        for tv in range(1, cur_v + 1):
            r = _get(c, f"{tuf}{tv}.targets.json")
            if r.status_code == 200 and sha256(r.content) not in listed_targets:
                problems.append(f"{gun}: targets v{tv} stored without a snapshot listing it")
            if r.status_code == 200 and tv not in loop.acked and tv > loop.attempted:
                problems.append(f"{gun}: targets v{tv} stored but never sent")
        if ts_listed - snap_hashes:
            problems.append(f"{gun}: a stored timestamp lists a snapshot that is not stored")
    return problems


def test_trust_server_survives_sigkill(trust_db: str, tmp_path: Path) -> None:
    server = KillableServer(["trust", "--db", trust_db],
                            {"TRUSTBOX_KEY_PASSPHRASE": "crash test passphrase " + "x" * 16},
                            "/_notary_server/health")
    server.start()
    try:
        loops = [TrustLoop(server.url, f"example.com/crash/repo{i}", SEED + i) for i in range(LOOPS)]
        run_with_kills(server, list(loops), seed=SEED, kills=KILLS, min_gap=0.8, max_gap=2.5, tail=1.0)
        assert server.kills == KILLS
        acked = sum(len(lp.acked) for lp in loops)
        unknown = sum(lp.attempted - len(lp.acked) for lp in loops)
        print(f"trust: {acked} acknowledged updates, {unknown} with unknown outcome, {server.kills} kills")
        assert acked >= LOOPS, f"too few acknowledged updates to prove anything: {acked}"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            problems = [p for ps in pool.map(lambda lp: _check_gun(server.url, lp), loops) for p in ps]
        assert not problems, "\n".join(problems[:40])
        # and it still serves: a new repository publishes
        fresh = TrustLoop(server.url, "example.com/crash/after", SEED - 1)
        stop = threading.Event()
        threading.Timer(1.0, stop.set).start()
        fresh(stop)
        assert len(fresh.acked) >= 1 and not fresh.refused
        assert not _check_gun(server.url, fresh)
    finally:
        server.stop()


# -- registry -----------------------------------------------------------------------------------


@pytest.fixture(params=["fs", "s3"])
def registry_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    if request.param == "fs":
        yield ["--storage", str(tmp_path / "store")], {}
        return
    from moto.server import ThreadedMotoServer

    from tests.reliability.crashlib import free_port

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        import boto3

        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="crash")
        spool = tmp_path / "spool"
        cfg = tmp_path / "reg.json"
        # the layout is named: with "auto" every restart lists the bucket before it serves, and
        # moto (not a real store) can stall for a minute on a connection whose client was SIGKILLed
        # mid-request, which this test does on purpose (the layout choice has its own tests)
        cfg.write_text(json.dumps({"spool_dir": str(spool), "s3_region": "us-east-1", "layout": "trustbox"}))
        yield ["--storage", "s3://crash/reg", "--s3-endpoint-url", endpoint, "--config", str(cfg)], env
    finally:
        moto.stop()


def _check_repo(base: str, loop: RegistryLoop) -> list[str]:
    problems: list[str] = []
    repo = loop.repo
    with httpx.Client(timeout=60) as c:
        for d, size in loop.acked_blobs.items():
            r = _get(c, f"{base}/v2/{repo}/blobs/{d}")
            if r.status_code != 200:
                problems.append(f"{repo}: acknowledged blob {d} not served ({r.status_code})")
            elif len(r.content) != size or "sha256:" + hashlib.sha256(r.content).hexdigest() != d:
                problems.append(f"{repo}: acknowledged blob {d} served corrupted ({len(r.content)} of {size})")
        for d in loop.unacked_blobs - set(loop.acked_blobs):
            h = _get(c, f"{base}/v2/{repo}/blobs/{d}")
            if h.status_code == 404:
                continue
            r = _get(c, f"{base}/v2/{repo}/blobs/{d}")
            if h.status_code != 200 or r.status_code != 200 or "sha256:" + sha256(r.content) != d:
                problems.append(f"{repo}: unacknowledged blob {d} visible but not complete "
                                f"(HEAD {h.status_code}, GET {r.status_code}, {len(r.content)} bytes)")
        for tag, (d, body) in loop.acked_manifests.items():
            for ref in (tag, d):
                r = _get(c, f"{base}/v2/{repo}/manifests/{ref}")
                if r.status_code != 200 or r.content != body:
                    problems.append(f"{repo}: acknowledged manifest {ref} not served intact ({r.status_code})")
        for tag, d in loop.unacked_manifests.items():
            r = _get(c, f"{base}/v2/{repo}/manifests/{tag}")
            if r.status_code == 200 and "sha256:" + sha256(r.content) != d:
                problems.append(f"{repo}: unacknowledged manifest {tag} visible with wrong content")
            elif r.status_code not in (200, 404):
                problems.append(f"{repo}: unacknowledged manifest {tag}: {r.status_code}")
    return problems


def test_registry_survives_sigkill(registry_storage: tuple[list[str], dict[str, str]]) -> None:
    args, env = registry_storage
    server = KillableServer(["registry", *args], env, "/v2/")
    server.start()
    try:
        loops = [RegistryLoop(server.url, f"crash/repo{i}", SEED + i, max_size=3 << 20) for i in range(LOOPS)]
        run_with_kills(server, list(loops), seed=SEED, kills=KILLS, min_gap=1.5, max_gap=3.5, tail=1.0)
        assert server.kills == KILLS
        blobs = sum(len(lp.acked_blobs) for lp in loops)
        manifests = sum(len(lp.acked_manifests) for lp in loops)
        unknown = sum(len(lp.unacked_blobs) for lp in loops)
        print(f"registry: {blobs} blobs and {manifests} manifests acknowledged, {unknown} blobs unacknowledged")
        assert blobs >= LOOPS and manifests >= 1, (blobs, manifests)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            problems = [p for ps in pool.map(lambda lp: _check_repo(server.url, lp), loops) for p in ps]
        assert not problems, "\n".join(problems[:40])
        # new uploads work
        fresh = RegistryLoop(server.url, "crash/after", SEED - 1, max_size=1 << 20)
        stop = threading.Event()
        threading.Timer(1.0, stop.set).start()
        fresh(stop)
        assert fresh.acked_manifests and not fresh.unacked_blobs
        assert not _check_repo(server.url, fresh)
    finally:
        server.stop()
