#!/usr/bin/env python3
"""Side-by-side benchmark: trustbox registry vs upstream docker-registry (distribution).

Measures, on the same machine in one run:
  * upload of one big blob, monolithic (POST + PUT) and chunked (POST + PATCH... + PUT);
  * download of it (GET, full);
  * manifest GETs by tag with wrk at 1, 16 and 64 connections;
  * peak memory: VmHWM summed over each server's processes (counts pages shared by forked
    workers once per process), and the peak of the summed PSS sampled every 50 ms (shared
    pages split between processes: the real footprint).

Each of ``--trials`` trials starts both servers on empty storage and measures one after the
other, in alternating order (the second server of a trial finds a disk still busy with the
first one's 2 GiB, so one order alone favours whichever goes first). Prints a ratio line per
trial, then ``name value unit`` lines with each metric's median over the trials (peaks: the
maximum), then ratios of those medians (trustbox / upstream) with the per-trial range.

    python3 bench/registry_bench.py [--size-mib 1024] [--chunk-mib 64] [--duration 5] [--workers 2]
                                    [--trials 4] [--order upstream-first|trustbox-first]
                                    [--settle SECONDS]

The HTTP client is a tiny raw-socket one using sendfile()/recv_into(), so it is not the
bottleneck. trustbox fsyncs every blob before answering 201; upstream does not fsync.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- a minimal HTTP/1.1 client ---------------------------------------------------------------


def _read_response(sock: socket.socket, sink: bool = False) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    if not sink:
        body = rest
        while len(body) < length:
            data = sock.recv(min(1 << 20, length - len(body)))
            if not data:
                break
            body += data
        return status, headers, body
    got = len(rest)
    view = memoryview(bytearray(1 << 20))
    while got < length:
        n = sock.recv_into(view, min(len(view), length - got))
        if n == 0:
            break
        got += n
    return status, headers, b""


def request(addr: tuple[str, int], method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes = b"", file: tuple[int, int, int] | None = None,
            sink: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; ``file`` = (fd, offset, length) is sent with sendfile."""
    with socket.create_connection(addr) as sock:
        length = file[2] if file else len(body)
        hdrs = {"Host": f"{addr[0]}:{addr[1]}", "Content-Length": str(length), "Connection": "close",
                **(headers or {})}
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        sock.sendall(head.encode())
        if file:
            fd, offset, count = file
            while count > 0:
                sent = os.sendfile(sock.fileno(), fd, offset, count)
                offset += sent
                count -= sent
        elif body:
            sock.sendall(body)
        return _read_response(sock, sink)


# --- servers ------------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.peak_pss_kib = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if request(("127.0.0.1", port), "GET", "/v2/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start")

    def pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def _sample(self) -> None:
        """Sum of PSS (shared pages split between processes) over the process group, every 50 ms."""
        while not self._stop.wait(0.05):
            total = 0
            for pid in self.pids():
                try:
                    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
                except OSError:
                    continue
                m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
                if m:
                    total += int(m.group(1))
            self.peak_pss_kib = max(self.peak_pss_kib, total)

    def peak_pss_mib(self) -> float:
        return self.peak_pss_kib / 1024

    def peak_rss_mib(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"VmHWM:\s+(\d+) kB", status)
            if m:
                total += int(m.group(1))
        return total / 1024

    def stop(self) -> None:
        self._stop.set()
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def start_trustbox(root: Path, workers: int, verify: str) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    cmd = [sys.executable, "-c", "from trustbox.cli import main; main()", "serve", "registry",
           "--listen", f"127.0.0.1:{port}", "--storage", str(root), "--workers", str(workers),
           "--verify-blobs", verify, "--log-level", "error"]
    return Server("trustbox", cmd, env, port)


def write_upstream_config(root: Path, port: int) -> Path:
    """The registry:2 config.yml the upstream server runs with (and trustbox, with --takeover)."""
    cfg = root.parent / f"{root.name}-config.yml"
    cfg.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: benchsecret\n"
    )
    return cfg


def start_upstream(root: Path, binary: str) -> Server:
    port = free_port()
    cfg = write_upstream_config(root, port)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root.parent)}  # clean: REGISTRY_* would override config
    return Server("upstream", [binary, "serve", str(cfg)], env, port)


def start_trustbox_config(root: Path, workers: int, verify: str, cfg: Path | None = None,
                          name: str = "trustbox") -> Server:
    """trustbox started as a registry:2 replacement: ``serve registry --config config.yml``
    (registry:2's layout). Without ``cfg``, upstream's config for a fresh ``root``; the port
    always comes from ``REGISTRY_HTTP_ADDR``, as registry:2's environment overrides allow."""
    port = free_port()
    if cfg is None:
        cfg = write_upstream_config(root, port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "REGISTRY_"))}
    env["REGISTRY_HTTP_ADDR"] = f"127.0.0.1:{port}"
    cmd = [sys.executable, "-c", "from trustbox.cli import main; main()", "serve", "registry",
           "--config", str(cfg), "--workers", str(workers), "--verify-blobs", verify]
    return Server(name, cmd, env, port)


def bench_takeover(server: Server, digest: str, size: int, duration: int) -> dict[str, float]:
    """trustbox serving what upstream stored (its registry:2 layout, no copy): the download of
    upstream's blob and manifest GETs of upstream's manifest."""
    addr = ("127.0.0.1", server.port)
    mib = size / (1 << 20)
    res: dict[str, float] = {}
    download(addr, "bench/mono", digest, size)
    res["download"] = mib / min(download(addr, "bench/mono", digest, size) for _ in range(2))
    for c in (1, 16, 64):
        res[f"manifest_get_c{c}"] = wrk(addr, "/v2/bench/small/manifests/latest", c, duration)
    return res


# --- measurements -------------------------------------------------------------------------------


def upload_monolithic(addr: tuple[str, int], repo: str, blob: Path, digest: str) -> float:
    size = blob.stat().st_size
    t0 = time.perf_counter()
    status, headers, _ = request(addr, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, status
    loc = headers["location"]
    loc = loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc.lstrip("/")
    sep = "&" if "?" in loc else "?"
    with open(blob, "rb") as f:
        status, _, body = request(addr, "PUT", f"/{loc}{sep}digest={digest}",
                                  {"Content-Type": "application/octet-stream"}, file=(f.fileno(), 0, size))
    assert status == 201, (status, body[:300])
    return time.perf_counter() - t0


def upload_chunked(addr: tuple[str, int], repo: str, blob: Path, digest: str, chunk: int) -> float:
    size = blob.stat().st_size
    t0 = time.perf_counter()
    status, headers, _ = request(addr, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202
    loc = headers["location"]
    with open(blob, "rb") as f:
        offset = 0
        while offset < size:
            n = min(chunk, size - offset)
            path = loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc.lstrip("/")
            status, headers, body = request(
                addr, "PATCH", f"/{path}",
                {"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + n - 1}"},
                file=(f.fileno(), offset, n))
            assert status == 202, (status, body[:300])
            loc = headers["location"]
            offset += n
    path = loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc.lstrip("/")
    sep = "&" if "?" in path else "?"
    status, _, body = request(addr, "PUT", f"/{path}{sep}digest={digest}")
    assert status == 201, (status, body[:300])
    return time.perf_counter() - t0


def download(addr: tuple[str, int], repo: str, digest: str, size: int) -> float:
    t0 = time.perf_counter()
    status, headers, _ = request(addr, "GET", f"/v2/{repo}/blobs/{digest}", sink=True)
    assert status == 200 and int(headers["content-length"]) == size, status
    return time.perf_counter() - t0


def push_manifest(addr: tuple[str, int], repo: str) -> None:
    cfg = b"{}"
    cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
    assert request(addr, "POST", f"/v2/{repo}/blobs/uploads/?digest={cd}", body=cfg)[0] in (201, 202)
    status, headers, _ = request(addr, "POST", f"/v2/{repo}/blobs/uploads/")
    if status == 202:  # upstream ignores ?digest on POST without body handling: do POST+PUT
        loc = headers["location"]
        path = loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc.lstrip("/")
        sep = "&" if "?" in path else "?"
        request(addr, "PUT", f"/{path}{sep}digest={cd}", body=cfg)
    layer = os.urandom(1000)
    ld = "sha256:" + hashlib.sha256(layer).hexdigest()
    status, headers, _ = request(addr, "POST", f"/v2/{repo}/blobs/uploads/")
    loc = headers["location"]
    path = loc.split("://", 1)[1].split("/", 1)[1] if "://" in loc else loc.lstrip("/")
    sep = "&" if "?" in path else "?"
    assert request(addr, "PUT", f"/{path}{sep}digest={ld}", body=layer)[0] == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": 1000}],
    }).encode()
    status, _, body = request(addr, "PUT", f"/v2/{repo}/manifests/latest", {"Content-Type": OCI_MANIFEST},
                              body=manifest)
    assert status == 201, (status, body)


def wrk(addr: tuple[str, int], path: str, conns: int, duration: int) -> float:
    threads = 1 if conns == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "-H", f"Accept: {OCI_MANIFEST}",
         f"http://{addr[0]}:{addr[1]}{path}"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw errors: {out}")
    return float(m.group(1)) if m else 0.0


def bench_one(server: Server, blob: Path, digest: str, chunk: int, duration: int,
              settle: float = 0.0) -> dict[str, float]:
    addr = ("127.0.0.1", server.port)
    size = blob.stat().st_size
    mib = size / (1 << 20)
    res: dict[str, float] = {}
    # Each timed upload starts on a clean disk: upstream does not fsync, so without this the
    # writeback of its last gigabyte competes with the next server's durable writes. On a
    # virtual disk the host may still be writing after sync() returns: ``settle`` seconds more.
    os.sync()
    time.sleep(settle)
    res["upload_monolithic"] = mib / upload_monolithic(addr, "bench/mono", blob, digest)
    os.sync()
    time.sleep(settle)
    res["upload_chunked"] = mib / upload_chunked(addr, "bench/chunked", blob, digest, chunk)
    download(addr, "bench/mono", digest, size)  # warm the page cache the same way for both
    res["download"] = mib / min(download(addr, "bench/mono", digest, size) for _ in range(2))
    push_manifest(addr, "bench/small")
    for c in (1, 16, 64):
        res[f"manifest_get_c{c}"] = wrk(addr, "/v2/bench/small/manifests/latest", c, duration)
    res["peak_rss_sum"] = server.peak_rss_mib()
    res["peak_pss"] = server.peak_pss_mib()
    return res


UNITS = {"upload_monolithic": "MiB/s", "upload_chunked": "MiB/s", "download": "MiB/s",
         "manifest_get_c1": "req/s", "manifest_get_c16": "req/s", "manifest_get_c64": "req/s",
         "peak_rss_sum": "MiB", "peak_pss": "MiB"}


def trial_orders(trials: int, first: str) -> list[list[str]]:
    """Server order of each trial: alternating, so each server goes first in half the trials.

    Whichever server is measured second finds a disk that has just taken the first one's
    2 GiB, so a single run favours the first; alternating cancels that out."""
    a, b = (["trustbox", "upstream"] if first == "trustbox-first" else ["upstream", "trustbox"])
    return [[a, b] if i % 2 == 0 else [b, a] for i in range(trials)]


def median(values: list[float]) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def write_blob(path: Path, size_mib: int) -> str:
    """Write a ``size_mib`` MiB test blob (16 MiB random blocks, alternately reversed) to ``path``;
    return its ``sha256:`` digest."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        block = os.urandom(16 << 20)
        for i in range(size_mib // 16 or 1):
            piece = block if i % 2 == 0 else block[::-1]
            piece = piece[: size_mib << 20] if size_mib < 16 else piece
            f.write(piece)
            h.update(piece)
    return "sha256:" + h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024, help="blob size [1024]")
    ap.add_argument("--chunk-mib", type=int, default=64, help="PATCH chunk size [64]")
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run [5]")
    ap.add_argument("--workers", type=int, default=2, help="trustbox worker processes [2]")
    ap.add_argument("--verify-blobs", default="first", choices=["always", "first", "never"])
    ap.add_argument("--upstream", default=shutil.which("docker-registry") or "/usr/bin/docker-registry")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait after sync() before each timed upload [0]")
    ap.add_argument("--trials", type=int, default=4,
                    help="trials; each starts both servers afresh on empty storage, in alternating "
                         "order; medians are reported [4]")
    ap.add_argument("--order", choices=["upstream-first", "trustbox-first"], default="upstream-first",
                    help="which server is measured first in the first trial [upstream-first]")
    ap.add_argument("--workdir", default=None, help="where blobs and stores go [a temp dir under /var/tmp]")
    ap.add_argument("--takeover", action="store_true",
                    help="run trustbox as a registry:2 replacement: started with upstream's config.yml "
                         "(registry:2's storage layout), and after each upstream run also on upstream's "
                         "storage in place (download and manifest GETs of what upstream stored)")
    args = ap.parse_args()
    for tool in ("wrk", args.upstream):
        if not shutil.which(tool):
            sys.exit(f"missing tool: {tool}")
    if args.trials < 1:
        sys.exit("--trials must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="regbench-", dir=args.workdir or "/var/tmp"))
    try:
        blob = work / "blob.bin"
        digest = write_blob(blob, args.size_mib)
        print(f"# blob {blob.stat().st_size} bytes, chunk {args.chunk_mib} MiB, wrk {args.duration}s, "
              f"trustbox workers={args.workers} verify={args.verify_blobs}, {args.trials} trials "
              f"alternating from {args.order}, settle {args.settle}s",
              flush=True)

        starters = {
            "upstream": lambda root: start_upstream(root, args.upstream),
            "trustbox": (lambda root: start_trustbox_config(root, args.workers, args.verify_blobs))
            if args.takeover else (lambda root: start_trustbox(root, args.workers, args.verify_blobs)),
        }
        trials: list[dict[str, dict[str, float]]] = []
        for t, order in enumerate(trial_orders(args.trials, args.order), 1):
            trial: dict[str, dict[str, float]] = {}
            for name in order:
                root = work / f"{name}-{t}"
                server = starters[name](root)
                try:
                    trial[name] = bench_one(server, blob, digest, args.chunk_mib << 20, args.duration,
                                            args.settle)
                finally:
                    server.stop()
                    if not (args.takeover and name == "upstream"):
                        shutil.rmtree(root, ignore_errors=True)  # every trial starts on empty storage
                if args.takeover and name == "upstream":
                    cfg = root.parent / f"{root.name}-config.yml"
                    taker = start_trustbox_config(root, args.workers, args.verify_blobs, cfg, "takeover")
                    try:
                        trial["takeover"] = bench_takeover(taker, digest, blob.stat().st_size, args.duration)
                    finally:
                        taker.stop()
                        shutil.rmtree(root, ignore_errors=True)
            trials.append(trial)
            print(f"# trial {t} ({order[0]} first): " + ", ".join(
                f"{k} {trial['trustbox'][k] / trial['upstream'][k]:.2f}x"
                for k in ("upload_monolithic", "upload_chunked", "download")), flush=True)

        results = {name: {k: (max if k.startswith("peak") else median)([tr[name][k] for tr in trials])
                          for k in UNITS} for name in ("upstream", "trustbox")}
        for name in ("upstream", "trustbox"):
            for k, v in results[name].items():
                print(f"{name}.{k} {v:.1f} {UNITS[k]}")
        if args.takeover:  # trustbox on upstream's own storage, against upstream on it
            for k in ("download", "manifest_get_c1", "manifest_get_c16", "manifest_get_c64"):
                vals = [tr["takeover"][k] for tr in trials]
                print(f"takeover.{k} {median(vals):.1f} {UNITS[k]}")
                spread = [tr["takeover"][k] / tr["upstream"][k] for tr in trials if tr["upstream"][k]]
                extra = f" (trials {min(spread):.2f}-{max(spread):.2f})" if len(spread) > 1 else ""
                print(f"ratio.takeover.{k} {median(vals) / results['upstream'][k]:.2f} x{extra}")
        for k in UNITS:
            u, t = results["upstream"][k], results["trustbox"][k]
            spread = [tr["trustbox"][k] / tr["upstream"][k] for tr in trials if tr["upstream"][k]]
            extra = f" (trials {min(spread):.2f}-{max(spread):.2f})" if len(spread) > 1 else ""
            print(f"ratio.{k} {t / u if u else float('inf'):.2f} x{extra}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
