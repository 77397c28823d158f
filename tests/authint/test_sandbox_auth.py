"""Acceptance: a token-protected sandbox (``trustbox sandbox up --auth``) runs the README tutorial
as written after the README's ``trustbox login``; logged out, writes are refused. And
``--auth-private``: anonymous reads are refused too (also for the notary CLI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_readme_tutorial import README, tutorial_blocks
from tests.helpers.net import free_port

pytestmark = pytest.mark.interop


def auth_section_commands(text: str) -> list[str]:
    """The commands of the README's Authentication section (up --auth, eval, login)."""
    section = text.split("\n## Authentication", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [ln for b in blocks for ln in b.splitlines() if ln.strip()]


def _run(script: list[str], tmp_path: Path, ports: dict[str, int]) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_", "NOTARY_"))}
    env.update(HOME=str(home), TRUSTBOX_SANDBOX_TRUST_PORT=str(ports["trust"]),
               TRUSTBOX_SANDBOX_REGISTRY_PORT=str(ports["registry"]), TRUSTBOX_SANDBOX_AUTH_PORT=str(ports["auth"]),
               TB_BIN=str(Path(sys.executable).parent))
    sandbox_dir = home / ".trustbox" / "sandbox"
    try:
        return subprocess.run(["bash", "-c", "\n".join(["set -euo pipefail", 'export PATH="$TB_BIN:$PATH"', *script])],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run([sys.executable, "-m", "trustbox", "sandbox", "down", "-v", "--dir", str(sandbox_dir)],
                       capture_output=True, env=env, timeout=60)


def _line(cmd: str) -> str:
    if cmd.startswith("! "):
        return f"if {cmd[2:]} 2>&1; then echo 'UNEXPECTED SUCCESS: {cmd[2:]}'; exit 97; fi"
    return f"{cmd} 2>&1"


def test_readme_tutorial_on_a_token_protected_sandbox(tmp_path: Path) -> None:
    if shutil.which("notary") is None:
        pytest.skip("the notary client (Debian package notary) is not installed")
    ports = {"trust": free_port(), "registry": free_port(), "auth": free_port()}
    text = README.read_text()
    up, ev, login = auth_section_commands(text)
    assert up == "trustbox sandbox up --auth" and ev.startswith("eval ") and login.startswith("trustbox login localhost:5000")
    blocks = tutorial_blocks(text)

    def fix(s: str) -> str:
        return s.replace("localhost:5000", f"localhost:{ports['registry']}").replace(
            "localhost:4443", f"localhost:{ports['trust']}")

    script: list[str] = []
    reg = f"localhost:{ports['registry']}"
    for i, (kind, lines) in enumerate(blocks):
        if kind != "sh":
            continue
        script.append(f"echo '@@BLOCK {i}@@'")
        for line in lines:
            if line == "trustbox sandbox up":
                line = up
            if line == "trustbox sandbox down -v":
                # logged out, the token-protected servers refuse writes (401 from each)
                script += [_line("trustbox sandbox status"), _line(f"trustbox logout {reg}"),
                           _line(f"! trustbox push --disable-content-trust oci:./sample:latest {reg}/test/anon:latest"),
                           _line(f"! trustbox trust revoke -y {reg}/test/trusttest:latest")]
            script.append(_line(fix(line)))
            if line == ev:
                script.append(_line(fix(login)))
    proc = _run(script, tmp_path, ports)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"tutorial failed (exit {proc.returncode}):\n{out}"
    assert "Login Succeeded" in out
    # while logged in, nothing failed for want of access (the tutorial's "!" lines fail for their own reasons)
    logged_in = proc.stdout.split("Removing login credentials", 1)[0]
    # (the servers' access lines, which the tutorial prints with `sandbox logs`, show the challenges' 401s)
    logged_in = "\n".join(ln for ln in logged_in.splitlines() if not re.match(r'\S+ - \S+ \[[^\]]+\] "', ln))
    assert "not authorized" not in logged_in and "denied access" not in logged_in and " 401" not in logged_in, logged_in
    assert re.search(r"^auth +running", out, re.M), out
    assert f"registry {reg} denied access to test/anon" in out
    assert "could not remove signature" in out and "401" in out
    chunks = dict(re.findall(r"@@BLOCK (\d+)@@\n(.*?)(?=@@BLOCK \d+@@|\Z)", proc.stdout, re.DOTALL))
    for i, (kind, lines) in enumerate(blocks):
        if kind != "out":
            continue
        produced = chunks.get(str(i - 1), "").splitlines()
        for expected in map(fix, lines):
            if expected.endswith("..."):
                assert any(ln.startswith(expected[:-3]) for ln in produced), (expected, produced)
            else:
                assert expected in produced, (expected, produced)
    assert (tmp_path / "pulled" / "index.json").exists()
    assert not (tmp_path / "pulled-again").exists()
    assert not (tmp_path / "home" / ".trustbox" / "sandbox").exists()


def test_private_sandbox_refuses_anonymous_reads(tmp_path: Path) -> None:
    ports = {"trust": free_port(), "registry": free_port(), "auth": free_port()}
    reg = f"localhost:{ports['registry']}"
    (tmp_path / "pw").write_text("correct horse battery\n")
    script = [
        f"trustbox sandbox up --auth --auth-private --auth-user ci --auth-password-file {tmp_path / 'pw'} >/dev/null",
        'eval "$(trustbox sandbox env)"',
        "test ! -e \"$TRUSTBOX_SANDBOX_DIR/auth/password\"",
        f"echo 'correct horse battery' | trustbox login {reg} -u ci --password-stdin",
        "export DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE=rootpass123 DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE=repopass123",
        "trustbox sandbox sample-image ./sample",
        f"trustbox push oci:./sample:latest {reg}/team/app:v1",  # content trust on: signs while pushing
        f"trustbox pull {reg}/team/app:v1 oci:./pulled",
        f"trustbox logout {reg}",
        _line(f"! trustbox pull {reg}/team/app:v1 oci:./pulled-anon"),
    ]
    if shutil.which("notary"):
        script.append(_line(f"! notary -d ./nd list {reg}/team/app"))
    proc = _run(script, tmp_path, ports)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert (tmp_path / "pulled" / "index.json").exists() and not (tmp_path / "pulled-anon").exists()
    assert "not authorized" in out or "denied access" in out, out
    if shutil.which("notary"):
        assert "unauthorized" in out.lower() or "not authorized" in out.lower(), out
