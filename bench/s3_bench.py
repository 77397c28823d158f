#!/usr/bin/env python3
"""Side-by-side benchmark on a real S3 store: trustbox registry vs upstream docker-registry 2.8,
both on Ceph's radosgw (a one-monitor, one-OSD cluster on loopback, ``tests/helpers/ceph.py``).

Measures, in one run, with the method and client of ``bench/registry_bench.py``:
  * upload of one blob, monolithic (POST + PUT) and chunked (POST + PATCH... + PUT);
  * download of it (GET, full; upstream with ``redirect: disable`` so the bytes come through
    the registry as they do through trustbox);
  * manifest GETs by tag with wrk at 1, 16 and 64 connections;
  * peak memory of each registry (not of the cluster).

Each trial gives each server a fresh bucket on the same cluster and measures one after the other,
in alternating order; medians over the trials, then ratios trustbox / upstream with the per-trial
range. The cluster's start time is printed too (``ceph.start``).

    python3 bench/s3_bench.py [--size-mib 256] [--chunk-mib 32] [--duration 5] [--trials 2]
                              [--workers 1] [--objectstore bluestore|memstore] [--ceph-dir DIR]

Needs the Debian packages ceph-mon, ceph-osd, radosgw, docker-registry and wrk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry_bench import UNITS, Server, bench_one, free_port, median, trial_orders, write_blob  # noqa: E402
from tests.helpers.ceph import PACKAGES, S3Account, attach_or_start, missing_tools, start_cluster  # noqa: E402


def start_trustbox_s3(account: S3Account, bucket: str, spool: Path, workers: int, verify: str) -> Server:
    """``trustbox serve registry`` on ``s3://bucket/trustbox`` at the radosgw endpoint."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "AWS_"))}
    env.update(account.env())
    env["TRUSTBOX_SPOOL_DIR"] = str(spool)
    cmd = [sys.executable, "-c", "from trustbox.cli import main; main()", "serve", "registry",
           "--listen", f"127.0.0.1:{port}", "--storage", f"s3://{bucket}/trustbox",
           "--s3-endpoint-url", account.endpoint, "--workers", str(workers),
           "--verify-blobs", verify, "--log-level", "error"]
    return Server("trustbox", cmd, env, port)


def start_upstream_s3(account: S3Account, bucket: str, workdir: Path, binary: str) -> Server:
    """docker-registry 2.8 with its ``s3`` driver on ``bucket`` (root ``/upstream``), redirects off."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "upstream-config.yml"
    cfg.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        "storage:\n  s3:\n"
        f"    accesskey: {account.access_key}\n    secretkey: {account.secret_key}\n"
        f"    region: {account.region}\n    regionendpoint: {account.endpoint}\n"
        f"    bucket: {bucket}\n    rootdirectory: /upstream\n    secure: false\n    v4auth: true\n"
        "  redirect:\n    disable: true\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: benchsecret\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir)}  # clean: REGISTRY_* would override config
    return Server("upstream", [binary, "serve", str(cfg)], env, port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256, help="blob size [256]")
    ap.add_argument("--chunk-mib", type=int, default=32, help="PATCH chunk size [32]")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run [5]")
    ap.add_argument("--workers", type=int, default=1, help="trustbox worker processes [1]")
    ap.add_argument("--verify-blobs", default="first", choices=["always", "first", "never"])
    ap.add_argument("--trials", type=int, default=2, help="trials, alternating order [2]")
    ap.add_argument("--order", choices=["upstream-first", "trustbox-first"], default="upstream-first")
    ap.add_argument("--objectstore", choices=["bluestore", "memstore"], default="bluestore",
                    help="the OSD's store: a sparse file on disk, or memory [bluestore]")
    ap.add_argument("--ceph-dir", default=None,
                    help="use (or start and keep) the cluster in this folder [a fresh one, removed at the end]")
    ap.add_argument("--upstream", default=shutil.which("docker-registry") or "/usr/bin/docker-registry")
    ap.add_argument("--workdir", default=None, help="where the blob and spools go [a temp dir under /var/tmp]")
    args = ap.parse_args()
    missing = missing_tools() + [t for t in ("wrk", args.upstream) if not shutil.which(t)]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)} (apt-get install {' '.join(PACKAGES)} docker-registry wrk)")
    if args.trials < 1:
        sys.exit("--trials must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="s3bench-", dir=args.workdir or "/var/tmp"))
    cluster = None
    try:
        if args.ceph_dir:
            cluster = attach_or_start(Path(args.ceph_dir), args.objectstore)
        else:
            cluster = start_cluster(work / "ceph", args.objectstore)
        print(f"ceph.start {cluster.start_seconds:.2f} s", flush=True)
        account = cluster.account("s3bench", "s3bench-secret")
        blob = work / "blob.bin"
        digest = write_blob(blob, args.size_mib)
        print(f"# radosgw {account.endpoint} ({args.objectstore}), blob {blob.stat().st_size} bytes, "
              f"chunk {args.chunk_mib} MiB, wrk {args.duration}s, trustbox workers={args.workers} "
              f"verify={args.verify_blobs}, {args.trials} trials alternating from {args.order}", flush=True)

        starters: dict[str, Callable[[str, int], Server]] = {
            "upstream": lambda bucket, t: start_upstream_s3(account, bucket, work / f"upstream-{t}", args.upstream),
            "trustbox": lambda bucket, t: start_trustbox_s3(account, bucket, work / f"spool-{t}", args.workers,
                                                            args.verify_blobs),
        }
        trials: list[dict[str, dict[str, float]]] = []
        for t, order in enumerate(trial_orders(args.trials, args.order), 1):
            trial: dict[str, dict[str, float]] = {}
            for name in order:
                bucket = account.new_bucket(f"bench-{name}")
                server = starters[name](bucket, t)
                try:
                    trial[name] = bench_one(server, blob, digest, args.chunk_mib << 20, args.duration)
                finally:
                    server.stop()
            trials.append(trial)
            print(f"# trial {t} ({order[0]} first): " + ", ".join(
                f"{k} {trial['trustbox'][k] / trial['upstream'][k]:.2f}x"
                for k in ("upload_monolithic", "upload_chunked", "download", "manifest_get_c16")), flush=True)

        results = {name: {k: (max if k.startswith("peak") else median)([tr[name][k] for tr in trials])
                          for k in UNITS} for name in ("upstream", "trustbox")}
        for name in ("upstream", "trustbox"):
            for k, v in results[name].items():
                print(f"{name}.{k} {v:.1f} {UNITS[k]}")
        for k in UNITS:
            u, tb = results["upstream"][k], results["trustbox"][k]
            spread = [tr["trustbox"][k] / tr["upstream"][k] for tr in trials if tr["upstream"][k]]
            extra = f" (trials {min(spread):.2f}-{max(spread):.2f})" if len(spread) > 1 else ""
            print(f"ratio.{k} {tb / u if u else float('inf'):.2f} x{extra}")
    finally:
        if cluster is not None and not args.ceph_dir:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
