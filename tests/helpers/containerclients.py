"""Container clients from Debian for pulls from a plain-HTTP loopback registry: podman (vfs
storage in a temp dir) and containerd's ``ctr`` (a private containerd started on a temp
socket). See ``/work/shared/spec/sigstore-attachments.md`` section 4 for the flags."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.net import stop_process

PODMAN = shutil.which("podman")
CTR = shutil.which("ctr")
CONTAINERD = shutil.which("containerd")


@contextmanager
def podman_store() -> Iterator[Path]:
    """A short temporary folder for podman's root and runroot (podman refuses a runroot path
    over 50 characters, which pytest's tmp_path is); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pm-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def podman_pull(root: Path, ref: str) -> str:
    """``podman pull`` of ``ref`` (plain HTTP) into a vfs store under ``root``; the image ID."""
    argv = [PODMAN or "podman", "--root", str(root / "root"), "--runroot", str(root / "run"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "pull", "--tls-verify=false", "-q", ref]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        raise AssertionError(f"podman pull {ref} failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout.strip()


def podman_digest(root: Path, ref: str) -> str:
    """The manifest digest podman recorded for the pulled ``ref``."""
    argv = [PODMAN or "podman", "--root", str(root / "root"), "--runroot", str(root / "run"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "image", "inspect", "--format", "{{.Digest}}", ref]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"podman image inspect {ref} failed:\n{p.stderr}")
    return p.stdout.strip()


@contextmanager
def containerd(workdir: Path) -> Iterator[Path]:
    """A private containerd (no CRI plugin) on a socket under ``workdir``; yields the socket."""
    workdir.mkdir(parents=True, exist_ok=True)
    sock = workdir / "containerd.sock"
    config = workdir / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{workdir / "root"}"\n'
        f'state = "{workdir / "state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
        f'[ttrpc]\n  address = "{workdir / "ttrpc.sock"}"\n'
        f'[debug]\n  address = "{workdir / "debug.sock"}"\n'
    )
    log = workdir / "containerd.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([CONTAINERD or "containerd", "--config", str(config)], stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"containerd exited: {log.read_text()[-2000:]}")
            if sock.exists() and subprocess.run([CTR or "ctr", "--address", str(sock), "version"],
                                                capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"containerd did not start: {log.read_text()[-2000:]}")
        yield sock
    finally:
        stop_process(proc)


def ctr_pull(sock: Path, ref: str, all_platforms: bool = False) -> str:
    """``ctr images pull --plain-http`` of ``ref``; the digest containerd recorded for it."""
    argv = [CTR or "ctr", "--address", str(sock), "images", "pull", "--plain-http"]
    if all_platforms:
        argv.append("--all-platforms")
    p = subprocess.run([*argv, ref], capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        raise AssertionError(f"ctr pull {ref} failed:\n{p.stdout}\n{p.stderr}")
    listing = subprocess.run([CTR or "ctr", "--address", str(sock), "images", "ls"], capture_output=True,
                             text=True, timeout=30).stdout
    for line in listing.splitlines():
        cols = line.split()
        if cols and cols[0] == ref:
            return next(c for c in cols if c.startswith("sha256:"))
    raise AssertionError(f"ctr images ls has no {ref}:\n{listing}")
