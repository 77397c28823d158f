#!/usr/bin/env python3
"""Side-by-side benchmark: trustbox's trust server vs upstream notary-server 0.7.

Both servers run on this machine at the same time (TLS, same throw-away CA); measurements are taken
with the same tools, each one for both servers back to back:

* GET timestamp.json and targets.json (repository with 50 targets) with wrk at 1, 16, 64 connections
* ``notary publish`` of 1, 100 and 10,000 staged targets (the staging is done by writing the notary
  client's changelist files directly; only the publish command is timed; median of --repeat runs
  for the small sizes; with --rounds R, R runs of every size)
* a fresh ``notary list`` of the 10,000-target repository
* memory of each server's process tree at the end: peak RSS (VmHWM; largest process and sum),
  current RSS and PSS (``/proc/PID/smaps_rollup``: shared pages divided among the processes) summed

Output: ``name value unit`` lines, then ``ratio.*`` lines (trustbox / upstream) and the targets.
Usage: ``python3 bench/trust_bench.py [--duration 5] [--db sqlite|postgres]``. Never run by pytest.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository root: tests.* helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Report, run_wrk, timed, tree_memory  # noqa: E402
from tests.interop import clitools  # noqa: E402
from tests.interop.clitools import NotaryClient, parse_list  # noqa: E402
from tests.interop.servers import (  # noqa: E402
    ServerHandle,
    create_pg_database,
    make_tls,
    start_trustbox,
    start_upstream,
)

GET_GUN = "bench.example.test/get"


def stage_targets(client: NotaryClient, gun: str, names: list[str]) -> None:
    """Write notary changelist entries for ``names`` (what ``notary addhash`` would write)."""
    cl = client.trust_dir / "tuf" / gun / "changelist"
    cl.mkdir(parents=True, exist_ok=True)
    base = time.time_ns()
    for i, name in enumerate(names):
        payload = f"payload of {gun} {name}".encode()
        meta = {
            "length": len(payload),
            "hashes": {
                "sha256": base64.b64encode(hashlib.sha256(payload).digest()).decode(),
                "sha512": base64.b64encode(hashlib.sha512(payload).digest()).decode(),
            },
        }
        change = {
            "action": "create",
            "role": "targets",
            "type": "target",
            "path": name,
            "data": base64.b64encode(json.dumps(meta, separators=(",", ":")).encode()).decode(),
        }
        (cl / f"{base + i:020d}_{uuid.uuid4()}.change").write_text(json.dumps(change))


def must(res, what: str):
    if res.rc != 0:
        raise SystemExit(f"{what} failed:\n{res.describe()}")
    return res


def new_repo(client: NotaryClient, gun: str) -> None:
    must(client.run("init", "init", gun), f"notary init {gun}")
    must(client.run("publish", "publish", gun), f"first publish of {gun}")


def bench_gets(servers: dict[str, Any], owners: dict[str, NotaryClient], rep: Report, args: Any,
               gun: str = GET_GUN) -> None:
    """GET throughput of timestamp.json and targets.json of a repository with 50 targets, each
    server back to back per round (also used by ``trust_takeover_bench.py``)."""
    for owner in owners.values():
        new_repo(owner, gun)
        stage_targets(owner, gun, [f"t{i:03d}" for i in range(50)])
        must(owner.run("publish 50", "publish", gun), "publish of the 50-target repository")
    for role in ("timestamp", "targets"):
        for server in servers.values():
            run_wrk(f"{server.url}/v2/{gun}/_trust/tuf/{role}.json", 16, 1)  # warm-up
        for conns in args.connections:
            results: dict[str, list] = {name: [] for name in servers}
            for _round in range(args.rounds):
                for name, server in servers.items():
                    url = f"{server.url}/v2/{gun}/_trust/tuf/{role}.json"
                    results[name].append(run_wrk(url, conns, args.duration))
            for name, runs in results.items():
                rep.add_runs(f"{name}.get_{role}.c{conns}", [r.requests_per_sec for r in runs], "req/s")
                rep.add(
                    f"{name}.get_{role}.c{conns}.latency_avg",
                    statistics.median(r.latency_avg_ms for r in runs),
                    "ms",
                )
                errors = sum(r.non_2xx + r.socket_errors for r in runs)
                if errors or any(r.requests == 0 for r in runs):
                    rep.add(f"{name}.get_{role}.c{conns}.errors", errors, "responses")


def bench_all(servers: dict[str, ServerHandle], work: Path, rep: Report, args) -> None:
    """Every measurement is taken for each server back to back, so load drift on a shared machine
    affects both sides of a ratio alike."""
    owners = {name: NotaryClient(work / f"{name}-owner", server) for name, server in servers.items()}

    bench_gets(servers, owners, rep, args)

    # publish of N targets (only `notary publish` is timed). Small sizes: the runs add to one
    # repository; large sizes: every run publishes into a repository of its own (a run always
    # publishes N new targets on top of an empty targets role), followed by a fresh `notary list`.
    for size in args.sizes:
        large = size >= 1000
        runs = args.rounds if large else max(args.repeat, args.rounds)
        times: dict[str, list[float]] = {name: [] for name in servers}
        lists: dict[str, list[float]] = {name: [] for name in servers}
        base = f"bench.example.test/publish-{size}"
        if not large:
            for owner in owners.values():
                new_repo(owner, base)
        for r in range(runs):
            gun = f"{base}-r{r}" if large else base
            for name, owner in owners.items():
                if large:
                    new_repo(owner, gun)
                stage_targets(owner, gun, [f"r{r}-t{i:05d}" for i in range(size)])
                dt, res = timed(lambda g=gun, o=owner: o.run("publish", "publish", g))
                must(res, f"publish of {size} targets to {name}")
                times[name].append(dt)
            if large or r == runs - 1:
                expected = size if large else size * runs
                for name, server in servers.items():
                    fresh = NotaryClient(work / f"{name}-fresh-{size}-{r}", server)
                    dt, res = timed(lambda g=gun, f=fresh: f.run("list", "list", g))
                    must(res, f"fresh list of {gun} on {name}")
                    count = len(parse_list(res.out))
                    if count != expected:
                        raise SystemExit(f"{name}: fresh list of {gun} shows {count} targets, expected {expected}")
                    lists[name].append(dt)
        for name in servers:
            rep.add_runs(f"{name}.publish_{size}", [t * 1000 for t in times[name]], "ms")
        if size == max(args.sizes):
            for name in servers:
                rep.add_runs(f"{name}.fresh_list_{size}", [t * 1000 for t in lists[name]], "ms")

    for name, server in servers.items():
        mem = tree_memory(server.proc.pid)
        rep.add(f"{name}.processes", mem.processes, "processes")
        rep.add(f"{name}.rss_peak_largest_process", mem.peak_largest, "MiB")
        rep.add(f"{name}.rss_peak_process_tree", mem.peak_sum, "MiB")
        rep.add(f"{name}.rss_now_process_tree", mem.rss_sum, "MiB")
        rep.add(f"{name}.pss_now_process_tree", mem.pss_sum, "MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 100, 10000])
    ap.add_argument("--repeat", type=int, default=3, help="publish runs for sizes < 1000 (at least --rounds)")
    ap.add_argument(
        "--rounds", type=int, default=1,
        help="runs per figure and server, alternating between servers: wrk runs and 10,000-target publishes "
        "(the median is reported, the spread in a comment line)",
    )
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite", help="trustbox storage")
    ap.add_argument("--servers", default="upstream,trustbox", help="comma list: upstream,trustbox")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    clitools.CMD_TIMEOUT = 900

    work = Path(tempfile.mkdtemp(prefix="tb-trust-bench-"))
    tls = make_tls(work / "tls")
    servers: dict[str, ServerHandle] = {}
    rep = Report()
    wanted = args.servers.split(",")
    try:
        if "upstream" in wanted:
            servers["upstream"] = start_upstream(work / "upstream", tls)
        if "trustbox" in wanted:
            if args.db == "sqlite":
                db = f"sqlite:///{work / 'trustbox' / 'trust.db'}"
                (work / "trustbox").mkdir()
            else:
                db, drop = create_pg_database()
            servers["trustbox"] = start_trustbox(work / "trustbox", tls, db)
            if args.db == "postgres":
                servers["trustbox"].cleanups.append(drop)
        print(f"# trust_bench: {', '.join(f'{n} {s.url}' for n, s in servers.items())}; db={args.db}; "
              f"wrk {args.duration:g}s per run, {args.rounds} round(s); {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        bench_all(servers, work, rep, args)
        print(f"# load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1 / 5 / 15 min)",
              flush=True)

        if {"upstream", "trustbox"} <= servers.keys():
            print("# ratios trustbox/upstream (throughput: higher is better; times and RSS: lower is better)")
            for key in list(rep.values):
                if key.startswith("upstream.") and not key.endswith((".latency_avg", ".errors")):
                    metric = key.removeprefix("upstream.")
                    up, tb = rep.get(key), rep.get(f"trustbox.{metric}")
                    if up and tb is not None:
                        rep.add(f"ratio.{metric}", tb / up, "x")
                        up_runs, tb_runs = rep.runs.get(key), rep.runs.get(f"trustbox.{metric}")
                        if up_runs and tb_runs and len(up_runs) == len(tb_runs) > 1:
                            pairs = sorted(t / u for t, u in zip(tb_runs, up_runs, strict=True) if u)
                            print(f"#   ratio.{metric} per round (back to back): "
                                  + " ".join(f"{r:.3g}" for r in pairs), flush=True)
            print("# targets")
            checks = [
                ("get_timestamp.c16 >= 1.5x upstream", (rep.get("ratio.get_timestamp.c16") or 0) >= 1.5),
                ("get_targets.c16 >= 1.5x upstream", (rep.get("ratio.get_targets.c16") or 0) >= 1.5),
            ]
            for size in args.sizes:
                r = rep.get(f"ratio.publish_{size}")
                checks.append((f"publish_{size} <= upstream", r is not None and r <= 1.0))
            rss = rep.get("trustbox.rss_peak_process_tree")
            checks.append(("trustbox peak RSS (process tree) < 150 MiB", rss is not None and rss < 150))
            pss = rep.get("trustbox.pss_now_process_tree")
            checks.append(("trustbox PSS (process tree, at the end) < 150 MiB", pss is not None and pss < 150))
            for label, ok in checks:
                print(f"target {label}: {'PASS' if ok else 'FAIL'}")
    finally:
        for s in servers.values():
            s.stop()
        if args.keep:
            print(f"# work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
