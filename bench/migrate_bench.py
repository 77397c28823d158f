#!/usr/bin/env python3
"""Migration benchmark: ``trustbox trust migrate`` between two registry + trust server pairs.

Source pair: docker-registry 2.8 (filesystem) + ``trustbox serve trust`` (SQLite); destination
pair: ``trustbox serve registry`` + ``trustbox serve trust``; all plain HTTP on 127.0.0.1.

1. Baseline: each registry's own upload rate: ``--baseline-mib`` of fresh random blobs of the
   layer size uploaded from memory with the registry client (``upload_blob``, same ``--jobs``
   threads and the same transfer sizes as the copy), measured before and after the migration
   (the machine is shared; the mean of the two is used); the slower registry's rate is the reference.
2. Source data: ``--repos`` repositories x ``--tags`` tags, each tag its own image of
   ``--image-mib`` MiB of random bytes in ``--layers`` layers; all tags of a repository signed in
   one publish on the source trust server.
3. The migration (``Migrator``, what the CLI runs): export + copy + import for every repository.
   Timed as a whole, and the copy phases alone (bytes copied / copy time = copy throughput).
4. A sample of the moved tags is checked with content trust at the destination (``verify_image``).

Prints ``name value unit`` lines; ``ratio.copy_vs_slower_upload`` is the copy throughput over the
slower registry's own upload rate (goal >= 0.8).

    python3 bench/migrate_bench.py [--repos 100] [--tags 10] [--image-mib 20] [--layers 2] [--jobs 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from bench.common import Report, cpu_seconds, pids_with_argument  # noqa: E402
from tests.helpers.net import free_port, stop_process, wait_http  # noqa: E402
from tests.images.randimage import push_random_image  # noqa: E402
from tests.images.registries import trustbox_registry, upstream_registry  # noqa: E402

from trustbox.client.images.distribution import RegistryClient, RegistryOptions  # noqa: E402
from trustbox.client.images.migrate import MigrateOptions, Migrator  # noqa: E402
from trustbox.client.images.transfer import NotaryTrust, Reporter, TransferOptions, verify_image  # noqa: E402
from trustbox.client.trust.repository import TrustClient  # noqa: E402
from trustbox.oci.descriptor import Descriptor  # noqa: E402
from trustbox.tuf.metadata import TARGETS, FileMeta  # noqa: E402

MIB = 1024 * 1024


@contextmanager
def trust_server(workdir: Path) -> Iterator[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [sys.executable, "-m", "trustbox", "serve", "trust", "--listen", f"127.0.0.1:{port}",
            "--db", f"sqlite:///{workdir / 'trust.db'}", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    log = workdir / "trust.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/_notary_server/health", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


class CpuMeter:
    """CPU seconds of this process (the client) and of the servers under ``work``, per phase."""

    def __init__(self, work: Path) -> None:
        self.pids = {name: pids_with_argument(str(work / name)) for name in ("src-registry", "dst-registry")}
        self.pids["trust-servers"] = pids_with_argument(str(work / "src-trust")) + pids_with_argument(str(work / "dst-trust"))

    def sample(self) -> dict[str, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        out = {"client": me.ru_utime + me.ru_stime}
        out.update({name: sum(cpu_seconds(p) for p in pids) for name, pids in self.pids.items()})
        return out

    @contextmanager
    def phase(self, label: str, mib: Callable[[], float]) -> Iterator[None]:
        """Print CPU seconds per GiB of each process over the block (``mib``: MiB moved, read after it)."""
        before = self.sample()
        yield
        after, gib = self.sample(), mib() / 1024
        parts = [f"{k} {(after[k] - before[k]) / gib:.2f}" for k in after if after[k] - before[k] >= 0.05]
        print(f"#   CPU s/GiB during {label}: " + ", ".join(parts), flush=True)


def layer_sizes(image_mib: float, layers: int) -> list[int]:
    total = int(image_mib * MIB)
    base = total // layers
    return [base + (total - base * layers if i == 0 else 0) for i in range(layers)]


def upload_rate(host: str, sizes: list[int], total: int, jobs: int, cpu: CpuMeter, label: str) -> float:
    """MiB/s of uploading ``total`` bytes of fresh random blobs (sizes cycled) with ``jobs`` threads
    (the CPU used while uploading printed as ``label``)."""
    blobs: list[bytes] = []
    n = 0
    while n < total:
        size = sizes[len(blobs) % len(sizes)]
        blobs.append(os.urandom(size))
        n += size
    import hashlib

    descs = [Descriptor("application/octet-stream", "sha256:" + hashlib.sha256(b).hexdigest(), len(b)) for b in blobs]
    with RegistryClient(host, RegistryOptions()) as c:
        c.prepare("baseline/upload", push=True)
        started = time.monotonic()
        with cpu.phase(label, lambda: n / MIB), ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda i: c.upload_blob("baseline/upload", descs[i], [blobs[i]]), range(len(blobs))))
        elapsed = time.monotonic() - started
    return n / MIB / elapsed


def populate(src_host: str, trust_url: str, trust_dir: Path, repos: int, tags: int, sizes: list[int],
             jobs: int) -> int:
    """Push and sign the source data; the bytes pushed."""
    pushed = 0
    lock = threading.Lock()

    def one_repo(r: int) -> None:
        nonlocal pushed
        repo = f"bench/repo{r:03d}"
        with RegistryClient(src_host, RegistryOptions()) as c:
            images = {f"v{t}": push_random_image(c, repo, f"v{t}", sizes) for t in range(tags)}
        with lock:
            pushed += sum(sum(d.size for d in m.blobs()) + m.size for m in images.values())
        with TrustClient(f"{src_host}/{repo}", trust_url, trust_dir) as tc:
            draft, _ = tc.draft_or_new()
            for tag, m in images.items():
                draft.add_target(TARGETS, tag, FileMeta(m.size, {"sha256": bytes.fromhex(m.digest.split(":")[1])}))
            tc.publish(draft)

    with ThreadPoolExecutor(max_workers=max(1, jobs // 2)) as pool:
        list(pool.map(one_repo, range(repos)))
    return pushed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repos", type=int, default=100)
    ap.add_argument("--tags", type=int, default=10)
    ap.add_argument("--image-mib", type=float, default=20)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--baseline-mib", type=float, default=0, help="baseline upload volume (default: min(data, 1 GiB))")
    ap.add_argument("--verify-sample", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("docker-registry") is None:
        print("docker-registry not installed (apt-get install docker-registry)", file=sys.stderr)
        return 2
    for k, v in {"DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "bench-root", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "bench-repo"}.items():
        os.environ[k] = v
    os.environ.pop("DOCKER_CONTENT_TRUST_SERVER", None)
    report = Report()
    sizes = layer_sizes(args.image_mib, args.layers)
    data_bytes = args.repos * args.tags * sum(sizes)
    baseline = int(args.baseline_mib * MIB) if args.baseline_mib else min(data_bytes, 1024 * MIB)
    work = Path(tempfile.mkdtemp(prefix="migrate-bench-", dir=args.workdir))
    os.environ["DOCKER_CONFIG"] = str(work / "docker-config")
    print(f"# {args.repos} repositories x {args.tags} tags x {args.image_mib:g} MiB ({args.layers} layers), "
          f"jobs {args.jobs}; load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        with ExitStack() as stack:
            src = stack.enter_context(upstream_registry(work / "src-registry"))
            dst = stack.enter_context(trustbox_registry(work / "dst-registry"))
            src_trust = stack.enter_context(trust_server(work / "src-trust"))
            dst_trust = stack.enter_context(trust_server(work / "dst-trust"))
            # the machine is shared: the baseline is measured before and after the migration. Every
            # measured phase starts with no dirty page waiting to be written (os.sync): otherwise
            # the kernel's write-back of what the previous phase wrote (2 GB pushed by populate)
            # runs during the next one and is charged to it.
            cpu = CpuMeter(work)
            os.sync()
            up_runs = [upload_rate(src.host, sizes, baseline, args.jobs, cpu, "the upload to upstream")]
            os.sync()
            tb_runs = [upload_rate(dst.host, sizes, baseline, args.jobs, cpu, "the upload to trustbox")]
            started = time.monotonic()
            pushed = populate(src.host, src_trust, work / "docker-config" / "trust", args.repos, args.tags, sizes, args.jobs)
            report.add("populate.time", time.monotonic() - started, "s")
            os.sync()
            options = MigrateOptions(to_server=dst_trust, from_server=src_trust, to_registry=dst.host,
                                     state_file=work / "state.json", jobs=args.jobs)
            repos = [f"{src.host}/bench/repo{r:03d}" for r in range(args.repos)]
            started = time.monotonic()
            outcomes = []
            with cpu.phase("the migration", lambda: sum(o.bytes_copied for o in outcomes) / MIB), \
                    Migrator(options, Reporter()) as m:
                outcomes.extend(m.migrate(r) for r in repos)
            total = time.monotonic() - started
            failed = [o for o in outcomes if o.status != "moved"]
            for o in failed[:5]:
                print(f"# FAILED {o.repo}: {o.reason}", flush=True)
            os.sync()
            tb_runs.append(upload_rate(dst.host, sizes, baseline, args.jobs, cpu, "the upload to trustbox"))
            os.sync()
            up_runs.append(upload_rate(src.host, sizes, baseline, args.jobs, cpu, "the upload to upstream"))
            up, tb = sum(up_runs) / 2, sum(tb_runs) / 2
            report.add("baseline.upstream_upload", up, "MiB/s")
            print(f"#   before {up_runs[0]:.1f}, after {up_runs[1]:.1f}", flush=True)
            report.add("baseline.trustbox_upload", tb, "MiB/s")
            print(f"#   before {tb_runs[0]:.1f}, after {tb_runs[1]:.1f}", flush=True)
            slower = min(up, tb)
            copy_s = sum(o.copy_seconds for o in outcomes)
            copied = sum(o.bytes_copied for o in outcomes)
            report.add("migrate.repositories", len(outcomes) - len(failed), "moved")
            report.add("migrate.images", sum(o.images_copied for o in outcomes), "copied")
            report.add("migrate.data", copied / MIB, "MiB")
            report.add("migrate.total_time", total, "s")
            report.add("migrate.copy_time", copy_s, "s")
            report.add("migrate.trust_time", total - copy_s, "s")
            report.add("migrate.copy_throughput", copied / MIB / copy_s if copy_s else 0.0, "MiB/s")
            report.add("ratio.copy_vs_slower_upload", (copied / MIB / copy_s) / slower if copy_s else 0.0, "x")
            print(f"# source data pushed: {pushed / MIB:.1f} MiB; slower registry: "
                  f"{'upstream' if up <= tb else 'trustbox'}; load average {os.getloadavg()[0]:.2f}", flush=True)
            # a sample checked with content trust at the destination
            opts = TransferOptions(registry=RegistryOptions(),
                                   trust=NotaryTrust(server_url=dst_trust, trust_dir=work / "verify-trust"))
            checked = 0
            for r in range(0, args.repos, max(1, args.repos // max(1, args.verify_sample))):
                v = verify_image(f"{dst.host}/bench/repo{r:03d}:v0", opts=opts, reporter=Reporter())
                if not v.verified:
                    print(f"# NOT VERIFIED {v.image}: {v.reason}", flush=True)
                    return 1
                checked += 1
            report.add("verify.sampled", checked, "tags")
            return 1 if failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
