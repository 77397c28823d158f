"""`trustbox sandbox`: up, env, status, logs, idempotent up, taken ports, down -v."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers.net import free_port


def tb(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    e.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "trustbox", *args], capture_output=True, text=True, env=e, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"trustbox {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export "):].partition("=")
            out[k] = v.strip("'")
    return out


@pytest.fixture
def sandbox(tmp_path: Path):
    d = tmp_path / "sb"
    ports = (free_port(), free_port())
    yield d, ports
    tb("sandbox", "down", "-v", "--dir", str(d), check=False)


def test_sandbox_lifecycle(sandbox, tmp_path: Path) -> None:
    d, (tport, rport) = sandbox
    docker_config = tmp_path / "docker"
    up = tb("sandbox", "up", "--dir", str(d), "--trust-port", str(tport), "--registry-port", str(rport),
            "--docker-config", str(docker_config))
    env = _exports(up.stdout)
    assert env["DOCKER_CONTENT_TRUST"] == "1"
    assert env["DOCKER_CONTENT_TRUST_SERVER"] == f"https://localhost:{tport}"
    ca = Path(env["TRUSTBOX_CA_CERT"])
    assert ca.exists()
    assert (docker_config / "tls" / f"localhost:{tport}" / "ca.crt").read_bytes() == ca.read_bytes()

    # both servers answer over TLS with certificates from the sandbox CA
    ctx = ssl.create_default_context(cafile=str(ca))
    for url in (f"https://localhost:{tport}/_notary_server/health", f"https://127.0.0.1:{rport}/v2/"):
        with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
            assert r.status == 200

    # up again: a no-op printing the same exports
    again = tb("sandbox", "up", "--dir", str(d), "--trust-port", str(tport), "--registry-port", str(rport))
    assert _exports(again.stdout) == {k: v for k, v in env.items() if k != "DOCKER_CONFIG"} | (
        {"DOCKER_CONFIG": env["DOCKER_CONFIG"]} if "DOCKER_CONFIG" in env else {})
    assert _exports(tb("sandbox", "env", "--dir", str(d)).stdout) == _exports(again.stdout)
    status = tb("sandbox", "status", "--dir", str(d))
    assert status.stdout.count("running") == 2
    tb("sandbox", "logs", "--dir", str(d))

    # the real notary client and docker trust work with only what `sandbox up` printed
    script = up.stdout + '\nnotary -d "$ND" list localhost:5000/none/here; echo "rc=$?"\n'
    if shutil.which("notary"):
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "ND": str(tmp_path / "nd"), "HOME": str(tmp_path / "home")})
        out = proc.stdout + proc.stderr
        assert f"localhost:{tport} does not have trust data for localhost:5000/none/here" in out, out
    if shutil.which("docker"):
        script = up.stdout + "\ndocker trust inspect registry.example.test/none/here; echo rc=$?\n"
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HOME": str(tmp_path / "home")})
        out = proc.stdout + proc.stderr
        assert "no signatures or cannot access registry.example.test/none/here" in out, out

    # down -v: nothing running, nothing left
    state_pids = [int(line.split()[3]) for line in status.stdout.splitlines() if "pid" in line]
    tb("sandbox", "down", "-v", "--dir", str(d))
    assert not d.exists()
    for pid in state_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_taken_port_is_a_clear_error(sandbox) -> None:
    d, (tport, rport) = sandbox
    with socket.socket() as s:
        s.bind(("127.0.0.1", tport))
        s.listen()
        proc = tb("sandbox", "up", "--dir", str(d), "--trust-port", str(tport), "--registry-port", str(rport), check=False)
    assert proc.returncode != 0
    assert f"port {tport}" in proc.stderr and "Traceback" not in proc.stderr
