"""Run the README's tutorial exactly as written (so the README cannot drift from what works).

Commands come from the ```sh blocks of the "Tutorial" section; a line starting with "! " must fail.
A plain ``` block right after a command block lists output lines (a trailing "..." means "starts
with") that must appear in that block's output. Ports are swapped for free ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.net import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def tutorial_blocks(text: str) -> list[tuple[str, list[str]]]:
    """(kind, lines) for every fenced block of the Tutorial section; kind is 'sh' or 'out'."""
    section = text.split("\n## Tutorial", 1)[1].split("\n## ", 1)[0]
    blocks = []
    for m in re.finditer(r"```(\w*)\n(.*?)```", section, re.DOTALL):
        kind = "sh" if m.group(1) == "sh" else "out"
        blocks.append((kind, [ln for ln in m.group(2).splitlines() if ln.strip()]))
    return blocks


def test_tutorial_section_is_parsed() -> None:
    blocks = tutorial_blocks(README.read_text())
    commands = [ln for kind, lines in blocks if kind == "sh" for ln in lines]
    assert commands[0] == "trustbox sandbox up" and commands[-1] == "trustbox sandbox down -v"
    assert sum(ln.startswith("! ") for ln in commands) >= 3


def _script(blocks: list[tuple[str, list[str]]], ports: Callable[[str], str]) -> str:
    """The tutorial's commands as one bash script; "! " lines must fail, each block is marked in stdout."""
    script = ["set -euo pipefail", "export PATH=\"$TB_BIN:$PATH\""]
    for i, (kind, lines) in enumerate(blocks):
        if kind != "sh":
            continue
        script.append(f"echo '@@BLOCK {i}@@'")
        for line in lines:
            line = ports(line)
            if line.startswith("! "):
                cmd = line[2:]
                script.append(f"if {cmd} 2>&1; then echo 'UNEXPECTED SUCCESS: {cmd}'; exit 97; fi")
            else:
                script.append(f"{line} 2>&1")
    return "\n".join(script)


def _check_run(proc: subprocess.CompletedProcess[str], blocks: list[tuple[str, list[str]]],
               ports: Callable[[str], str], workdir: Path, sandbox_dir: Path) -> None:
    """One run of the tutorial succeeded and printed what the README says it prints."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"tutorial failed (exit {proc.returncode}):\n{out}"
    # expected output lines appear in the output of the command block before them
    chunks = dict(re.findall(r"@@BLOCK (\d+)@@\n(.*?)(?=@@BLOCK \d+@@|\Z)", proc.stdout, re.DOTALL))
    for i, (kind, lines) in enumerate(blocks):
        if kind != "out":
            continue
        produced = chunks.get(str(i - 1), "")
        for expected in lines:
            expected = ports(expected)
            if expected.endswith("..."):
                assert any(ln.startswith(expected[:-3]) for ln in produced.splitlines()), (expected, produced)
            else:
                assert expected in produced.splitlines(), (expected, produced)
    # the registry logged the tutorial's requests, one access line each
    logs_block = next(i for i, (kind, lines) in enumerate(blocks) if "trustbox sandbox logs registry" in lines)
    assert re.search(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /v2/test/trusttest/manifests/\S+ HTTP/1\.1" 200 \d+ ',
                     chunks[str(logs_block)], re.M), chunks[str(logs_block)]
    # the trusted pull wrote a layout; the refused one wrote nothing; down -v removed everything
    assert (workdir / "pulled" / "index.json").exists()
    assert not (workdir / "pulled-again").exists()
    assert not sandbox_dir.exists()


def _errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stdout.splitlines() if ln.startswith("Error:")]


@pytest.mark.interop
def test_readme_tutorial_runs_as_written_twice(tmp_path: Path) -> None:
    """The tutorial as written, then again in the same HOME after its final ``sandbox down -v``:
    the second run behaves as the first (the unsigned pull is refused the same way, signing and
    the trusted pull work), because down -v removed what the sandbox left outside its folder."""
    if shutil.which("notary") is None:
        pytest.skip("the notary client (Debian package notary) is not installed")
    tport, rport = free_port(), free_port()
    blocks = tutorial_blocks(README.read_text())

    def ports(s: str) -> str:
        return s.replace("localhost:5000", f"localhost:{rport}").replace("localhost:4443", f"localhost:{tport}")

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_", "NOTARY_"))}
    env.update(HOME=str(home), TRUSTBOX_SANDBOX_TRUST_PORT=str(tport), TRUSTBOX_SANDBOX_REGISTRY_PORT=str(rport),
               TB_BIN=str(Path(sys.executable).parent))
    sandbox_dir = home / ".trustbox" / "sandbox"
    runs = []
    for n in (1, 2):
        workdir = tmp_path / f"run{n}"
        workdir.mkdir()
        try:
            proc = subprocess.run(["bash", "-c", _script(blocks, ports)], cwd=workdir, env=env, capture_output=True,
                                  text=True, timeout=300)
        finally:
            subprocess.run([sys.executable, "-m", "trustbox", "sandbox", "down", "-v", "--dir", str(sandbox_dir)],
                           capture_output=True, env=env, timeout=60)
        _check_run(proc, blocks, ports, workdir, sandbox_dir)
        runs.append(proc)
    # both runs refused the same commands with the same messages
    assert _errors(runs[0]) == _errors(runs[1]), (runs[0].stdout, runs[1].stdout)
    # nothing of the removed sandbox is left in the trust folder; the keys are kept
    trust = home / ".docker" / "trust"
    assert not (trust / "tuf" / f"localhost:{rport}").exists()
    assert any((trust / "private").iterdir())
    assert f"private keys kept in {trust / 'private'}" in runs[1].stdout
