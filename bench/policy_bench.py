#!/usr/bin/env python3
"""The cost of the registry's trust policy: manifest GET by tag, policy on vs off, same storage.

Starts ``trustbox serve trust`` (plain HTTP on loopback, SQLite) and two ``trustbox serve registry``
processes on one storage folder: A without a policy (pushes and signs go there) and B with a trust
policy protecting ``bench/**`` by that trust server. Then:

  * ``--repos`` repositories are pushed and signed (``trustbox push --sign``) through A;
  * cold: the first GET by tag of each repository on B (no trust data cached, first contact with
    the trust server: root, timestamp, snapshot, targets fetched and verified): p50 / p99 / max;
  * warm: ``wrk -c 16`` on GET by tag of one signed repository, on A, B and C (a second registry
    without a policy, the control) back to back in alternating order, ``--trials`` times (each
    warmed by one request first; B's cache bound is the default 30 s, so a run may include a
    refresh): medians, the ratio B / median(A and C runs), and the control ratio C / A (what noise
    alone does to two identical servers).

    python3 bench/policy_bench.py [--repos 40] [--duration 5] [--trials 3] [--connections 16]

Prints ``name value unit`` lines; exits non-zero only if something broke.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # this checkout's trustbox, for this process and the servers
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, run_wrk  # noqa: E402

from trustbox.sandbox.pki import make_ca, make_server_cert  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, proc: subprocess.Popen[bytes], log: Path, ca: Path | None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2, verify=str(ca) if ca else True).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up: {log.read_text()[-2000:]}")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    return env


def start(argv: list[str], log: Path, health: str, ca: Path | None = None) -> subprocess.Popen[bytes]:
    env = _env()
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "trustbox", *argv], env=env, stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    wait(health, proc, log, ca)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def layout(path: Path, n: int) -> None:
    """A one-layer OCI image layout (unique per ``n``)."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h

    layer = f"layer {n} {os.urandom(8).hex()}".encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(layer), "size": len(layer)}],
    }).encode()
    md = put(manifest)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": md, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repos", type=int, default=40, help="signed repositories (cold-cache samples)")
    ap.add_argument("--duration", type=float, default=5, help="seconds per wrk run")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="policy-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    report = Report()
    try:
        tport, aport, bport = free_port(), free_port(), free_port()
        trust = f"https://127.0.0.1:{tport}"
        now = datetime.now(UTC)
        ca_pair, ca_cert, ca_key = make_ca(now, "policy bench CA")
        server = make_server_cert(ca_cert, ca_key, ["127.0.0.1"], now)
        ca = work / "ca.crt"
        ca.write_bytes(ca_pair.cert_pem)
        (work / "tls.crt").write_bytes(server.cert_pem)
        (work / "tls.key").write_bytes(server.key_pem)
        tls = work / "docker" / "tls" / f"127.0.0.1:{tport}"
        tls.mkdir(parents=True)
        shutil.copy(ca, tls / "ca.crt")
        procs.append(start(["serve", "trust", "--listen", f"127.0.0.1:{tport}", "--db", f"sqlite:///{work}/trust.db",
                            "--tls-cert", str(work / "tls.crt"), "--tls-key", str(work / "tls.key")],
                           work / "trust.log", f"{trust}/_notary_server/health", ca))
        a = f"127.0.0.1:{aport}"
        b = f"127.0.0.1:{bport}"
        policy = work / "policy.toml"
        policy.write_text(f'[[rule]]\nname = "bench"\nrepositories = ["bench/**"]\ntrust_server = "{trust}"\n'
                          f'trust_server_ca = "{ca}"\ngun_prefix = "{a}/"\n')
        procs.append(start(["serve", "registry", "--listen", a, "--storage", str(work / "data"), "--log-level",
                            "warning"], work / "a.log", f"http://{a}/v2/"))
        procs.append(start(["serve", "registry", "--listen", b, "--storage", str(work / "data"), "--log-level",
                            "warning", "--trust-policy", str(policy)], work / "b.log", f"http://{b}/v2/"))
        # C: a second registry without a policy, measured like A: the spread between A and C is what
        # this machine's noise alone does to two identical servers
        c_addr = f"127.0.0.1:{free_port()}"
        procs.append(start(["serve", "registry", "--listen", c_addr, "--storage", str(work / "data"), "--log-level",
                            "warning"], work / "c.log", f"http://{c_addr}/v2/"))
        env = _env()
        env.update(HOME=str(work), DOCKER_CONFIG=str(work / "docker"), DOCKER_CONTENT_TRUST_SERVER=trust,
                   DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE="bench root passphrase",
                   DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE="bench repository passphrase")
        for i in range(args.repos):
            layout(work / f"l{i}", i)
            p = subprocess.run([sys.executable, "-m", "trustbox", "push", "--sign", f"oci:{work}/l{i}:latest",
                                f"{a}/bench/r{i}:v1"], env=env, capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                raise SystemExit(f"push --sign failed: {p.stdout}{p.stderr}")
        p = subprocess.run([sys.executable, "-m", "trustbox", "push", "--disable-content-trust",
                            f"oci:{work}/l0:latest", f"{a}/bench/r0:unsigned"], env=env, capture_output=True, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise SystemExit(f"push failed: {p.stdout}{p.stderr}")
        headers = {"Accept": OCI_MANIFEST}
        cold: list[float] = []
        with httpx.Client(timeout=30) as c:
            for i in range(args.repos):
                t0 = time.perf_counter()
                r = c.get(f"http://{b}/v2/bench/r{i}/manifests/v1", headers=headers)
                cold.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"policy registry refused a signed tag: {r.status_code} {r.text}")
            unsigned = c.get(f"http://{b}/v2/bench/r0/manifests/unsigned", headers=headers).status_code
            if unsigned != 403:
                raise SystemExit(f"policy registry served an unsigned tag: {unsigned}")
        report.add("cold.first_get_p50", statistics.median(cold), "ms")
        report.add("cold.first_get_p99", percentile(cold, 99), "ms")
        report.add("cold.first_get_max", max(cold), "ms")
        print(f"#   cold samples (ms): {' '.join(f'{v:.1f}' for v in cold)}", flush=True)
        path = "/v2/bench/r0/manifests/v1"
        runs: dict[str, list[float]] = {"off": [], "on": [], "control": []}
        servers = [("off", a), ("on", b), ("control", c_addr)]
        for trial in range(args.trials):
            for name, addr in servers if trial % 2 == 0 else list(reversed(servers)):
                httpx.get(f"http://{addr}{path}", headers=headers)
                res = run_wrk(f"http://{addr}{path}", args.connections, args.duration)
                if res.non_2xx or res.socket_errors:
                    raise SystemExit(f"wrk errors on {name}: {res.raw}")
                runs[name].append(res.requests_per_sec)
        c = args.connections
        report.add_runs(f"policy_off.manifest_get_tag_c{c}", runs["off"], "req/s")
        report.add_runs(f"policy_off_control.manifest_get_tag_c{c}", runs["control"], "req/s")
        report.add_runs(f"policy_on.manifest_get_tag_c{c}", runs["on"], "req/s")
        off = runs["off"] + runs["control"]
        ratio = statistics.median(runs["on"]) / statistics.median(off)
        report.add(f"ratio.manifest_get_tag_c{c}", ratio, "x")
        report.add(f"ratio.control_c{c}", statistics.median(runs["control"]) / statistics.median(runs["off"]), "x")
        per_trial = [x / ((y + z) / 2) for x, y, z in zip(runs["on"], runs["off"], runs["control"], strict=True)]
        print(f"#   per-trial ratios on / mean(off, control): {' '.join(f'{r:.3f}' for r in per_trial)}")
        print(f"# target >= 0.9x: {'PASS' if ratio >= 0.9 else 'FAIL'} (on / median of both policy-off servers)")
    finally:
        for p in reversed(procs):
            stop(p)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
