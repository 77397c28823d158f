"""`trustbox sandbox`: up, env, status, logs (access lines), idempotent up, taken ports, down -v
(and what it removes outside the sandbox folder), the notary shell function."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.net import free_port
from trustbox.sandbox.stack import Sandbox, SandboxState, Service


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
    # the hint names this sandbox, not the default one
    assert f'eval "$(trustbox sandbox env --dir {d})"' in up.stderr, up.stderr
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

    # up again: a no-op that says so and prints the same exports
    again = tb("sandbox", "up", "--dir", str(d), "--trust-port", str(tport), "--registry-port", str(rport))
    assert f"sandbox in {d} is already running" in again.stderr, again.stderr
    assert _exports(again.stdout) == {k: v for k, v in env.items() if k != "DOCKER_CONFIG"} | (
        {"DOCKER_CONFIG": env["DOCKER_CONFIG"]} if "DOCKER_CONFIG" in env else {})
    assert _exports(tb("sandbox", "env", "--dir", str(d)).stdout) == _exports(again.stdout)
    status = tb("sandbox", "status", "--dir", str(d))
    assert status.stdout.count("running") == 2
    # the requests above are in the servers' logs, one access line each
    logs = tb("sandbox", "logs", "--dir", str(d)).stdout
    access = r'^{}: 127\.0\.0\.1 - - \[[^\]]+\] "GET {} HTTP/1\.1" 200 \d+ \d+\.\d{{3}}s$'
    assert re.search(access.format("trust", "/_notary_server/health"), logs, re.M), logs
    assert re.search(access.format("registry", "/v2/"), logs, re.M), logs
    assert re.search(r'^127\.0\.0\.1 - - .*"GET /v2/ HTTP/1\.1" 200 ',
                     tb("sandbox", "logs", "registry", "--dir", str(d)).stdout, re.M)

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

    # stopped: env refuses in one line, naming the sandbox and how to start it
    state_pids = [int(line.split()[3]) for line in status.stdout.splitlines() if "pid" in line]
    tb("sandbox", "down", "--dir", str(d))
    stopped = tb("sandbox", "env", "--dir", str(d), check=False)
    assert stopped.returncode != 0 and stopped.stdout == ""
    assert stopped.stderr.strip() == f"Error: sandbox at {d} is not running; start it with 'trustbox sandbox up --dir {d}'"

    # down -v: nothing running, nothing left, also not the CA copies for docker
    tb("sandbox", "down", "-v", "--dir", str(d))
    assert not d.exists()
    assert not (docker_config / "tls").exists() or not any((docker_config / "tls").iterdir())
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


def test_env_without_a_sandbox_is_a_one_line_error(tmp_path: Path) -> None:
    proc = tb("sandbox", "env", "--dir", str(tmp_path / "none"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == f"Error: no sandbox in {tmp_path / 'none'}"
    assert f"trustbox sandbox up --dir {tmp_path / 'none'}" in proc.stderr


def _stopped_sandbox(d: Path, docker_config: Path | None, rport: int) -> Sandbox:
    """A sandbox folder whose servers are not running (down -v needs no running servers)."""
    sb = Sandbox(d)
    (d / "tls").mkdir(parents=True)
    (d / "notary").mkdir()
    sb.ca_cert.write_text("sandbox CA\n")
    state = SandboxState(dir=str(d), bind="127.0.0.1", trust=Service("trust", free_port()),
                         registry=Service("registry", rport))
    sb.save(state)
    if docker_config is not None:
        sb._install_docker_ca(state, docker_config)
    return sb


def test_down_v_removes_what_the_sandbox_left_outside_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    rport = free_port()
    docker_config = tmp_path / "docker"
    d = tmp_path / "sb"
    sb = _stopped_sandbox(d, docker_config, rport)
    state = sb.load()
    assert state is not None and len(state.docker_ca_files) == 4  # localhost and 127.0.0.1, two servers
    (docker_config / "tls" / "other:443").mkdir()
    (docker_config / "tls" / "other:443" / "ca.crt").write_text("someone else's CA\n")
    (docker_config / "tls" / f"localhost:{state.trust.port}" / "client.cert").write_text("the user's\n")
    # an old sandbox's notary config pointed at ~/.notary: its cache goes too
    sb.notary_config.write_text(json.dumps({"trust_dir": str(home / ".notary")}))
    cached, kept = [], []
    for trust in (docker_config / "trust", home / ".docker" / "trust", home / ".notary"):
        for gun in (f"localhost:{rport}/test/app", f"127.0.0.1:{rport}/x"):
            (trust / "tuf" / gun / "metadata").mkdir(parents=True)
            (trust / "tuf" / gun / "metadata" / "root.json").write_text("{}")
            cached.append(trust / "tuf" / gun.split("/")[0])
        (trust / "tuf" / "localhost:1" / "other" / "metadata").mkdir(parents=True)
        (trust / "private").mkdir()
        (trust / "private" / "abc.key").write_text("key")
        kept += [trust / "tuf" / "localhost:1" / "other" / "metadata", trust / "private" / "abc.key"]

    result = sb.down(remove=True)
    assert result.existed and not d.exists()
    for path in cached:
        assert not path.exists(), path
        assert path in result.removed
    for path in kept:
        assert path.exists(), path
    assert sorted(result.kept_keys) == sorted(t / "private" for t in (docker_config / "trust", home / ".docker" / "trust",
                                                                      home / ".notary"))
    # the CA copies are gone with their folders; other files and other hosts' CAs stay
    assert sorted(p.name for p in (docker_config / "tls").iterdir()) == [f"localhost:{state.trust.port}", "other:443"]
    assert [p.name for p in (docker_config / "tls" / f"localhost:{state.trust.port}").iterdir()] == ["client.cert"]
    assert (docker_config / "tls" / "other:443" / "ca.crt").exists()


def test_down_v_prints_what_it_removed_and_where_the_keys_are(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rport = free_port()
    d = tmp_path / "sb"
    _stopped_sandbox(d, None, rport)
    (home / ".docker" / "trust" / "tuf" / f"localhost:{rport}" / "a").mkdir(parents=True)
    (home / ".docker" / "trust" / "private").mkdir()
    proc = tb("sandbox", "down", "-v", "--dir", str(d), env={"HOME": str(home)})
    trust = home / ".docker" / "trust"
    assert f"removed {trust / 'tuf' / f'localhost:{rport}'}" in proc.stderr.splitlines()
    assert f"private keys kept in {trust / 'private'}" in proc.stderr.splitlines()
    assert f"sandbox in {d} removed" in proc.stderr


def test_down_v_removes_a_damaged_sandbox(tmp_path: Path) -> None:
    d = tmp_path / "sb"
    d.mkdir()
    (d / "sandbox.json").write_text("{not json")
    assert "is damaged" in tb("sandbox", "down", "--dir", str(d), check=False).stderr
    tb("sandbox", "down", "-v", "--dir", str(d))
    assert not d.exists()


@pytest.mark.interop
def test_notary_function_sees_the_keys_trustbox_made(sandbox, tmp_path: Path) -> None:
    """After `trustbox trust sign`, `notary key list` (the function `sandbox env` prints) lists the
    root and repository keys: notary reads the trust folder docker and trustbox use."""
    if shutil.which("notary") is None:
        pytest.skip("the notary client (Debian package notary) is not installed")
    d, (tport, rport) = sandbox
    home = tmp_path / "home"
    home.mkdir()
    reg = f"localhost:{rport}"
    script = "\n".join([
        "set -euo pipefail",
        f"trustbox sandbox up --dir {d} --trust-port {tport} --registry-port {rport} >/dev/null 2>&1",
        f'eval "$(trustbox sandbox env --dir {d})"',
        "export DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE=rootpass123 DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE=repopass123",
        "trustbox sandbox sample-image ./sample 2>/dev/null",
        f"trustbox push --disable-content-trust oci:./sample:latest {reg}/test/keys:latest >/dev/null",
        f"trustbox trust sign {reg}/test/keys:latest >/dev/null",
        "echo @@KEYS@@",
        "notary key list",
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_", "NOTARY_"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listing = proc.stdout.split("@@KEYS@@", 1)[1]
    key_ids = [p.stem for p in (home / ".docker" / "trust" / "private").glob("*.key")]
    assert len(key_ids) == 2, key_ids  # root + targets
    for key_id in key_ids:
        assert key_id in listing, listing
    assert re.search(r"^\s*root\s", listing, re.M) and re.search(rf"^\s*targets\s+{reg}/test/keys\s", listing, re.M), listing
