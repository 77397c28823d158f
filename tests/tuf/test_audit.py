"""`trustbox tuf verify`: the whole core over the fixture repositories, and one-byte tampering."""

from __future__ import annotations

import random
import shutil

import pytest
from click.testing import CliRunner

from trustbox.cli import cli
from trustbox.tuf.audit import audit

from .fixture_data import PINNED_NOW, REPOS, read_dir

ALNUM = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@pytest.mark.parametrize("name", sorted(REPOS))
def test_cli_verifies_fixture_repository(name) -> None:
    gun, d = REPOS[name]
    result = CliRunner().invoke(cli, ["tuf", "verify", str(d), "--at", "2026-11-23T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert f"GUN {gun}" in result.output
    lines = [ln for ln in result.output.splitlines() if ln.endswith(" ok")]
    assert len(lines) == len(read_dir(d))
    assert "timestamp.json" in result.output and "targets/releases.json" in result.output


def test_cli_fails_after_expiry_naming_file_and_role() -> None:
    _gun, d = REPOS["notary-demo"]
    result = CliRunner().invoke(cli, ["tuf", "verify", str(d), "--at", "2026-12-07T00:00:00Z"])
    assert result.exit_code != 0
    failed = [ln for ln in result.output.splitlines() if "FAILED" in ln]
    assert failed and failed[0].startswith("timestamp.json") and "expired" in failed[0]


def test_cli_with_explicit_trusted_root_and_wrong_root(tmp_path) -> None:
    _gun, d = REPOS["notary-demo"]
    ok = CliRunner().invoke(cli, ["tuf", "verify", str(d), "--at", "2026-11-23T00:00:00Z", "--root", str(d / "1.root.json")])
    assert ok.exit_code == 0, ok.output
    other = REPOS["docker-demo"][1] / "root.json"
    bad = CliRunner().invoke(cli, ["tuf", "verify", str(d), "--at", "2026-11-23T00:00:00Z", "--root", str(other)])
    assert bad.exit_code != 0
    assert "root" in bad.output and "FAILED" in bad.output


def test_cli_bad_time_is_a_one_line_error(tmp_path) -> None:
    _gun, d = REPOS["notary-demo"]
    result = CliRunner().invoke(cli, ["tuf", "verify", str(d), "--at", "yesterday"])
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and "Traceback" not in result.output


def _signed_span(data: bytes) -> tuple[int, int]:
    return data.index(b'{"signed":') + 10, data.rindex(b',"signatures":')


def _sig_value_spans(data: bytes) -> list[tuple[int, int]]:
    spans = []
    pos = data.rindex(b',"signatures":')
    while True:
        i = data.find(b'"sig":"', pos)
        if i < 0:
            return spans
        start = i + len(b'"sig":"')
        end = data.index(b'"', start)
        spans.append((start, end))
        pos = end


def _mutate(data: bytes, pos: int) -> bytes:
    b = data[pos]
    choices = [c for c in ALNUM if c != b] if b in ALNUM else [c for c in b"#~!" if c != b]
    return data[:pos] + bytes([choices[pos % len(choices)]]) + data[pos + 1 :]


def _mutations(files: dict[str, bytes], seed: int):
    rnd = random.Random(seed)
    for path in sorted(files):
        data = files[path]
        start, end = _signed_span(data)
        for pos in rnd.sample(range(start, end), 2):
            yield path, "signed", pos
        s, e = rnd.choice(_sig_value_spans(data))
        yield path, "signature", rnd.randrange(s, e)


@pytest.mark.parametrize("name", sorted(REPOS))
def test_one_changed_byte_anywhere_fails_naming_the_file(name) -> None:
    gun, d = REPOS[name]
    files = read_dir(d)
    assert audit(files, PINNED_NOW).ok
    checked = 0
    for path, part, pos in _mutations(files, seed=hash(name) & 0xFFFF):
        tampered = dict(files)
        tampered[path] = _mutate(files[path], pos)
        report = audit(tampered, PINNED_NOW)
        failed = {e.path: e for e in report.entries if not e.ok}
        assert path in failed, f"byte {pos} ({part}) of {path} changed but the audit passed"
        entry = failed[path]
        assert entry.role and entry.message
        checked += 1
    assert checked >= 3 * len(files)


def test_missing_snapshot_entry_and_swapped_files_fail(tmp_path) -> None:
    """Mix-and-match: an older targets.json served as current is caught by snapshot hashes."""
    _gun, d = REPOS["notary-demo"]
    files = read_dir(d)
    files["targets.json"] = files["5.targets.json"]
    report = audit(files, PINNED_NOW)
    bad = [e for e in report.entries if not e.ok]
    assert [e.path for e in bad] == ["targets.json"]
    assert "checksum" in bad[0].message


def test_cli_on_a_copy_with_a_tampered_file(tmp_path) -> None:
    _gun, d = REPOS["docker-demo"]
    dst = tmp_path / "tuf"
    shutil.copytree(d, dst)
    p = dst / "targets" / "releases.json"
    p.write_bytes(p.read_bytes().replace(b'"length":', b'"length":1', 1))
    result = CliRunner().invoke(cli, ["tuf", "verify", str(dst), "--at", "2026-11-23T00:00:00Z"])
    assert result.exit_code != 0
    line = next(ln for ln in result.output.splitlines() if "FAILED" in ln)
    assert line.startswith("targets/releases.json") and "targets/releases" in line
