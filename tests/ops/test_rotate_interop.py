"""``trustbox trust key rotate`` and ``notary key rotate`` on one repository: each client follows
the other's rotations (root cross-signed by the old and new keys, targets re-signed, snapshot and
timestamp keys moved to and from the server), and docker CLI 28 reads the result; on trustbox's
trust server and on notary-server 0.7.

trustbox and notary keep separate trust dirs (separate caches, so each has to follow the root
chain from the version it trusted); the private keys are copied across after each rotation, as
an administrator would carry them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.helpers.opsenv import DOCKER, NOTARY, base_env, docker, have, notary, share_keys, tb
from trustbox.client.images.sample import write_sample_image

pytestmark = pytest.mark.interop



def _cached_root(config: Path, gun: str) -> dict:
    doc = json.loads((config / "trust" / "tuf" / gun / "metadata" / "root.json").read_text())
    return doc


def _status(env: dict[str, str], repo: str) -> dict:
    r = tb(env, "trust", "status", "--json", "--no-registry", repo)
    assert r.returncode == 0, r.stdout + r.stderr
    (doc,) = json.loads(r.stdout)
    return {x["role"]: x for x in doc["roles"]}


def test_rotations_interoperate(either_stack: Stack, tmp_path: Path) -> None:
    stack = either_stack
    for tool in (DOCKER, NOTARY):
        if not have(tool):
            pytest.skip(f"{tool} not installed")
    tcfg = tmp_path / "trustbox" / "docker-config"
    tenv = base_env(stack.trust_url, stack.ca, tcfg)
    ncfg = tmp_path / "notary" / "docker-config"
    nenv = base_env(stack.trust_url, stack.ca, ncfg)
    repo = f"{stack.registry.host}/ops/rotate"
    image = tmp_path / "image"
    top = write_sample_image(image, "latest", message="ops rotate")
    digest_hex = top.digest.split(":")[1]
    r = tb(tenv, "push", "--disable-content-trust", f"oci:{image}:latest", f"{repo}:v1")
    assert r.returncode == 0, r.stderr
    r = tb(tenv, "trust", "sign", f"{repo}:v1")
    assert r.returncode == 0, r.stdout + r.stderr
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)  # notary trusts root v1
    assert r.returncode == 0 and digest_hex in r.stdout, r.stderr
    before = _status(tenv, repo)

    # 1. trustbox rotates root and targets; notary follows the chain from root v1
    r = tb(tenv, "trust", "key", "rotate", repo, "root")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"Successfully rotated the root key of {repo}: new key ")
    rotated = _status(tenv, repo)
    assert rotated["root"]["version"] == before["root"]["version"] + 1
    assert rotated["root"]["keys"] != before["root"]["keys"]
    root = _cached_root(tcfg, repo)
    assert set(before["root"]["keys"]) <= set(root["signed"]["keys"])  # old certificate kept
    assert {s["keyid"] for s in root["signatures"]} == set(before["root"]["keys"]) | set(rotated["root"]["keys"])
    r = tb(tenv, "trust", "key", "rotate", repo, "targets")
    assert r.returncode == 0, r.stdout + r.stderr
    after = _status(tenv, repo)
    assert after["root"]["version"] == before["root"]["version"] + 2
    assert after["targets"]["keys"] != before["targets"]["keys"]
    assert after["targets"]["version"] == before["targets"]["version"] + 1
    assert after["targets"]["signed_by"] == after["targets"]["keys"]
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)
    assert r.returncode == 0 and digest_hex in r.stdout, r.stderr
    assert _cached_root(ncfg, repo)["signed"]["version"] == after["root"]["version"]

    # 2. notary rotates root, targets and (to the server, it is already there: again) snapshot
    share_keys(tcfg, ncfg)
    # notary asks to confirm a root rotation
    r = notary(nenv, stack.trust_url, stack.ca, "key", "rotate", repo, "root", stdin="yes\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Successfully rotated root key" in r.stdout, r.stdout + r.stderr
    r = notary(nenv, stack.trust_url, stack.ca, "key", "rotate", repo, "targets")
    assert r.returncode == 0, r.stdout + r.stderr
    r = notary(nenv, stack.trust_url, stack.ca, "key", "rotate", repo, "snapshot", "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    by_notary = _status(tenv, repo)  # trustbox follows root v2 -> v3
    assert by_notary["root"]["version"] > after["root"]["version"]
    assert by_notary["root"]["keys"] != after["root"]["keys"]
    assert by_notary["targets"]["keys"] != after["targets"]["keys"]
    assert by_notary["snapshot"]["keys"] != after["snapshot"]["keys"]
    assert by_notary["root"]["local_keys"] == []  # notary's new root key is not here yet
    r = tb(tenv, "trust", "inspect", f"{repo}:v1")
    assert r.returncode == 0 and digest_hex in r.stdout, r.stderr

    # 3. trustbox (with notary's keys) takes the snapshot key local, rotates the timestamp on the
    #    server, then gives the snapshot back to the server; notary follows each step
    share_keys(ncfg, tcfg)
    r = tb(tenv, "trust", "key", "rotate", repo, "snapshot")
    assert r.returncode == 0, r.stdout + r.stderr
    local = _status(tenv, repo)
    assert local["snapshot"]["local_keys"] == local["snapshot"]["keys"] == local["snapshot"]["signed_by"]
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)
    assert r.returncode == 0 and digest_hex in r.stdout, r.stderr
    r = tb(tenv, "trust", "key", "rotate", repo, "timestamp", "--server-managed")
    assert r.returncode == 0, r.stdout + r.stderr
    r = tb(tenv, "trust", "key", "rotate", repo, "snapshot", "-r")
    assert r.returncode == 0, r.stdout + r.stderr
    final = _status(tenv, repo)
    assert final["timestamp"]["keys"] != local["timestamp"]["keys"]
    assert final["snapshot"]["local_keys"] == [] and final["snapshot"]["keys"] != local["snapshot"]["keys"]
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)
    assert r.returncode == 0 and digest_hex in r.stdout, r.stderr
    assert _cached_root(ncfg, repo)["signed"]["version"] == final["root"]["version"]

    # docker CLI 28 reads the end result, fresh and from notary's cache of an older root
    for cfg in (tmp_path / "fresh" / "docker-config", ncfg):
        r = docker(base_env(stack.trust_url, stack.ca, cfg), "trust", "inspect", f"{repo}:v1")
        assert r.returncode == 0, r.stderr
        (info,) = json.loads(r.stdout)
        assert info["SignedTags"][0]["Digest"] == digest_hex


def test_rotation_refusals(stack: Stack, tmp_path: Path) -> None:
    env = base_env(stack.trust_url, stack.ca, tmp_path / "docker-config")
    repo = f"{stack.registry.host}/ops/refusals"
    for args, text in (
        (("targets", "--server-managed"), "notary does not permit the server managing the targets key"),
        (("root", "-r"), "notary does not permit the server managing the root key"),
        (("timestamp",), "notary does not permit the client managing the timestamp key"),
    ):
        r = tb(env, "trust", "key", "rotate", repo, *args)
        assert r.returncode == 1, r.stdout
        assert r.stderr.splitlines()[0] == f"Error: {text}", r.stderr
    r = tb(env, "trust", "key", "rotate", repo, "targets")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "does not have trust data" in r.stderr, r.stderr
