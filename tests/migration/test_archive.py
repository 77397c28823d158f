"""The trust archive: layout, strict reading (traversal, links, duplicates, sizes), tamper detection
naming file and role, ``tuf verify`` of an archive, export from a docker/notary cache, and the
import refusals that happen before anything is uploaded (wrong or missing root key)."""

from __future__ import annotations

import io
import random
import tarfile
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.helpers.simulator import NOW, RepositorySimulator
from trustbox.cli import cli
from trustbox.client.errors import MetaNotFoundError
from trustbox.client.trust import archive as archive_mod
from trustbox.client.trust.archive import ArchiveError, ArchiveVerificationError, TrustArchive
from trustbox.client.trust.export import export_from_cache
from trustbox.client.trust.importer import RootKeyMissingError, WrongRootKeyError, import_archive
from trustbox.keystore.passphrase import constant_retriever
from trustbox.keystore.pkcs8 import encode_key_file
from trustbox.keystore.store import KeyStore
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.timefmt import format_time

AT = NOW + timedelta(days=1)


def build() -> tuple[RepositorySimulator, TrustArchive]:
    """A repository with root versions 1 and 2, targets delegating targets/releases, snapshot, timestamp."""
    b = RepositorySimulator().initial()
    b.make_root()
    b.refresh()
    files = {
        "root.json": b.docs["root"],
        "1.root.json": b.history["root"][1],
        "2.root.json": b.history["root"][2],
        "targets.json": b.docs["targets"],
        "targets/releases.json": b.docs["targets/releases"],
        "snapshot.json": b.docs["snapshot"],
        "timestamp.json": b.docs["timestamp"],
    }
    return b, TrustArchive(b.gun, "https://notary.example.test", NOW, files)


def tar_of(members: list[tuple[str, bytes] | tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def manifest(gun: str) -> bytes:
    return (b'{"exported_at":"' + format_time(NOW).encode() + b'","format":"trustbox-trust-archive","gun":"'
            + gun.encode() + b'","source":"x","version":1}')


def test_round_trip_and_verify(tmp_path: Path) -> None:
    _, archive = build()
    path = tmp_path / "out" / "a.tar"
    archive.write(path)
    again = TrustArchive.read(path)
    assert again.files == archive.files and again.gun == archive.gun and again.exported_at == NOW
    tc = again.verify(AT)
    assert tc.root.signed.version == 2 and set(tc.delegations) == {"targets/releases"}
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and f"{archive.gun}/targets/releases.json" in names
    # trustbox tuf verify reads the archive offline, at a pinned time
    res = CliRunner().invoke(cli, ["tuf", "verify", str(path), "--at", format_time(AT)])
    assert res.exit_code == 0 and "all 7 files verified" in res.output, res.output


@pytest.mark.parametrize("name", ["root.json", "1.root.json", "2.root.json", "targets.json", "targets/releases.json",
                                  "snapshot.json", "timestamp.json"])
def test_one_byte_tampered_in_any_role_is_refused_naming_file_and_role(name: str, tmp_path: Path) -> None:
    _, archive = build()
    rng = random.Random(name)
    role = {"1.root.json": "root", "2.root.json": "root"}.get(name, name[:-5])
    original = archive.files[name]
    for pos in sorted(rng.sample(range(len(original)), 6)):
        data = bytearray(original)
        data[pos] ^= 0x01
        tampered = TrustArchive(archive.gun, archive.source, NOW, {**archive.files, name: bytes(data)})
        loaded = TrustArchive.from_bytes(tampered.to_bytes())
        with pytest.raises(ArchiveVerificationError) as err:
            loaded.verify(AT)
        assert err.value.path == f"{archive.gun}/{name}" and err.value.role == role, (pos, err.value.message)
    # the import refuses it before any network access (the server URL is unreachable on purpose)
    path = tmp_path / "t.tar"
    path.write_bytes(tampered.to_bytes())
    res = CliRunner().invoke(cli, ["trust", "import", str(path), "--server", "https://127.0.0.1:9"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert lines[0].startswith(f"Error: {archive.gun}/{name} (role {role}):"), res.output


def test_missing_or_extra_documents() -> None:
    _, archive = build()
    files = dict(archive.files)
    del files["targets/releases.json"]
    with pytest.raises(ArchiveError, match="lacks targets/releases.json"):
        TrustArchive(archive.gun, "x", NOW, files).verify(AT)
    with pytest.raises(ArchiveVerificationError, match="not delegated"):
        TrustArchive(archive.gun, "x", NOW, {**archive.files, "targets/other.json": archive.files["targets/releases.json"]}).verify(AT)
    with pytest.raises(ArchiveVerificationError, match="does not follow"):
        TrustArchive(archive.gun, "x", NOW, {k: v for k, v in archive.files.items() if k != "1.root.json"}
                     | {"5.root.json": archive.files["2.root.json"]}).verify(AT)


def _info(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(("members", "message"), [
    (lambda g: [("../evil.json", b"{}")], "path traversal"),
    (lambda g: [(f"{g}/../../x.json", b"{}")], "path traversal"),
    (lambda g: [("/etc/x.json", b"{}")], "absolute"),
    (lambda g: [(f"{g}\\root.json", b"{}")], "malformed"),
    (lambda g: [_info(f"{g}/targets.json", tarfile.SYMTYPE, "/etc/passwd")], "not a regular file"),
    (lambda g: [_info(f"{g}/targets.json", tarfile.LNKTYPE, "manifest.json")], "not a regular file"),
    (lambda g: [_info(f"{g}/dev.json", tarfile.CHRTYPE)], "not a regular file"),
    (lambda g: [(f"{g}/root.json", b"{}"), (f"{g}/root.json", b"{}")], "duplicate"),
    (lambda g: [(f"{g}/notes.txt", b"hi")], "unexpected file"),
    (lambda g: [(f"{g}/targets/../root.json", b"{}")], "path traversal"),
    (lambda g: [("other.example/app/root.json", b"{}")], "outside"),
    (lambda g: [(f"{g}/targets.json", b"{}")], "no root.json"),
])
def test_strict_reading(members, message: str) -> None:  # type: ignore[no-untyped-def]
    gun = "registry.example.test/team/app"
    data = tar_of([("manifest.json", manifest(gun)), *members(gun)])
    with pytest.raises(ArchiveError, match=message):
        TrustArchive.from_bytes(data)


def test_bounds_and_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    gun = "registry.example.test/team/app"
    with pytest.raises(ArchiveError, match="not a tar archive"):
        TrustArchive.from_bytes(b"\x00garbage" * 100)
    with pytest.raises(ArchiveError, match="no manifest.json"):
        TrustArchive.from_bytes(tar_of([(f"{gun}/root.json", b"{}")]))
    with pytest.raises(ArchiveError, match="not a trustbox trust archive"):
        TrustArchive.from_bytes(tar_of([("manifest.json", b'{"format":"other"}')]))
    with pytest.raises(ArchiveError, match="path traversal"):
        TrustArchive.from_bytes(tar_of([("manifest.json", manifest("../x"))]))
    monkeypatch.setattr(archive_mod, "MAX_MEMBER_SIZE", 10)
    with pytest.raises(ArchiveError, match="too large"):
        TrustArchive.from_bytes(tar_of([("manifest.json", manifest(gun)), (f"{gun}/root.json", b"x" * 11)]))
    monkeypatch.setattr(archive_mod, "MAX_MEMBER_SIZE", 1000)
    monkeypatch.setattr(archive_mod, "MAX_MEMBERS", 3)
    with pytest.raises(ArchiveError, match="more than 3 members"):
        TrustArchive.from_bytes(tar_of([("manifest.json", manifest(gun))] + [(f"{gun}/{i}.root.json", b"") for i in range(1, 4)]))


def test_write_is_atomic(tmp_path: Path) -> None:
    _, archive = build()
    (tmp_path / "taken").mkdir()
    with pytest.raises(Exception):  # noqa: B017,PT011 - ConfigError; nothing left behind
        archive.write(tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and not list((tmp_path / "taken").iterdir())


def test_export_from_cache(tmp_path: Path) -> None:
    b, archive = build()
    meta = tmp_path / "trust" / "tuf" / b.gun / "metadata"
    (meta / "targets").mkdir(parents=True)
    for name in ("root.json", "targets.json", "targets/releases.json", "snapshot.json", "timestamp.json"):
        (meta / name).write_bytes(archive.files[name])
    (meta / "targets" / "gone.json").write_bytes(archive.files["targets/releases.json"])  # a removed delegation
    warnings: list[str] = []
    exported = export_from_cache(b.gun, tmp_path / "trust", AT, warn=warnings.append)
    assert set(exported.files) == {"root.json", "2.root.json", "targets.json", "targets/releases.json",
                                   "snapshot.json", "timestamp.json"}
    assert any("targets/gone" in w for w in warnings)
    # a timestamp that expired long ago (the server is gone) is checked as of its last valid moment
    exported.verify(NOW + timedelta(days=100))


class _Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(404)


def test_root_key_refusals_happen_before_any_request(tmp_path: Path) -> None:
    _, archive = build()
    rec = _Recorder()
    http = httpx.Client(transport=httpx.MockTransport(rec))
    with pytest.raises(RootKeyMissingError) as err:
        import_archive(archive, server_url="https://new.example.test", trust_dir=tmp_path / "empty", now=AT, http=http)
    assert "--new-root" in (err.value.hint or "") and "nothing was uploaded" in err.value.message
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(encode_key_file(PrivateKey.generate(), None, "root"))
    with pytest.raises(WrongRootKeyError, match="is not a root key of"):
        import_archive(archive, server_url="https://new.example.test", trust_dir=tmp_path / "empty", now=AT,
                       http=http, root_key=wrong)
    assert rec.requests == []


def test_missing_root_key_cli_prints_the_repin_commands(tmp_path: Path) -> None:
    _, archive = build()
    path = tmp_path / "a.tar"
    archive.write(path)
    res = CliRunner().invoke(cli, ["trust", "import", str(path), "--server", "https://127.0.0.1:9",
                                   "--trust-dir", str(tmp_path / "keys")], env={"DOCKER_CONFIG": str(tmp_path)})
    assert res.exit_code == 1, res.output
    assert "is not in" in res.output and "--new-root" in res.output
    for line in (f'rm -rf "${{DOCKER_CONFIG:-$HOME/.docker}}/trust/tuf/{archive.gun}"',
                 f'rm -rf "$HOME/.notary/tuf/{archive.gun}"', "notary -s https://127.0.0.1:9 list"):
        assert line in res.output, res.output


def test_unreachable_source_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["trust", "export", "registry.example.test/team/app", "--server", "https://127.0.0.1:9",
                                   "-o", str(tmp_path / "x.tar")], env={"DOCKER_CONFIG": str(tmp_path)})
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "127.0.0.1:9" in lines[0], res.output
    assert not (tmp_path / "x.tar").exists()


def test_key_store_root_key_is_found(tmp_path: Path) -> None:
    """The root key found in the trust folder (as docker/notary store it) signs the new roots."""
    b, archive = build()
    store = KeyStore(tmp_path / "trust", constant_retriever("pw-12345678"))
    store.add_key(b.root_key, "root")
    rec = _Recorder()
    http = httpx.Client(transport=httpx.MockTransport(rec))
    with pytest.raises(MetaNotFoundError, match="timestamp.key"):  # the mock server holds no keys
        import_archive(archive, server_url="https://new.example.test", trust_dir=tmp_path / "trust", now=AT,
                       http=http, passphrase_retriever=constant_retriever("pw-12345678"))
    assert [r.url.path.rsplit("/", 1)[-1] for r in rec.requests] == ["", "root.json", "timestamp.key"]
