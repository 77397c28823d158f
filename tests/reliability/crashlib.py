"""Helpers for the crash-safety tests: server processes that can be SIGKILLed and restarted,
a seeded killer thread, and the trust/registry client loops that record what was acknowledged."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from tests.helpers.net import free_port, stop_process, wait_http
from tests.helpers.notary_upload import multipart
from tests.helpers.simulator import RepositorySimulator, target
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.timefmt import utcnow


class KillableServer:
    """A ``trustbox serve ...`` process group that is SIGKILLed and restarted on the same data."""

    def __init__(self, args: list[str], env: dict[str, str], ready_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "trustbox", "serve", *args, "--listen", f"127.0.0.1:{self.port}"]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")} | env
        self.ready_path = ready_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.log: list[str] = []

    def start(self, timeout: float = 60) -> None:
        # stderr goes to a file: the servers log a line per request, which would fill an unread pipe
        # and stall them
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self._stderr, start_new_session=True)
        try:
            wait_http(self.url + self.ready_path, self.proc, timeout=timeout, interval=0.05)
        except RuntimeError as exc:
            err = self._read_stderr() if self.proc.poll() is not None else ""
            raise AssertionError(f"server did not become ready: {exc} {err}") from None

    def _read_stderr(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        self._stderr.close()
        return text

    def kill(self) -> None:
        """SIGKILL the whole process group (granian's parent and its workers)."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.append(self._read_stderr())
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, group=True)


def run_with_kills(server: KillableServer, workers: list[Callable[[threading.Event], None]], seed: int,
                   kills: int, min_gap: float, max_gap: float, tail: float) -> None:
    """Run ``workers`` in threads while SIGKILLing and restarting ``server`` ``kills`` times at
    random (seeded) moments; let them run ``tail`` seconds after the last restart, then stop them."""
    rng = random.Random(seed)
    stop = threading.Event()
    errors: list[BaseException] = []

    def wrap(fn: Callable[[threading.Event], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn(stop)
            except BaseException as exc:  # reported in the main thread
                errors.append(exc)
                stop.set()
        return run

    threads = [threading.Thread(target=wrap(w), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        for _ in range(kills):
            if stop.wait(rng.uniform(min_gap, max_gap)):
                break
            server.kill()
            time.sleep(rng.uniform(0, 0.3))  # clients see refused connections for a moment
            server.start()
        stop.wait(tail)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    if errors:
        raise errors[0]
    assert not any(t.is_alive() for t in threads), "a client loop hung"


def retrying(fn: Callable[[], httpx.Response], stop: threading.Event | None = None,
             deadline: float = 60) -> httpx.Response:
    """Call ``fn`` until it gets an HTTP answer (connection errors while the server is down)."""
    end = time.monotonic() + deadline
    while True:
        try:
            return fn()
        except httpx.HTTPError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


# -- trust server ----------------------------------------------------------------------------


@dataclass
class TrustLoop:
    """One GUN: a root with the server's snapshot and timestamp keys, then targets v1, v2, ..."""

    url: str
    gun: str
    seed: int
    acked: dict[int, bytes] = field(default_factory=dict)  # targets version -> bytes (got 200)
    attempted: int = 0
    root: bytes = b""
    refused: list[str] = field(default_factory=list)

    def tuf(self, name: str) -> str:
        return f"{self.url}/v2/{self.gun}/_trust/tuf/{name}"

    def __call__(self, stop: threading.Event) -> None:
        rng = random.Random(self.seed)
        now = utcnow()
        with httpx.Client(timeout=20) as c:
            keys = {}
            for role in ("snapshot", "timestamp"):
                r = retrying(lambda role=role: c.get(self.tuf(f"{role}.key")))
                assert r.status_code == 200, r.text
                keys[role] = PublicKey.from_dict(json.loads(r.content))
            sim = RepositorySimulator(self.gun, now, timestamp_key=keys["timestamp"], snapshot_key=keys["snapshot"])
            self.root = sim.make_root()
            root_stored = False
            version = 0
            while not stop.is_set():
                version += 1
                self.attempted = version
                payload = f"{self.gun} v{version} {rng.random()}".encode()
                targets = sim.make_targets({f"tag{version}": target(payload), "latest": target(payload)},
                                           version=version, expires=timedelta(days=1000))
                parts = {"targets": targets} if root_stored else {"root": self.root, "targets": targets}
                body, ct = multipart(parts, "crashboundary0123")
                try:
                    r = c.post(self.tuf(""), content=body, headers={"content-type": ct})
                except httpx.ConnectError:
                    version -= 1  # never reached the server (it is down): send this version again
                    time.sleep(0.1)
                    continue
                except httpx.HTTPError:
                    # outcome unknown: find out whether the root went in before the next update
                    time.sleep(0.1)
                    if not root_stored:
                        r2 = retrying(lambda: c.get(self.tuf("root.json")))
                        root_stored = r2.status_code == 200
                        if root_stored:
                            assert r2.content == self.root, "a different root is stored"
                    continue
                if r.status_code == 200:
                    self.acked[version] = targets
                    root_stored = True
                else:
                    self.refused.append(f"v{version}: {r.status_code} {r.text[:300]}")
                    raise AssertionError(f"{self.gun} update v{version} refused: {r.status_code} {r.text[:500]}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stop_and_rmtree(server: KillableServer, *paths: str) -> None:
    server.stop()
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


def parse_json(data: bytes) -> Any:
    return json.loads(data)


# -- registry --------------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class RegistryLoop:
    """Uploads blobs (monolithic or chunked) and a manifest per round into one repository."""

    url: str
    repo: str
    seed: int
    max_size: int
    acked_blobs: dict[str, int] = field(default_factory=dict)  # digest -> size (got 201)
    unacked_blobs: set[str] = field(default_factory=set)  # digests tried without a 201
    acked_manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # tag -> (digest, body)
    unacked_manifests: dict[str, str] = field(default_factory=dict)  # tag -> digest
    rounds: int = 0

    def _blob(self, c: httpx.Client, rng: random.Random, data: bytes) -> bool:
        d = "sha256:" + sha256(data)
        base = f"{self.url}/v2/{self.repo}/blobs/uploads/"
        if rng.random() < 0.5:
            r = c.post(f"{base}?digest={d}", content=data)
        else:
            r = c.post(base)
            if r.status_code != 202:
                raise AssertionError(f"upload start: {r.status_code} {r.text[:300]}")
            loc = self.url + r.headers["location"]
            step = max(1, len(data) // rng.randint(1, 5))
            offset = 0
            while offset < len(data) - step:
                chunk = data[offset:offset + step]
                r = c.patch(loc, content=chunk, headers={
                    "content-range": f"{offset}-{offset + len(chunk) - 1}",
                    "content-type": "application/octet-stream"})
                if r.status_code != 202:
                    raise AssertionError(f"chunk: {r.status_code} {r.text[:300]}")
                loc = self.url + r.headers["location"]
                offset += len(chunk)
            rest = data[offset:]
            headers = {"content-range": f"{offset}-{offset + len(rest) - 1}"} if rest else {}
            r = c.put(f"{loc}?digest={d}", content=rest, headers=headers)
        if r.status_code != 201:
            raise AssertionError(f"blob commit: {r.status_code} {r.text[:300]}")
        return True

    def __call__(self, stop: threading.Event) -> None:
        rng = random.Random(self.seed)
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                self.rounds += 1
                layers = []
                ok = True
                for _ in range(rng.randint(1, 2)):
                    data = rng.randbytes(rng.randint(0, self.max_size))
                    d = "sha256:" + sha256(data)
                    self.unacked_blobs.add(d)
                    try:
                        self._blob(c, rng, data)
                    except httpx.HTTPError:
                        ok = False
                        break
                    self.unacked_blobs.discard(d)
                    self.acked_blobs[d] = len(data)
                    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d,
                                   "size": len(data)})
                if not ok:
                    continue
                cfg = json.dumps({"round": self.rounds, "repo": self.repo}).encode()
                cd = "sha256:" + sha256(cfg)
                self.unacked_blobs.add(cd)
                try:
                    self._blob(c, rng, cfg)
                except httpx.HTTPError:
                    continue
                self.unacked_blobs.discard(cd)
                self.acked_blobs[cd] = len(cfg)
                body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                              "digest": cd, "size": len(cfg)},
                                   "layers": layers}).encode()
                tag = f"r{self.rounds}"
                md = "sha256:" + sha256(body)
                self.unacked_manifests[tag] = md
                try:
                    r = c.put(f"{self.url}/v2/{self.repo}/manifests/{tag}", content=body,
                              headers={"content-type": OCI_MANIFEST})
                except httpx.HTTPError:
                    continue
                if r.status_code != 201:
                    raise AssertionError(f"manifest put: {r.status_code} {r.text[:300]}")
                del self.unacked_manifests[tag]
                self.acked_manifests[tag] = (md, body)
