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
