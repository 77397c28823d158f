"""The benchmark scripts still run: each in a tiny configuration, both servers, every figure printed.

These check that ``bench/`` works end to end (servers start, requests succeed, every metric and
ratio line is printed with a number); they assert nothing about speed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
LINE = re.compile(r"^(?P<name>[\w.]+) (?P<value>-?[\d.]+|inf) (?P<unit>\S+)")

pytestmark = pytest.mark.interop


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def _run(script: str, *args: str, timeout: float = 300) -> dict[str, float]:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    figures = {}
    for line in proc.stdout.splitlines():
        m = LINE.match(line)
        if m:
            figures[m["name"]] = float(m["value"])
    return figures


def test_registry_bench_runs(tmp_path):
    _need("wrk", "docker-registry")
    figures = _run("registry_bench.py", "--size-mib", "16", "--chunk-mib", "4", "--duration", "1",
                   "--trials", "2", "--workers", "1", "--workdir", str(tmp_path))
    for server in ("upstream", "trustbox"):
        for metric in ("upload_monolithic", "upload_chunked", "download", "manifest_get_c1",
                       "manifest_get_c16", "manifest_get_c64", "peak_rss_sum"):
            assert figures[f"{server}.{metric}"] > 0, (server, metric)
    assert figures["ratio.upload_monolithic"] > 0
    assert list(tmp_path.iterdir()) == []  # its work directory is removed


def test_trust_bench_runs():
    _need("wrk", "notary", "notary-server")
    figures = _run("trust_bench.py", "--duration", "1", "--connections", "1", "--sizes", "1",
                   "--repeat", "1", "--rounds", "1")
    for server in ("upstream", "trustbox"):
        assert figures[f"{server}.get_timestamp.c1"] > 0
        assert figures[f"{server}.get_targets.c1"] > 0
        assert figures[f"{server}.publish_1"] > 0
    assert figures["ratio.get_timestamp.c1"] > 0


def test_soak_runs():
    _need("wrk")
    proc = subprocess.run([sys.executable, str(BENCH / "soak.py"), "--minutes", "0.2", "--interval", "4"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "RESULT PASS: 0 errors" in proc.stdout


def test_trust_takeover_bench_runs():
    _need("wrk", "notary", "notary-server", "notary-signer")
    from tests.helpers.notary_stack import database_reachable

    reason = database_reachable("mariadb")
    if reason:
        pytest.skip(reason)
    figures = _run("trust_takeover_bench.py", "--duration", "1", "--connections", "1", "--sizes", "1",
                   "--repeat", "1")
    for server in ("upstream", "trustbox"):
        assert figures[f"{server}.get_timestamp.c1"] > 0
        assert figures[f"{server}.publish_1"] > 0
    assert figures["ratio.publish_1"] > 0


def test_registry_bench_takeover_runs(tmp_path):
    _need("wrk", "docker-registry")
    figures = _run("registry_bench.py", "--size-mib", "16", "--chunk-mib", "4", "--duration", "1",
                   "--trials", "1", "--workers", "1", "--takeover", "--workdir", str(tmp_path))
    for metric in ("download", "manifest_get_c1", "manifest_get_c16", "manifest_get_c64"):
        assert figures[f"takeover.{metric}"] > 0, metric
        assert figures[f"ratio.takeover.{metric}"] > 0, metric
    assert figures["trustbox.upload_monolithic"] > 0
    assert list(tmp_path.iterdir()) == []


def test_import_bench_runs():
    _need("notary-server")
    figures = _run("import_bench.py", "--timestamp-version", "3", "--targets", "2")
    for server in ("upstream", "trustbox"):
        assert figures[f"{server}.import_ts3"] > 0 and figures[f"{server}.updates"] >= 4
    assert figures["ratio.updates_per_s"] > 0


def test_s3_bench_runs(tmp_path):
    """Both registries on one radosgw (a fresh one-node Ceph cluster, memstore)."""
    _need("wrk", "docker-registry", "ceph-mon", "ceph-osd", "radosgw")
    figures = _run("s3_bench.py", "--size-mib", "4", "--chunk-mib", "1", "--duration", "1", "--trials", "1",
                   "--objectstore", "memstore", "--workdir", str(tmp_path))
    assert figures["ceph.start"] > 0
    for server in ("upstream", "trustbox"):
        for metric in ("upload_monolithic", "upload_chunked", "download", "manifest_get_c1", "manifest_get_c16"):
            assert figures[f"{server}.{metric}"] > 0, (server, metric)
    assert figures["ratio.download"] > 0
    assert list(tmp_path.iterdir()) == []  # its work directory (and the cluster's) is removed


def test_policy_bench_runs():
    _need("wrk")
    figures = _run("policy_bench.py", "--repos", "2", "--duration", "1", "--trials", "1")
    for name in ("cold.first_get_p50", "cold.first_get_p99", "policy_off.manifest_get_tag_c16",
                 "policy_on.manifest_get_tag_c16", "ratio.manifest_get_tag_c16",
                 "policy_off_control.manifest_get_tag_c16", "ratio.control_c16"):
        assert figures[name] > 0, name


def test_migrate_bench_runs(tmp_path):
    _need("docker-registry")
    figures = _run("migrate_bench.py", "--repos", "2", "--tags", "2", "--image-mib", "0.25", "--baseline-mib", "1",
                   "--verify-sample", "2", "--workdir", str(tmp_path))
    assert figures["migrate.repositories"] == 2 and figures["migrate.images"] == 4
    for name in ("baseline.upstream_upload", "baseline.trustbox_upload", "migrate.total_time", "migrate.copy_throughput",
                 "ratio.copy_vs_slower_upload", "verify.sampled"):
        assert figures[name] > 0, name
    assert list(tmp_path.iterdir()) == []  # its work directory is removed
