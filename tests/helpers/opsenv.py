"""Clients for the operations tests (tests/ops): trustbox, the real notary and docker CLIs, each
with its own docker config / trust dir pointed at one running stack (tests/e2e/stack.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

NOTARY = shutil.which("notary") or "/usr/bin/notary"
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
ROOT_PASS = "ops root passphrase"
REPO_PASS = "ops repository passphrase"
TIMEOUT = 120


def have(tool: str) -> bool:
    """Whether a client binary is installed."""
    return os.access(tool, os.X_OK)


def rfc3339(when: datetime) -> str:
    """``2026-01-02T03:04:05Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_ago(days: float) -> datetime:
    """Now minus ``days``."""
    return datetime.now(UTC) - timedelta(days=days)


def trustbox_exe() -> list[str]:
    """The trustbox command (the checkout's sources first when PYTHONPATH says so)."""
    return [sys.executable, "-m", "trustbox"]


def base_env(trust_url: str, ca: Path, config: Path) -> dict[str, str]:
    """docker's environment for one client: its config dir (with the trust server's CA), the trust
    server, passphrases for docker, notary and trustbox."""
    hostport = trust_url.split("//", 1)[1]
    tls = config / "tls" / hostport
    tls.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca, tls / "ca.crt")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(config.parent),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "DOCKER_CONFIG": str(config),
        "DOCKER_CONTENT_TRUST_SERVER": trust_url,
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": ROOT_PASS,
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": REPO_PASS,
        "NOTARY_ROOT_PASSPHRASE": ROOT_PASS,
        "NOTARY_TARGETS_PASSPHRASE": REPO_PASS,
        "NOTARY_SNAPSHOT_PASSPHRASE": REPO_PASS,
        "NOTARY_DELEGATION_PASSPHRASE": REPO_PASS,
        "DOCKER_HOST": f"unix://{config}/no-daemon.sock",
        "DOCKER_CLI_HINTS": "false",
    }
    for name in ("PYTHONPATH", "SOFTHSM2_CONF"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def run(argv: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run a client; stdout/stderr captured as text."""
    return subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def tb(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``trustbox ARGS`` with ``extra`` added to the environment."""
    return run([*trustbox_exe(), *args], {**env, **extra})


def notary(env: dict[str, str], trust_url: str, ca: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``notary -d $DOCKER_CONFIG/trust -s URL --tlscacert CA ARGS``."""
    trust_dir = Path(env["DOCKER_CONFIG"]) / "trust"
    return run([NOTARY, "-d", str(trust_dir), "-s", trust_url, "--tlscacert", str(ca), *args], env, stdin)


def docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI (client only; trust verbs need no daemon)."""
    return run([DOCKER, *args], env)


def share_keys(src_config: Path, dst_config: Path) -> None:
    """Copy the private keys of one client's trust dir into another's (new files only)."""
    src = src_config / "trust" / "private"
    dst = dst_config / "trust" / "private"
    dst.mkdir(parents=True, exist_ok=True, mode=0o700)
    for f in src.glob("*.key"):
        target = dst / f.name
        if not target.exists():
            shutil.copy2(f, target)
