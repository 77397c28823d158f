"""Atomicity, concurrent writers, replicas sharing one database, re-signing on read."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tests.helpers.simulator import target
from tests.trustserver.ts_asgi import ASGIClient
from tests.trustserver.ts_env import make_app
from tests.trustserver.ts_helpers import GUN, error, post, publish_new, tuf
from trustbox.tuf.metadata import Metadata, Snapshot, Timestamp


@pytest.fixture
def replicas(backend, clock):
    """Two server instances (own caches, own connections) over one database."""
    apps = [make_app(backend, clock), make_app(backend, clock)]
    clients = [ASGIClient(a) for a in apps]
    yield clients
    for c in clients:
        c.close()
    for a in apps:
        a.close()


def test_concurrent_updates_exactly_one_wins(replicas):
    a, b = replicas
    repo = publish_new(a)
    for round_ in range(4):
        version = 3 + round_
        bodies = []
        for name in ("left", "right"):
            repo.make_targets({name: target(name.encode())}, version=version)
            bodies.append({"targets": repo.docs["targets"], "snapshot": repo.make_snapshot(version=version)})
        results: list = [None, None]

        def run(i, client, results=results, bodies=bodies):
            results[i] = post(client, GUN, bodies[i])

        threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 400], [r.text for r in results]
        loser = next(r for r in results if r.status_code == 400)
        assert error(loser)["code"] == "VERSION"
        winner = next(i for i, r in enumerate(results) if r.status_code == 200)
        # both replicas serve the winner's targets, and the timestamp chain has no gap
        for c in (a, b):
            assert c.get(tuf(GUN, "targets.json")).content == bodies[winner]["targets"]
            ts = Metadata.parse(c.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
            assert ts.signed.version == 2 + round_
        repo.docs["targets"] = bodies[winner]["targets"]


def test_replica_sees_publish_immediately(replicas):
    a, b = replicas
    repo = publish_new(a)
    old_ts = b.get(tuf(GUN, "timestamp.json")).content  # now cached in b
    old_targets = b.get(tuf(GUN, "targets.json")).content
    assert b.get(tuf(GUN, "timestamp.json")).content == old_ts
    r = post(a, GUN, {"targets": repo.make_targets({"new": target(b"n")}, version=3), "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200
    new_ts = b.get(tuf(GUN, "timestamp.json")).content
    assert new_ts != old_ts
    assert Metadata.parse(new_ts, expect=Timestamp).signed.version == 2
    assert b.get(tuf(GUN, "targets.json")).content == repo.docs["targets"] != old_targets
    # deletion is visible too
    assert a.delete(tuf(GUN, "")).status_code == 200
    assert b.get(tuf(GUN, "timestamp.json")).status_code == 404
    assert b.get(tuf(GUN, "targets.json")).status_code == 404


def test_atomic_update_nothing_half_written(client):
    repo = publish_new(client)
    good_targets = repo.make_targets({"v9": target(b"9")}, version=3)
    bad_snapshot = repo.make_snapshot(key=repo.targets_key, version=3)  # wrong signer
    r = post(client, GUN, {"targets": good_targets, "snapshot": bad_snapshot})
    assert r.status_code == 400
    assert client.get(tuf(GUN, "3.targets.json")).status_code == 404
    assert client.get(tuf(GUN, "2.timestamp.json")).status_code == 404


def test_timestamp_resigned_when_due(client, clock):
    publish_new(client)
    first = Metadata.parse(client.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
    clock.offset = timedelta(days=13, hours=23, minutes=30)  # within the re-sign margin of 14 days
    r = client.get(tuf(GUN, "timestamp.json"))
    second = Metadata.parse(r.content, expect=Timestamp)
    assert second.signed.version == first.signed.version + 1
    assert second.signed.expires > first.signed.expires
    assert second.signed.snapshot_meta.hashes == first.signed.snapshot_meta.hashes
    # stored: served again unchanged, and by version
    assert client.get(tuf(GUN, "timestamp.json")).content == r.content
    assert client.get(tuf(GUN, "2.timestamp.json")).content == r.content
    # and recorded in the changefeed
    feed = client.get("/v2/_trust/changefeed?change_id=-1&records=-1").json()
    assert feed["records"][0]["Version"] == 2


def test_server_snapshot_resigned_when_expired(client, clock):
    repo = publish_new(client, server_snapshot=True)
    snap1 = Metadata.parse(client.get(tuf(GUN, "snapshot.json")).content, expect=Snapshot)
    clock.offset = timedelta(days=3 * 365 + 1)
    ts = Metadata.parse(client.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
    snap_bytes = client.get(tuf(GUN, "snapshot.json")).content
    snap2 = Metadata.parse(snap_bytes, expect=Snapshot)
    assert snap2.signed.version == snap1.signed.version + 1
    assert snap2.signed.meta["targets"].matches(repo.docs["targets"])
    assert ts.signed.snapshot_meta.matches(snap_bytes)


def test_client_snapshot_not_resigned(client, clock):
    publish_new(client)
    snap = client.get(tuf(GUN, "snapshot.json")).content
    clock.offset = timedelta(days=3 * 365 + 1)
    ts = Metadata.parse(client.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
    assert ts.signed.version == 2  # the timestamp itself had expired
    assert client.get(tuf(GUN, "snapshot.json")).content == snap  # the server cannot sign it


def test_quick_freshness_check_agrees_with_the_full_one(app, client, clock, monkeypatch):
    """The JSON-only look at the stored timestamp/snapshot serves exactly what the typed path would,
    and steps aside (None) once anything is within the re-sign margin."""
    publish_new(client)
    service = app.service
    ts_file = service.storage.get_current(GUN, "timestamp")
    assert ts_file is not None
    quick = {role: service._fresh_server_signed(GUN, role, ts_file) for role in ("timestamp", "snapshot")}
    monkeypatch.setattr(service, "_fresh_server_signed", lambda *_args: None)  # the typed path only
    for role, doc in quick.items():
        assert doc is not None
        assert doc == service._current_server_signed(GUN, role)
    monkeypatch.undo()
    clock.offset = timedelta(days=13, hours=23, minutes=30)
    assert service._fresh_server_signed(GUN, "timestamp", ts_file) is None
