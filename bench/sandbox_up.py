"""Time `trustbox sandbox up` to healthy (fresh sandbox each run) and print `name value unit` lines.

Usage: python bench/sandbox_up.py [--runs N]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp) / "sb"
            ports = ["--trust-port", str(free_port()), "--registry-port", str(free_port())]
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "trustbox", "sandbox", "up", "--dir", str(d), *ports],
                           check=True, capture_output=True)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "trustbox", "sandbox", "up", "--dir", str(d), *ports],
                           check=True, capture_output=True)
            warm.append(time.perf_counter() - t0)
            subprocess.run([sys.executable, "-m", "trustbox", "sandbox", "down", "-v", "--dir", str(d)],
                           check=True, capture_output=True)
    print(f"sandbox_up_new_median {statistics.median(cold):.2f} s")
    print(f"sandbox_up_new_max {max(cold):.2f} s")
    print(f"sandbox_up_running_median {statistics.median(warm):.2f} s")


if __name__ == "__main__":
    main()
