"""The one durable atomic file write, used for keys, certificates, credentials, caches and state."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from trustbox import atomicfile
from trustbox.atomicfile import atomic_create, atomic_write
from trustbox.auth import htpasswd
from trustbox.errors import ConfigError
from trustbox.keystore import store
from trustbox.trustserver.keys_at_rest import resolve_passphrase


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch os.fsync to record what each synced descriptor is: ``dir:<path>`` or ``file:<path>``."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        synced.append(f"{kind}:{os.readlink(f'/proc/self/fd/{fd}')}")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_file_then_folder_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    target = tmp_path / "key.pem"
    atomic_write(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert len(synced) == 2
    assert synced[0].startswith(f"file:{tmp_path}/.key.pem.")  # the temp file, before the rename
    assert synced[1] == f"dir:{tmp_path}"  # the folder, after it


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_mode_is_exact_whatever_the_umask_or_the_old_file(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    target.chmod(0o666)
    old_umask = os.umask(0o077)
    try:
        atomic_write(target, b"new", mode)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_bytes() == b"new"


def test_missing_folders_are_created_private(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f"
    old_umask = os.umask(0)
    try:
        atomic_write(target, b"x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_failure_leaves_old_content_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(ConfigError, match=r"cannot write .*/f: Input/output error"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_unusable_folder_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"cannot write .*plain/f: Not a directory"):
        atomic_write(tmp_path / "plain" / "f", b"x")


def test_create_is_exclusive_durable_and_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    target = tmp_path / "db.key"
    assert atomic_create(target, b"first\n") is True
    assert synced[-1] == f"dir:{tmp_path}"
    assert atomic_create(target, b"second\n") is False
    assert target.read_bytes() == b"first\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.key"]


def test_racing_creators_agree_on_one_passphrase(tmp_path: Path) -> None:
    """Server processes starting together on one SQLite file all read the same passphrase."""
    db = str(tmp_path / "trust.db")
    results: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(
            resolve_passphrase(passphrase=None, passphrase_file=None, sqlite_file=db, insecure_dev_keys=False)
        )

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert (tmp_path / "trust.db.key").read_text().strip() == results[0]


def test_every_writer_uses_the_durable_write() -> None:
    """keystore, htpasswd (and through it docker's config.json and the auth CLI) share one function."""
    assert store.atomic_write is atomicfile.atomic_write
    assert htpasswd.atomic_write is atomicfile.atomic_write


def test_htpasswd_add_user_syncs_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced = _record_fsyncs(monkeypatch)
    path = tmp_path / "htpasswd"
    htpasswd.add_user(path, "alice", "secret-password", 4)
    assert f"dir:{tmp_path}" in synced
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
