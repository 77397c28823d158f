#!/usr/bin/env python3
"""Soak test: both servers under mixed load for ``--minutes``; errors must be 0 and memory flat.

Load (all at once, for the whole run):

* ``wrk`` on the trust server's ``GET timestamp.json`` and ``GET targets.json`` (50 targets) and on
  the registry's manifest ``GET``, restarted every interval so each interval has its own figures;
* trust publishers (Python threads): each owns a GUN with a server-held snapshot key and posts
  real signed targets updates (rate-limited), then verifies the served chain with
  ``TrustedCollection`` (timestamp -> snapshot -> targets);
* registry uploaders and pullers using the project's own ``RegistryClient`` (blobs of random
  sizes up to ``--blob-kib``, then a manifest; pullers fetch a manifest and its blobs and check
  every digest).

Every ``--interval`` seconds it samples VmRSS (``/proc/PID/status``) and PSS
(``/proc/PID/smaps_rollup``) summed over each server's process tree, and prints a table row.
At the end: ``name value unit`` lines, and whether RSS stayed flat (mean of the last quarter of
intervals within ``--flat-tolerance`` of the mean of the second quarter). Exit status 1 when any
error happened or a server died; a memory verdict of "growing" is reported, not fatal.

    python3 bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
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
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.* helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import parse_wrk, process_tree  # noqa: E402
from tests.helpers.net import free_port  # noqa: E402
from tests.helpers.notary_upload import multipart  # noqa: E402

from trustbox.client.images.distribution import RegistryClient, RegistryOptions  # noqa: E402
from trustbox.oci.descriptor import Descriptor  # noqa: E402
from trustbox.oci.manifest import parse_manifest  # noqa: E402
from trustbox.tuf.certs import make_root_public_key  # noqa: E402
from trustbox.tuf.keys import PrivateKey, PublicKey  # noqa: E402
from trustbox.tuf.metadata import FileMeta, Metadata, RoleKeys, Root, Targets  # noqa: E402
from trustbox.tuf.timefmt import utcnow  # noqa: E402
from trustbox.tuf.verify import TrustedCollection  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


# -- servers and memory ---------------------------------------------------------------------------


class Server:
    """A ``trustbox serve ...`` process group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], ready: str, log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")} | env
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trustbox", "serve", *args, "--listen", f"127.0.0.1:{self.port}"],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited on start; see {log}")
            try:
                if httpx.get(self.url + ready, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start; see {log}")
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def memory_mib(self) -> tuple[float, float]:
        """(VmRSS, PSS) summed over the process tree, in MiB."""
        rss = pss = 0
        for pid in process_tree(self.proc.pid):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                continue
        return rss / 1024, pss / 1024

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


# -- counters -------------------------------------------------------------------------------------


@dataclass
class Counters:
    """Operations and errors per kind, for the current interval and in total."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total_ops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[str] = field(default_factory=list)

    def ok(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.ops[kind] += n
            self.total_ops[kind] += n

    def fail(self, kind: str, what: str, n: int = 1) -> None:
        with self.lock:
            self.errors[kind] += n
            self.total_errors[kind] += n
            if len(self.samples) < 20:
                self.samples.append(f"{kind}: {what}"[:400])

    def take(self) -> tuple[dict[str, int], dict[str, int]]:
        with self.lock:
            ops, errs = dict(self.ops), dict(self.errors)
            self.ops.clear()
            self.errors.clear()
        return ops, errs


def guarded(counters: Counters, kind: str, stop: threading.Event, fn: Callable[[], None], period: float) -> None:
    """Run ``fn`` repeatedly (at most once per ``period`` s); count successes and errors."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            fn()
            counters.ok(kind)
        except Exception as exc:  # every failure is a soak error, whatever its type
            counters.fail(kind, repr(exc))
        rest = period - (time.monotonic() - t0)
        if rest > 0:
            stop.wait(rest)


# -- trust load -----------------------------------------------------------------------------------


class TrustRepo:
    """One GUN published with the server's snapshot and timestamp keys."""

    def __init__(self, url: str, gun: str, n_targets: int) -> None:
        self.url, self.gun = url, gun
        self.client = httpx.Client(timeout=60)
        self.now = utcnow()
        keys = {role: PublicKey.from_dict(json.loads(self._get(f"{role}.key").content))
                for role in ("snapshot", "timestamp")}
        self.root_key = PrivateKey.generate("ecdsa")
        root_pub = make_root_public_key(self.root_key, gun, self.now)
        self.targets_key = PrivateKey.generate("ecdsa")
        md: Metadata[Root] = Metadata(Root(1, self.now + timedelta(days=3650), keys={
            root_pub.keyid: root_pub, self.targets_key.keyid: self.targets_key.public_key(),
            keys["snapshot"].keyid: keys["snapshot"], keys["timestamp"].keyid: keys["timestamp"]}, roles={
            "root": RoleKeys([root_pub.keyid]), "targets": RoleKeys([self.targets_key.keyid]),
            "snapshot": RoleKeys([keys["snapshot"].keyid]), "timestamp": RoleKeys([keys["timestamp"].keyid])}))
        md.sign(self.root_key, root_pub.keyid)
        self.root = md.to_bytes()
        self.version = 0
        self.n_targets = n_targets
        self.publish(with_root=True)

    def _get(self, name: str) -> httpx.Response:
        r = self.client.get(f"{self.url}/v2/{self.gun}/_trust/tuf/{name}")
        if r.status_code != 200:
            raise RuntimeError(f"GET {name}: {r.status_code} {r.text[:200]}")
        return r

    def publish(self, with_root: bool = False) -> None:
        self.version += 1
        targets = {f"tag{i}": FileMeta.from_bytes(f"{self.gun} {self.version} {i}".encode())
                   for i in range(self.n_targets)}
        md: Metadata[Targets] = Metadata(Targets(self.version, self.now + timedelta(days=1000), targets=targets))
        md.sign(self.targets_key)
        parts = {"root": self.root, "targets": md.to_bytes()} if with_root else {"targets": md.to_bytes()}
        body, ct = multipart(parts, "soakboundary0123")
        r = self.client.post(f"{self.url}/v2/{self.gun}/_trust/tuf/", content=body, headers={"content-type": ct})
        if r.status_code != 200:
            raise RuntimeError(f"publish v{self.version}: {r.status_code} {r.text[:300]}")

    def verify(self) -> None:
        tc = TrustedCollection(self.gun, self._get("root.json").content, utcnow())
        tc.update_timestamp(self._get("timestamp.json").content)
        tc.update_snapshot(self._get("snapshot.json").content)
        got = tc.update_targets(self._get("targets.json").content)
        if got.signed.version < self.version:
            raise RuntimeError(f"served targets v{got.signed.version} older than published v{self.version}")

    def publish_and_verify(self) -> None:
        self.publish()
        self.verify()


# -- registry load --------------------------------------------------------------------------------


class RegistryWorker:
    """Pushes images (random blob + config + manifest) and pulls them back, verified."""

    def __init__(self, host: str, repo: str, seed: int, blob_kib: int, pushed: list[tuple[str, str]]) -> None:
        self.client = RegistryClient(host, RegistryOptions(timeout=60))
        self.repo = repo
        self.rng = random.Random(seed)
        self.blob_kib = blob_kib
        self.pushed = pushed  # shared (repo, tag) list for pullers
        self.n = 0

    def _desc(self, data: bytes, media_type: str) -> Descriptor:
        return Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))

    def push(self) -> None:
        self.n += 1
        layer = self.rng.randbytes(self.rng.randint(1, self.blob_kib * 1024))
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": self.n, "repo": self.repo}).encode()
        ld = self._desc(layer, "application/vnd.oci.image.layer.v1.tar")
        cd = self._desc(cfg, "application/vnd.oci.image.config.v1+json")
        self.client.upload_blob(self.repo, ld, [layer])
        self.client.upload_blob(self.repo, cd, [cfg])
        raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cd.to_json(),
                          "layers": [ld.to_json()]}).encode()
        tag = f"t{self.n % 50}"  # tags are overwritten: the repository does not grow without bound in tags
        self.client.put_manifest(self.repo, tag, parse_manifest(raw, OCI_MANIFEST))
        self.pushed.append((self.repo, tag))
        if len(self.pushed) > 1000:
            del self.pushed[:500]

    def pull(self) -> None:
        if not self.pushed:
            return
        repo, tag = self.rng.choice(self.pushed)
        m = self.client.get_manifest(repo, tag)
        for desc in m.blobs():
            with self.client.open_blob(repo, desc) as chunks:
                for _ in chunks:
                    pass


# -- wrk ------------------------------------------------------------------------------------------


def start_wrk(url: str, connections: int, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([WRK, "-c", str(connections), "-t", "1", "-d", f"{seconds:g}s", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# -- main -----------------------------------------------------------------------------------------


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="soak duration [10]")
    ap.add_argument("--interval", type=float, default=30.0, help="seconds per report interval [30]")
    ap.add_argument("--wrk-connections", type=int, default=4, help="connections of each of the 3 wrk runs [4]")
    ap.add_argument("--publishers", type=int, default=2, help="trust publisher threads [2]")
    ap.add_argument("--publish-rate", type=float, default=4.0, help="publishes per second per publisher [4]")
    ap.add_argument("--uploaders", type=int, default=2, help="registry uploader threads [2]")
    ap.add_argument("--pullers", type=int, default=2, help="registry puller threads [2]")
    ap.add_argument("--upload-rate", type=float, default=4.0, help="image pushes per second per uploader [4]")
    ap.add_argument("--blob-kib", type=int, default=256, help="largest layer pushed, KiB [256]")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite", help="trust server database [sqlite]")
    ap.add_argument("--workers", type=int, default=1, help="server processes of each server [1]")
    ap.add_argument("--flat-tolerance", type=float, default=0.10, help="allowed RSS growth, fraction [0.10]")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args(argv)
    if not os.path.exists(WRK):
        raise SystemExit("wrk not found: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="trustbox-soak-"))
    pg_db: str | None = None
    if args.db == "postgres":
        import psycopg

        admin = "postgresql://postgres@127.0.0.1:5432/test"
        pg_db = f"tb_soak_{os.getpid()}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {pg_db}")
        db_url = f"postgresql://postgres@127.0.0.1:5432/{pg_db}"
    else:
        db_url = f"sqlite:///{work}/trust.db"
    trust = Server("trust", ["trust", "--db", db_url, "--workers", str(args.workers)],
                   {"TRUSTBOX_KEY_PASSPHRASE": "soak test passphrase 0123456789"}, "/_notary_server/health",
                   work / "trust.log")
    registry = Server("registry", ["registry", "--storage", str(work / "registry"), "--workers", str(args.workers),
                                   "--log-level", "warning"], {}, "/v2/", work / "registry.log")
    servers = [trust, registry]
    counters = Counters()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    wrks: dict[str, subprocess.Popen[str]] = {}
    status = 0
    try:
        # fixtures for wrk: a 50-target repository, one image
        static = TrustRepo(trust.url, "soak.example/static/app", 50)
        static.verify()
        reg_host = f"127.0.0.1:{registry.port}"
        pushed: list[tuple[str, str]] = []
        seed_worker = RegistryWorker(reg_host, "soak/static", 0, 64, pushed)
        seed_worker.push()
        wrk_urls = {
            "wrk_timestamp": f"{trust.url}/v2/{static.gun}/_trust/tuf/timestamp.json",
            "wrk_targets": f"{trust.url}/v2/{static.gun}/_trust/tuf/targets.json",
            "wrk_manifest": f"http://{reg_host}/v2/soak/static/manifests/t1",
        }
        for i in range(args.publishers):
            repo = TrustRepo(trust.url, f"soak.example/pub/app{i}", 3)
            threads.append(threading.Thread(target=guarded, args=(
                counters, "trust_publish", stop, repo.publish_and_verify, 1 / args.publish_rate), daemon=True))
        for i in range(args.uploaders):
            w = RegistryWorker(reg_host, f"soak/up{i}", 100 + i, args.blob_kib, pushed)
            threads.append(threading.Thread(target=guarded, args=(
                counters, "registry_push", stop, w.push, 1 / args.upload_rate), daemon=True))
        for i in range(args.pullers):
            w = RegistryWorker(reg_host, "soak/unused", 200 + i, args.blob_kib, pushed)
            threads.append(threading.Thread(target=guarded, args=(
                counters, "registry_pull", stop, w.pull, 0.0), daemon=True))
        for t in threads:
            t.start()

        intervals = max(1, round(args.minutes * 60 / args.interval))
        kinds = ["wrk_timestamp", "wrk_targets", "wrk_manifest", "trust_publish", "registry_push", "registry_pull"]
        rows: list[dict[str, float]] = []
        header = ("int", "t_s", *[k.replace("registry_", "reg_").replace("trust_", "ts_") + "/s" for k in kinds],
                  "errors", "trust_rss", "trust_pss", "reg_rss", "reg_pss")
        print(" ".join(f"{h:>12}" for h in header), flush=True)
        t_start = time.monotonic()
        for n in range(intervals):
            t0 = time.monotonic()
            wrks = {k: start_wrk(u, args.wrk_connections, args.interval) for k, u in wrk_urls.items()}
            mem_samples: dict[str, list[tuple[float, float]]] = {s.name: [] for s in servers}
            while time.monotonic() - t0 < args.interval:
                for s in servers:
                    mem_samples[s.name].append(s.memory_mib())
                time.sleep(min(5.0, max(0.1, args.interval - (time.monotonic() - t0))))
            row: dict[str, float] = {"int": n + 1, "t_s": time.monotonic() - t_start}
            wrk_errors = 0
            for k, p in wrks.items():
                out, _ = p.communicate(timeout=args.interval + 60)
                res = parse_wrk(out)
                row[k] = res.requests_per_sec
                counters.total_ops[k] += res.requests
                bad = res.non_2xx + res.socket_errors + (0 if p.returncode == 0 else 1)
                if bad:
                    wrk_errors += bad
                    counters.fail(k, f"{bad} non-2xx/socket errors: {out[-300:]}", bad)
            wrks = {}
            ops, errs = counters.take()
            elapsed = time.monotonic() - t0
            for k in ("trust_publish", "registry_push", "registry_pull"):
                row[k] = ops.get(k, 0) / elapsed
            row["errors"] = sum(errs.values())
            for s in servers:
                samples = mem_samples[s.name]
                row[f"{s.name}_rss"] = mean([r for r, _ in samples])
                row[f"{s.name}_pss"] = mean([p for _, p in samples])
            rows.append(row)
            cells = [row["int"], row["t_s"], *[row[k] for k in kinds], row["errors"], row["trust_rss"],
                     row["trust_pss"], row["registry_rss"], row["registry_pss"]]
            print(" ".join(f"{c:>12.0f}" if i < 2 or i == 8 else f"{c:>12.1f}" for i, c in enumerate(cells)),
                  flush=True)
            dead = [s.name for s in servers if not s.alive()]
            if dead:
                counters.fail("server", f"{', '.join(dead)} died")
                break
        stop.set()
        for t in threads:
            t.join(120)

        # -- summary ------------------------------------------------------------------------------
        total_errors = sum(counters.total_errors.values())
        duration = time.monotonic() - t_start
        print()
        print(f"soak.duration {duration:.0f} s")
        print(f"soak.intervals {len(rows)} count")
        for k in kinds:
            print(f"soak.{k}.ops {counters.total_ops.get(k, 0)} count")
            print(f"soak.{k}.rate {counters.total_ops.get(k, 0) / duration:.1f} ops/s")
            print(f"soak.{k}.errors {counters.total_errors.get(k, 0)} count")
        print(f"soak.errors {total_errors} count")
        q = max(1, len(rows) // 4)
        for s in servers:
            for metric in ("rss", "pss"):
                series = [r[f"{s.name}_{metric}"] for r in rows]
                second = mean(series[q:2 * q]) if len(series) >= 4 else series[0]
                last = mean(series[-q:])
                growth = (last - second) / second if second else float("nan")
                print(f"soak.{s.name}.{metric}.first {series[0]:.1f} MiB")
                print(f"soak.{s.name}.{metric}.q2_mean {second:.1f} MiB")
                print(f"soak.{s.name}.{metric}.q4_mean {last:.1f} MiB")
                print(f"soak.{s.name}.{metric}.max {max(series):.1f} MiB")
                print(f"soak.{s.name}.{metric}.growth {growth * 100:.1f} %")
                if metric == "rss":
                    flat = abs(growth) <= args.flat_tolerance
                    print(f"soak.{s.name}.rss_flat {'yes' if flat else 'no'} "
                          f"(last-quarter mean within {args.flat_tolerance:.0%} of second-quarter mean)")
        for s in servers:
            print(f"soak.{s.name}.alive {'yes' if s.alive() else 'no'}")
        if counters.samples:
            print("\nfirst errors:")
            for line in counters.samples:
                print("  " + line)
        if total_errors or not all(s.alive() for s in servers):
            status = 1
        print(f"\nRESULT {'PASS' if status == 0 else 'FAIL'}: {total_errors} errors")
    finally:
        stop.set()
        for p in wrks.values():
            p.kill()
        for s in servers:
            s.stop()
        if pg_db is not None:
            import psycopg

            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        if args.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
