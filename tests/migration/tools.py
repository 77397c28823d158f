"""Drive the real clients for the migration tests: the notary CLI (answering its login and
confirmation prompts as they appear), the docker CLI 28 (no daemon) and ``trustbox`` itself."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

NOTARY_PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": "migrate-root-pass",
    "NOTARY_TARGETS_PASSPHRASE": "migrate-repo-pass",
    "NOTARY_SNAPSHOT_PASSPHRASE": "migrate-repo-pass",
    "NOTARY_DELEGATION_PASSPHRASE": "migrate-repo-pass",
}
DOCKER_PASSPHRASES = {
    "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "migrate-root-pass",
    "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "migrate-repo-pass",
}
CACHED_TIMESTAMP = "using cached timestamp"
SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Out:
    rc: int
    out: str
    err: str
    argv: list[str]

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\nrc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}"


def _base_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8", "TZ": "UTC"}


def notary(trust_dir: Path, server: str, ca: Path, *args: str, login: tuple[str, str] | None = None,
           confirm: bool = False, timeout: float = 120) -> Out:
    """``notary -d TRUST_DIR -s SERVER --tlscacert CA ARGS``, answering ``Enter username:`` /
    ``Enter password:`` with ``login`` and ``(yes/no)`` with yes, as each prompt appears (notary
    reads every answer through a fresh buffered reader, so they cannot be piped at once)."""
    argv = ["notary", "-d", str(trust_dir), "-s", server, "--tlscacert", str(ca), *args]
    env = _base_env(trust_dir.parent) | NOTARY_PASSPHRASES
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    chunks: list[bytes] = []
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: stdout.read1(4096), b"")))
    reader.start()
    prompts = {"Enter username:": login[0] if login else "", "Enter password:": login[1] if login else "",
               "(yes/no)": "yes" if confirm else "no"}
    answered = dict.fromkeys(prompts, 0)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        text = b"".join(chunks).decode(errors="replace")
        for prompt, answer in prompts.items():
            if text.count(prompt) > answered[prompt]:
                answered[prompt] += 1
                try:
                    proc.stdin.write(answer.encode() + b"\n")
                    proc.stdin.flush()
                except BrokenPipeError:
                    pass
        time.sleep(0.03)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    reader.join(10)
    proc.stdin.close()
    text = b"".join(chunks).decode(errors="replace")
    return Out(proc.returncode, text, text, argv)


def notary_ok(*args: object, **kwargs: object) -> Out:
    res = notary(*args, **kwargs)  # type: ignore[arg-type]
    assert res.rc == 0, res.describe()
    return res


def docker_config(config_dir: Path, ca: Path, servers: list[str], auths: dict[str, tuple[str, str]] | None = None) -> Path:
    """A docker config folder: ``config.json`` with ``auths`` and the CA under ``tls/<host:port>/`` of each server."""
    config_dir.mkdir(parents=True, exist_ok=True)
    entries = {host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for host, (u, p) in (auths or {}).items()}
    (config_dir / "config.json").write_text(json.dumps({"auths": entries}))
    for server in servers:
        add_server_ca(config_dir, server, ca)
    return config_dir


def add_server_ca(config_dir: Path, server: str, ca: Path) -> None:
    hostport = server.split("://", 1)[-1]
    d = config_dir / "tls" / hostport
    d.mkdir(parents=True, exist_ok=True)
    (d / "ca.crt").write_bytes(ca.read_bytes())


def docker(config_dir: Path, server: str, *args: str) -> Out:
    """The docker CLI (no daemon) with ``DOCKER_CONFIG`` and ``DOCKER_CONTENT_TRUST_SERVER``."""
    env = _base_env(config_dir.parent) | DOCKER_PASSPHRASES | {
        "DOCKER_CONFIG": str(config_dir), "DOCKER_CONTENT_TRUST_SERVER": server,
        "DOCKER_HOST": f"unix://{config_dir}/no-daemon.sock", "DOCKER_CLI_HINTS": "false"}
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)
    return Out(proc.returncode, proc.stdout, proc.stderr, ["docker", *args])


def docker_ok(*args: object) -> Out:
    res = docker(*args)  # type: ignore[arg-type]
    assert res.rc == 0, res.describe()
    return res


def trustbox(config_dir: Path, *args: str, extra_env: dict[str, str] | None = None) -> Out:
    """``python -m trustbox ARGS`` from this worktree with ``DOCKER_CONFIG`` and docker's passphrases."""
    env = _base_env(config_dir.parent) | DOCKER_PASSPHRASES | {"DOCKER_CONFIG": str(config_dir), "PYTHONPATH": str(SRC)}
    env |= extra_env or {}
    proc = subprocess.run([sys.executable, "-m", "trustbox", *args], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)
    return Out(proc.returncode, proc.stdout, proc.stderr, ["trustbox", *args])


def trustbox_ok(*args: object, **kwargs: object) -> Out:
    res = trustbox(*args, **kwargs)  # type: ignore[arg-type]
    assert res.rc == 0, res.describe()
    return res


def signed_tags(inspect_json: str) -> dict[str, tuple[str, list[str]]]:
    """``docker trust inspect`` JSON -> {tag: (digest, signers)}."""
    doc = json.loads(inspect_json)
    return {t["SignedTag"]: (t["Digest"], t["Signers"]) for t in doc[0].get("SignedTags") or []}


def signers(inspect_json: str) -> list[str]:
    doc = json.loads(inspect_json)
    return sorted(s["Name"] for s in doc[0].get("Signers") or [])


def notary_rows(out: str) -> list[str]:
    """The rows of ``notary list`` (header, prompts and log lines dropped)."""
    rows = [line.split() for line in out.splitlines()]
    return [r for r in rows if len(r) == 4 and re.fullmatch(r"[0-9a-f]{64}", r[1])]
