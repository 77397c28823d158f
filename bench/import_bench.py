#!/usr/bin/env python3
"""Side-by-side benchmark of ``trustbox trust import``: into trustbox's trust server vs into upstream
notary-server 0.7, both on this machine (TLS, same throw-away CA), the same archive for both.

The archive is a repository whose timestamp reached version ``--timestamp-version`` (a long-lived
repository: notary-server re-signs its timestamp every time it expires), with ``--targets`` tags in
``targets/releases``. An import publishes one root version per update until the new server's
snapshot and timestamp versions pass the archive's (docs/migrate.md), so the time grows with that
version; the figures are the whole import (key lookup, every update, the final read-back as a
pinned client) and the updates per second.

Output: ``name value unit`` lines, then ``ratio.*`` lines (trustbox / upstream).
Usage: ``python3 bench/import_bench.py [--timestamp-version 300] [--targets 50]``. Never run by pytest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository root: tests.* helpers
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Report  # noqa: E402
from tests.helpers.simulator import RepositorySimulator, target_meta  # noqa: E402
from tests.interop.servers import make_tls, start_trustbox, start_upstream  # noqa: E402

from trustbox.client.trust.archive import TrustArchive  # noqa: E402
from trustbox.client.trust.importer import import_archive  # noqa: E402
from trustbox.keystore.passphrase import constant_retriever  # noqa: E402
from trustbox.keystore.store import KeyStore  # noqa: E402
from trustbox.tuf.timefmt import utcnow  # noqa: E402

PASSPHRASE = "bench-root-passphrase"


def build_archive(timestamp_version: int, targets: int) -> tuple[TrustArchive, RepositorySimulator]:
    b = RepositorySimulator(now=utcnow() - timedelta(hours=1))
    b.initial({f"tag{i}": target_meta(i % 256) for i in range(targets)})
    while b.versions["timestamp"] < timestamp_version:
        b.make_timestamp()
    files = {"root.json": b.docs["root"], "1.root.json": b.docs["root"], "targets.json": b.docs["targets"],
             "targets/releases.json": b.docs["targets/releases"], "snapshot.json": b.docs["snapshot"],
             "timestamp.json": b.docs["timestamp"]}
    return TrustArchive(b.gun, "bench", utcnow(), files), b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timestamp-version", type=int, default=300)
    ap.add_argument("--targets", type=int, default=50)
    args = ap.parse_args()
    report = Report()
    archive, builder = build_archive(args.timestamp_version, args.targets)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        work = Path(tmp)
        store = KeyStore(work / "keys", constant_retriever(PASSPHRASE))
        for key, _pub in builder.root_keys:
            store.add_key(key, "root")
        tls = make_tls(work / "tls")
        servers = {"upstream": start_upstream(work / "upstream", tls),
                   "trustbox": start_trustbox(work / "trustbox", tls, f"sqlite:///{work}/trustbox.db")}
        try:
            for name, server in servers.items():
                start = time.perf_counter()
                result = import_archive(archive, server_url=server.url, trust_dir=work / "keys", ca_files=(tls.ca_cert,),
                                        environ={}, passphrase_retriever=constant_retriever(PASSPHRASE))
                elapsed = time.perf_counter() - start
                report.add(f"{name}.import_ts{args.timestamp_version}", elapsed, "s")
                report.add(f"{name}.updates", result.updates, "updates")
                report.add(f"{name}.updates_per_s", result.updates / elapsed, "updates/s")
        finally:
            for server in servers.values():
                server.stop()
    for metric in (f"import_ts{args.timestamp_version}", "updates_per_s"):
        t, u = report.get(f"trustbox.{metric}"), report.get(f"upstream.{metric}")
        if t and u:
            report.add(f"ratio.{metric}", t / u, "x")


if __name__ == "__main__":
    main()
