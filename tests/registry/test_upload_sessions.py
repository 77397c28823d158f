"""Upload sessions: idle ones expire, and the cap on open sessions is per user (per repository
without auth), so nobody's pile of idle sessions refuses anyone else's push.

Time is injected (``UploadStore.clock`` is moved forward), nothing sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.auth.helpers import issuer_and_verifier
from trustbox.auth.scopes import repository
from trustbox.cli import cli
from trustbox.registry.config import load_config
from trustbox.registry.uploads import UploadStore

from .conftest import SERVICE, Reg, build_reg, error_code, make_bucket, token_config

TIMEOUT = 100


class Clock:
    """Wall-clock time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


def uploads_of(reg: Reg) -> UploadStore:
    store = reg.c.app.state.registry.uploads
    assert isinstance(store, UploadStore)
    return store


def with_clock(reg: Reg) -> Clock:
    clock = Clock()
    uploads_of(reg).clock = clock
    return clock


def spool_entries(reg: Reg) -> list[str]:
    spool = Path(reg.driver.spool_dir)
    return sorted(p.name for p in spool.iterdir()) if spool.is_dir() else []


def stored_sessions(reg: Reg) -> set[str]:
    return {key.split("/")[1] for key, _ in reg.driver.walk("uploads")} if not reg.driver.cheap_io else set()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def start(reg: Reg, repo: str, headers: dict[str, str] | None = None) -> str:
    r = reg.post(f"/v2/{repo}/blobs/uploads/", headers=headers or {})
    assert r.status_code == 202, r.text
    return str(r.headers["location"])


def patch(reg: Reg, location: str, data: bytes, offset: int = 0) -> Any:
    return reg.patch(location, content=data, headers={"Content-Range": f"{offset}-{offset + len(data) - 1}"})


def test_an_idle_session_expires(storage_spec: dict[str, Any]) -> None:
    reg = build_reg(storage_spec, upload_idle_timeout=TIMEOUT)
    clock = with_clock(reg)
    loc = start(reg, "a")
    assert patch(reg, loc, b"first").status_code == 202
    clock.skew = TIMEOUT - 10  # quiet, but not for long enough
    r = patch(reg, loc, b"second", 5)
    assert r.status_code == 202, r.text
    clock.skew = TIMEOUT * 3  # nothing since the second chunk for far too long
    r = patch(reg, loc, b"third", 11)
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    assert "expired" in r.json()["errors"][0]["message"]
    assert reg.get(loc).status_code == 404
    assert spool_entries(reg) == [] and stored_sessions(reg) == set()


def age(reg: Reg, location: str, seconds: float) -> None:
    """Make a local session look untouched for ``seconds`` (its files' modification times)."""
    d = Path(reg.driver.spool_dir) / location.rsplit("/", 1)[1]
    then = time.time() - seconds
    for p in [*d.iterdir(), d]:
        os.utime(p, (then, then))


def test_idle_sessions_of_everyone_are_purged_and_busy_ones_kept(fsreg: Reg) -> None:
    reg = build_reg({"storage": str(Path(fsreg.driver.spool_dir).parent)}, upload_idle_timeout=TIMEOUT)
    uploads = uploads_of(reg)
    clock = with_clock(reg)
    idle = [start(reg, repo) for repo in ("a", "a", "b")]
    assert patch(reg, idle[0], os.urandom(1000)).status_code == 202
    busy, fresh = start(reg, "a"), start(reg, "c")
    for loc in [*idle, busy]:
        age(reg, loc, TIMEOUT + 5)
    age(reg, fresh, TIMEOUT / 2)

    async def purge_while_busy() -> list[str]:
        async with uploads.lock(busy.rsplit("/", 1)[1]):  # a request here is in the middle of a chunk
            return await uploads.purge_idle(force=True)

    removed = asyncio.run(purge_while_busy())
    assert sorted(removed) == sorted(loc.rsplit("/", 1)[1] for loc in idle)
    assert set(spool_entries(reg)) - {".owners"} == {loc.rsplit("/", 1)[1] for loc in (busy, fresh)}
    for loc in idle:
        assert reg.get(loc).status_code == 404
    assert reg.get(fresh).status_code == 204
    # the periodic purge, started by a new session once it is due, takes the one no longer busy
    clock.skew = uploads.purge_interval + 1
    new = start(reg, "d")
    assert set(spool_entries(reg)) - {".owners"} == {loc.rsplit("/", 1)[1] for loc in (fresh, new)}
    assert reg.get(busy).status_code == 404


def test_shared_sessions_expire_on_every_replica(moto_endpoint: str, tmp_path: Path) -> None:
    spec = {"storage": f"s3://{make_bucket(moto_endpoint)}/reg", "s3_endpoint_url": moto_endpoint,
            "upload_idle_timeout": TIMEOUT}
    a = build_reg({**spec, "spool_dir": str(tmp_path / "spool-a")})
    b = build_reg({**spec, "spool_dir": str(tmp_path / "spool-b")})
    clock_a, clock_b = with_clock(a), with_clock(b)
    loc = start(a, "team/app")
    assert patch(b, loc, b"chunk on b").status_code == 202  # continued on the other replica
    assert len(stored_sessions(a)) == 1
    clock_a.skew = clock_b.skew = TIMEOUT * 3
    start(b, "other")  # b's purge removes the stored session, whoever started it
    assert loc.rsplit("/", 1)[1] not in stored_sessions(b)
    r = patch(a, loc, b"late", 10)
    assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"


def test_the_cap_is_per_repository_without_auth(fsreg: Reg) -> None:
    reg = build_reg({"storage": str(Path(fsreg.driver.spool_dir).parent)}, max_upload_sessions=3)
    held = [start(reg, "hog") for _ in range(3)]
    r = reg.post("/v2/hog/blobs/uploads/")
    assert r.status_code == 429 and error_code(r) == "TOOMANYREQUESTS"
    # another repository is not refused, neither a session nor a one-request push
    start(reg, "other")
    data = b"one request"
    assert reg.post(f"/v2/other/blobs/uploads/?digest={sha(data)}", content=data).status_code == 201
    assert reg.delete(held[0]).status_code == 204
    start(reg, "hog")


def test_the_cap_is_per_user_with_token_auth(tmp_path: Path) -> None:
    issuer, _v, _k, cert = issuer_and_verifier(service=SERVICE)
    reg = build_reg({"storage": str(tmp_path / "s")}, max_upload_sessions=3, **token_config(tmp_path, cert))

    def token(user: str, *repos: str) -> dict[str, str]:
        scopes = [repository(r, "pull", "push") for r in repos]
        return {"Authorization": "Bearer " + issuer.issue(user, SERVICE, scopes).token}

    mallory = token("mallory", "m1", "m2", "shared")
    for repo in ("m1", "m2", "shared"):
        start(reg, repo, mallory)
    for repo in ("m1", "m2", "shared"):  # every repository: the cap is the user's
        r = reg.post(f"/v2/{repo}/blobs/uploads/", headers=mallory)
        assert r.status_code == 429, repo
    alice = token("alice", "shared", "alice")
    data = b"alice's layer"
    r = reg.post(f"/v2/alice/blobs/uploads/?digest={sha(data)}", content=data, headers=alice)
    assert r.status_code == 201, r.text
    loc = start(reg, "shared", alice)  # even in a repository where mallory holds sessions
    assert reg.put(f"{loc}?digest={sha(data)}", content=data, headers=alice).status_code == 201


def test_expiry_frees_the_quota(storage_spec: dict[str, Any]) -> None:
    reg = build_reg(storage_spec, max_upload_sessions=2, upload_idle_timeout=TIMEOUT)
    clock = with_clock(reg)
    held = [start(reg, "a") for _ in range(2)]
    assert reg.post("/v2/a/blobs/uploads/").status_code == 429
    clock.skew = TIMEOUT * 2
    start(reg, "a")
    assert [reg.get(loc).status_code for loc in held] == [404, 404]


def test_the_purge_runs_in_a_worker_thread_at_most_once_per_interval(fsreg: Reg) -> None:
    reg = build_reg({"storage": str(Path(fsreg.driver.spool_dir).parent)}, upload_idle_timeout=TIMEOUT)
    uploads = uploads_of(reg)
    clock = with_clock(reg)
    scans: list[str] = []
    scan = uploads._idle_sessions

    def recording(now: float, max_idle: float) -> tuple[list[str], list[str]]:
        scans.append(threading.current_thread().name)
        return scan(now, max_idle)

    uploads._idle_sessions = recording  # type: ignore[method-assign]
    for _ in range(5):
        start(reg, "a")
    assert len(scans) == 1
    assert uploads.purge_interval == TIMEOUT / 4
    clock.skew = uploads.purge_interval + 1
    start(reg, "a")
    assert len(scans) == 2
    assert threading.main_thread().name not in scans


def test_idle_timeout_option(tmp_path: Path) -> None:
    assert load_config(None, {}, {}).upload_idle_timeout == 3600
    cfg = load_config(None, {}, {"TRUSTBOX_UPLOAD_IDLE_TIMEOUT": "120"})
    assert cfg.upload_idle_timeout == 120
    toml = tmp_path / "r.toml"
    toml.write_text("upload-idle-timeout = 30\nmax-upload-sessions = 5\n")
    cfg = load_config(toml, {}, {})
    assert (cfg.upload_idle_timeout, cfg.max_upload_sessions) == (30, 5)
    r = CliRunner().invoke(cli, ["serve", "registry", "--storage", str(tmp_path), "--upload-idle-timeout", "0"])
    assert r.exit_code != 0 and "upload_idle_timeout must be at least 1" in r.output
    assert "Traceback" not in r.output
    assert "--upload-idle-timeout" in CliRunner().invoke(cli, ["serve", "registry", "--help"]).output


@pytest.mark.parametrize("value", ["soon", "-5"])
def test_idle_timeout_bad_values(tmp_path: Path, value: str) -> None:
    from trustbox.errors import ConfigError

    with pytest.raises(ConfigError):
        load_config(None, {}, {"TRUSTBOX_UPLOAD_IDLE_TIMEOUT": value})
