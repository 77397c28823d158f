#!/usr/bin/env python3
"""Trust server on MariaDB: trustbox vs notary-server 0.7 + notary-signer, as a taken-over deployment.

Two deployments run side by side on this machine, each on its own fresh MariaDB database with
notary's tables (``tests/helpers/notary_stack.py``): notary-server + notary-signer on one;
``trustbox serve trust --config server.json --notary-signer-config signer.json`` on the other (notary's
table layout, signing in-process with keys in notary-signer's table). Every figure is taken for
both back to back, ``--rounds`` times:

* GET timestamp.json and targets.json (50 targets) with wrk at each of ``--connections``
* ``notary publish`` of 1 and 100 staged targets (median of ``--repeat`` runs)

Output: ``name value unit`` lines, then ``ratio.*`` (trustbox / upstream).
Usage: ``python3 bench/trust_takeover_bench.py [--duration 5] [--db mariadb|postgres]``. Never run by pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository root: tests.* helpers
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Report, timed  # noqa: E402
from tests.helpers.notary_stack import Deployment, NotaryDatabase, database_reachable, have_notary_stack  # noqa: E402
from tests.interop import clitools  # noqa: E402
from tests.interop.clitools import NotaryClient  # noqa: E402
from trust_bench import bench_gets, must, new_repo, stage_targets  # noqa: E402

GET_GUN = "bench.example.test/takeover-get"


@dataclass
class Handle:
    """What NotaryClient needs of a server."""

    name: str
    url: str
    ca_path: Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 100])
    ap.add_argument("--repeat", type=int, default=5, help="publish runs per size and server")
    ap.add_argument("--rounds", type=int, default=1, help="wrk runs per figure and server, alternating")
    ap.add_argument("--db", choices=["mariadb", "postgres"], default="mariadb")
    args = ap.parse_args()
    clitools.CMD_TIMEOUT = 900
    missing = have_notary_stack() or (None if shutil.which("wrk") else "wrk")
    if missing:
        raise SystemExit(f"not installed: {missing}")
    reason = database_reachable(args.db)
    if reason:
        raise SystemExit(reason)

    work = Path(tempfile.mkdtemp(prefix="tb-takeover-bench-"))
    dbs: list[NotaryDatabase] = []
    deps: dict[str, Deployment] = {}
    rep = Report()
    try:
        for name in ("upstream", "trustbox"):
            db = NotaryDatabase.create(args.db)
            dbs.append(db)
            deps[name] = Deployment(work / name, db)
        deps["upstream"].start_upstream()
        deps["trustbox"].start_trustbox()
        servers = {name: Handle(name, d.url, d.ca) for name, d in deps.items()}
        print(f"# trust_takeover_bench: db={args.db}; {', '.join(f'{n} {h.url}' for n, h in servers.items())}; "
              f"wrk {args.duration:g}s per run, {args.rounds} round(s); {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        owners = {name: NotaryClient(work / f"{name}-owner", h) for name, h in servers.items()}  # type: ignore[arg-type]
        bench_gets(servers, owners, rep, args, GET_GUN)
        for size in args.sizes:
            gun = f"bench.example.test/takeover-publish-{size}"
            times: dict[str, list[float]] = {name: [] for name in servers}
            for owner in owners.values():
                new_repo(owner, gun)
            for r in range(args.repeat):
                for name, owner in owners.items():
                    stage_targets(owner, gun, [f"r{r}-t{i:05d}" for i in range(size)])
                    dt, res = timed(lambda o=owner, g=gun: o.run("publish", "publish", g))
                    must(res, f"publish of {size} targets to {name}")
                    times[name].append(dt)
            for name in servers:
                rep.add_runs(f"{name}.publish_{size}", [t * 1000 for t in times[name]], "ms")
        print(f"# load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1 / 5 / 15 min)")
        print("# ratios trustbox/upstream (throughput: higher is better; times: lower is better)")
        for key in list(rep.values):
            if key.startswith("upstream.") and not key.endswith((".latency_avg", ".errors")):
                metric = key.removeprefix("upstream.")
                up, tb = rep.get(key), rep.get(f"trustbox.{metric}")
                if up and tb is not None:
                    rep.add(f"ratio.{metric}", tb / up, "x")
    finally:
        for d in deps.values():
            d.stop()
        for db in dbs:
            db.drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
