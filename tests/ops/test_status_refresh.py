"""Proof of issue 20's acceptance: a repository whose targets role expires in 10 days shows the
warning in ``trustbox trust status`` (exit 1), amber on the trust server's web page and in its
expiry gauge; after ``trustbox trust refresh`` it does not (exit 0, "ok" on the page, the gauge
past 30 days), and the real docker CLI 28 (``docker trust inspect``) and ``notary list`` accept
the new version, also from a cache holding the old one.

The repository is made with the time pinned (``TRUSTBOX_TRUST_NOW``) 1085 days back, so its
targets (3 years) expires 10 days from the real now; the servers run on the real clock.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import Stack
from tests.helpers.opsenv import DOCKER, NOTARY, base_env, days_ago, docker, have, notary, rfc3339, tb
from trustbox.client.images.sample import write_sample_image
from trustbox.tuf.timefmt import parse_time

pytestmark = pytest.mark.interop



def _targets_doc(config: Path, gun: str) -> dict:
    return json.loads((config / "trust" / "tuf" / gun / "metadata" / "targets.json").read_text())["signed"]


DAY = 86400.0


def _page_targets_class(stack: Stack, repo: str) -> str:
    """The expiry class (ok / soon / expired) of the targets row on the trust server's web page."""
    with httpx.Client(verify=str(stack.ca), timeout=30) as c:
        r = c.get(f"{stack.trust_url}/_trustbox/repo/{repo}")
    assert r.status_code == 200, r.text
    m = re.search(r'<tr data-role="targets">.*?data-expiry="(\w+)"', r.text, re.S)
    assert m is not None, r.text
    return m.group(1)


def _targets_expiry_gauge(stack: Stack) -> float:
    """``trustbox_trust_earliest_expiry_seconds{role="targets"}`` of the trust server (every
    repository of this package's stack; the others' targets expire in years)."""
    with httpx.Client(verify=str(stack.ca), timeout=30) as c:
        text = c.get(f"{stack.trust_url}/metrics").text
    m = re.search(r'^trustbox_trust_earliest_expiry_seconds\{role="targets"\} (\S+)$', text, re.M)
    assert m is not None, text
    return float(m.group(1))


def test_expiring_targets_warned_then_refreshed(stack: Stack, tmp_path: Path) -> None:
    for tool in (DOCKER, NOTARY):
        if not have(tool):
            pytest.skip(f"{tool} not installed")
    cfg = tmp_path / "admin" / "docker-config"
    env = base_env(stack.trust_url, stack.ca, cfg)
    repo = f"{stack.registry.host}/ops/expiring"
    image = tmp_path / "image"
    top = write_sample_image(image, "latest", message="ops expiring")
    for tag in ("v1", "unsigned"):
        r = tb(env, "push", "--disable-content-trust", f"oci:{image}:latest", f"{repo}:{tag}")
        assert r.returncode == 0, r.stderr
    # sign as of 1085 days ago: targets expires in 10 days
    r = tb(env, "trust", "sign", f"{repo}:v1", TRUSTBOX_TRUST_NOW=rfc3339(days_ago(1085)))
    assert r.returncode == 0, r.stdout + r.stderr

    # docker and notary read the repository now (their caches hold the expiring version)
    dcfg = tmp_path / "docker" / "docker-config"
    denv = base_env(stack.trust_url, stack.ca, dcfg)
    r = docker(denv, "trust", "inspect", f"{repo}:v1")
    assert r.returncode == 0, r.stderr
    old = _targets_doc(dcfg, repo)
    ncfg = tmp_path / "notary" / "docker-config"
    nenv = base_env(stack.trust_url, stack.ca, ncfg)
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)
    assert r.returncode == 0, r.stderr

    # status: the warning, exit 1; the unsigned tag
    r = tb(env, "trust", "status", repo)
    assert r.returncode == 1, r.stdout + r.stderr
    warning = [line for line in r.stdout.splitlines() if line.startswith("Warning:") and " targets expires in " in line]
    assert len(warning) == 1, r.stdout
    assert "expires in 9.9" in warning[0] or "expires in 10.0" in warning[0]
    assert "Unsigned tags in the registry: unsigned" in r.stdout
    r = tb(env, "trust", "status", "--json", repo)
    assert r.returncode == 1
    (doc,) = json.loads(r.stdout)
    roles = {x["role"]: x for x in doc["roles"]}
    assert set(roles) == {"root", "targets", "snapshot", "timestamp"}
    assert roles["targets"]["state"] == "expiring" and 9.5 < roles["targets"]["days_left"] < 10.5
    assert roles["targets"]["version"] == old["version"]
    assert roles["targets"]["signed_by"] == roles["targets"]["local_keys"] == roles["targets"]["keys"]
    assert roles["root"]["state"] == "ok" and roles["timestamp"]["state"] == "ok"
    assert doc["unsigned_tags"] == ["unsigned"]
    assert [t["tag"] for t in doc["signed_tags"]] == ["v1"]
    assert doc["signed_tags"][0]["digest"] == top.digest and doc["signed_tags"][0]["in_registry"] is True
    assert doc["last_change"] and doc["last_change"]["GUN"] == repo
    # judged 20 days later: targets and timestamp expired, reported (exit 2), not a failure to read
    r = tb(env, "trust", "status", "--json", "--no-registry", "--at", rfc3339(days_ago(-20)), repo)
    assert r.returncode == 2, r.stdout + r.stderr
    (late,) = json.loads(r.stdout)
    states = {x["role"]: x["state"] for x in late["roles"]}
    assert states == {"root": "ok", "targets": "expired", "snapshot": "ok", "timestamp": "expired"}
    assert late["status"] == "error" and any(" targets expired at " in e for e in late["errors"])
    r = tb(env, "trust", "status", "--no-registry", "--at", rfc3339(days_ago(-20)), repo)
    assert r.returncode == 2 and f"Error: {repo}: targets expired at " in r.stdout
    # a narrower window: fine
    r = tb(env, "trust", "status", "--warn", "5", "--no-registry", repo)
    assert r.returncode == 0, r.stdout

    # refresh of data that has already expired: refused, like any read (one line, nothing sent)
    r = tb(env, "trust", "refresh", repo, TRUSTBOX_TRUST_NOW=rfc3339(days_ago(-20)))
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"Error: failed to refresh {repo}: ") and "expired" in r.stderr, r.stderr

    # the trust server's page shows the targets row amber, its metrics the expiry within 10 days
    assert _page_targets_class(stack, repo) == "soon"
    assert _targets_expiry_gauge(stack) <= 10 * DAY

    # refresh: targets re-signed, same content, version + 1, new expiry
    r = tb(env, "trust", "refresh", repo, "--within", "30")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"{repo}: re-signed targets"
    r = tb(env, "trust", "status", repo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Warning" not in r.stdout
    # ... and neither does the page, nor (once the inventory is rescanned, <= 5 s after a write) the metrics
    assert _page_targets_class(stack, repo) == "ok"
    deadline = time.monotonic() + 30
    while _targets_expiry_gauge(stack) <= 30 * DAY:
        assert time.monotonic() < deadline, "the targets expiry gauge still shows the old version"
        time.sleep(1)
    # nothing left to do, also for every repository these keys administer (--all; status without names)
    r = tb(env, "trust", "refresh", repo)
    assert r.returncode == 0 and "nothing expires within 30 days" in r.stdout
    r = tb(env, "trust", "refresh", "--all")
    assert r.returncode == 0 and r.stdout == f"{repo}: nothing expires within 30 days\n", r.stdout + r.stderr
    r = tb(env, "trust", "status", "--no-registry")
    assert r.returncode == 0 and r.stdout.startswith(f"Repository {repo} (trust server {stack.trust_url})"), r.stdout

    # docker (cached old version) and notary accept the new version
    r = docker(denv, "trust", "inspect", f"{repo}:v1")
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout)
    assert info["SignedTags"][0]["Digest"] == top.digest.split(":")[1]
    new = _targets_doc(dcfg, repo)
    assert new["version"] == old["version"] + 1
    assert new["targets"] == old["targets"]
    expires = parse_time(new["expires"])
    assert expires > datetime.now(UTC) + timedelta(days=1000)
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)
    assert r.returncode == 0, r.stderr
    assert "v1" in r.stdout and top.digest.split(":")[1] in r.stdout
    # a fresh docker config (TOFU of the refreshed repository)
    r = docker(base_env(stack.trust_url, stack.ca, tmp_path / "fresh" / "docker-config"), "trust", "inspect", f"{repo}:v1")
    assert r.returncode == 0, r.stderr
