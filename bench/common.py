"""Shared benchmark helpers: wrk runs and parsing, process RSS, timing, result lines."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WRK = shutil.which("wrk") or "/usr/bin/wrk"


@dataclass
class WrkResult:
    requests_per_sec: float
    requests: int
    non_2xx: int
    socket_errors: int
    latency_avg_ms: float
    raw: str


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    return float(m[1]) * _UNITS_MS[m[2]] if m else float("nan")


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lat = re.search(r"Latency\s+(\S+)", out)
    return WrkResult(
        requests_per_sec=float(rps[1]) if rps else 0.0,
        requests=int(total[1]) if total else 0,
        non_2xx=int(non2xx[1]) if non2xx else 0,
        socket_errors=sum(int(x) for x in sock.groups()) if sock else 0,
        latency_avg_ms=_ms(lat[1]) if lat else float("nan"),
        raw=out,
    )


def run_wrk(url: str, connections: int, duration_s: float, threads: int | None = None) -> WrkResult:
    """``wrk -c N -t T -d Ds URL`` (wrk does not verify TLS certificates)."""
    if not os.path.exists(WRK):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    threads = threads or max(1, min(connections, 2))
    argv = [WRK, "-c", str(connections), "-t", str(threads), "-d", f"{duration_s:g}s", "--latency", url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return parse_wrk(proc.stdout)


def vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def process_tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for c in children:
        out.extend(process_tree(int(c)))
    return out


def peak_rss_mib(pid: int) -> tuple[float, float]:
    """(largest single-process VmHWM, sum of VmHWM over the process tree), in MiB."""
    vals = [v for v in (vm_hwm_kib(p) for p in process_tree(pid)) if v is not None]
    if not vals:
        return float("nan"), float("nan")
    return max(vals) / 1024.0, sum(vals) / 1024.0


def _status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def pss_kib(pid: int) -> int | None:
    """Proportional set size (shared pages divided among their users) from smaps_rollup."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its process tree so far (0.0 for a process gone)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / tick


def pids_with_argument(text: str) -> list[int]:
    """The processes whose command line has an argument containing ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in a for a in argv):
            found.append(int(entry.name))
    return found


@dataclass
class TreeMemory:
    """Memory of a process tree, MiB: peaks (VmHWM) and current RSS and PSS, summed and largest."""

    processes: int
    peak_largest: float
    peak_sum: float
    rss_sum: float
    pss_sum: float


def tree_memory(pid: int) -> TreeMemory:
    pids = process_tree(pid)

    def total(values: list[int | None]) -> float:
        present = [v for v in values if v is not None]
        return sum(present) / 1024.0 if present else float("nan")

    peaks = [v for v in (vm_hwm_kib(p) for p in pids) if v is not None]
    return TreeMemory(
        processes=len(pids),
        peak_largest=max(peaks) / 1024.0 if peaks else float("nan"),
        peak_sum=total(list(peaks)),
        rss_sum=total([_status_kib(p, "VmRSS") for p in pids]),
        pss_sum=total([pss_kib(p) for p in pids]),
    )


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    res = fn()
    return time.perf_counter() - t0, res


class Report:
    """Collects ``name value unit`` lines, printing each as it comes."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[float, str]] = {}
        self.runs: dict[str, list[float]] = {}

    def add(self, name: str, value: float, unit: str) -> None:
        self.values[name] = (value, unit)
        print(f"{name} {value:.6g} {unit}", flush=True)

    def get(self, name: str) -> float | None:
        v = self.values.get(name)
        return v[0] if v else None

    def add_runs(self, name: str, runs: list[float], unit: str) -> None:
        """The median of ``runs`` as ``name``, with a comment line giving the spread."""
        self.runs[name] = list(runs)
        self.add(name, statistics.median(runs), unit)
        if len(runs) > 1:
            print(f"#   {name}: min {min(runs):.6g}, max {max(runs):.6g}, n={len(runs)}: "
                  + " ".join(f"{r:.6g}" for r in runs), flush=True)
