"""KeyStore over a trust directory, key import, and passphrase retrievers."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.testdata import FIXTURES
from trustbox.errors import FormatError, KeyStoreError, PassphraseError
from trustbox.keystore import (
    KeyInfo,
    KeyStore,
    PassphraseUnavailable,
    PromptRetriever,
    chain_retriever,
    constant_retriever,
    decode_key_file,
    docker_env_retriever,
    docker_retriever,
    encode_key_file,
    fixed_retriever,
    key_file_info,
    notary_env_retriever,
    short_id,
)
from trustbox.keystore.passphrase import DOCKER_ALIAS_NAMES
from trustbox.tuf.keys import PrivateKey, PublicKey

from .keydata import DOCKER_REPO_PASS, DOCKER_ROOT_PASS, DOCKER_TRUST, NOTARY_PASS, NOTARY_TRUST

NOTARY_ENV = {
    "NOTARY_ROOT_PASSPHRASE": NOTARY_PASS["root"],
    "NOTARY_TARGETS_PASSPHRASE": NOTARY_PASS["targets"],
    "NOTARY_SNAPSHOT_PASSPHRASE": NOTARY_PASS["snapshot"],
    "NOTARY_DELEGATION_PASSPHRASE": NOTARY_PASS["targets/releases"],
}
DOCKER_ENV = {
    "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": DOCKER_ROOT_PASS,
    "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": DOCKER_REPO_PASS,
}


def test_list_fixture_notary_dir() -> None:
    ks = KeyStore(NOTARY_TRUST)
    keys = ks.list_keys()
    assert len(keys) == 6
    by_id = {k.keyid[:10]: k for k in keys}
    assert by_id["716500643b"] == KeyInfo(
        by_id["716500643b"].keyid, "targets", "localhost:25000/spec/notary-demo"
    )
    assert by_id["7ff84f03d6"].role == "targets/releases" and by_id["7ff84f03d6"].gun is None
    assert {k.keyid[:10] for k in ks.find_keys(role="root")} == {"a732df55c5", "096ff443fe"}
    assert {k.role for k in ks.find_keys(gun="localhost:25000/spec/throwaway")} == {"targets", "snapshot"}


def test_get_fixture_keys_with_env_retrievers() -> None:
    ks = KeyStore(NOTARY_TRUST, notary_env_retriever(NOTARY_ENV))
    for info in ks.list_keys():
        key, role = ks.get_key(info.keyid)
        assert key.keyid == info.keyid and role == info.role
    ks = KeyStore(DOCKER_TRUST, docker_env_retriever(DOCKER_ENV))
    roles = sorted(ks.get_key(i.keyid)[1] for i in ks.list_keys())
    assert roles == ["alice", "bob", "root", "targets"]


def test_root_key_by_certificate_id() -> None:
    root = json.loads((FIXTURES / "notary-demo/server/_trust/tuf/root.json").read_bytes())["signed"]
    keys = {kid: PublicKey.from_dict(k) for kid, k in root["keys"].items()}
    cert_id = root["roles"]["root"]["keyids"][0]
    assert cert_id.startswith("49508e1a") and keys[cert_id].is_x509
    ks = KeyStore(NOTARY_TRUST, notary_env_retriever(NOTARY_ENV))
    assert ks.canonical_id_for(keys[cert_id]) == keys[cert_id].canonical_keyid
    key, role = ks.get_key_for_public(keys[cert_id])
    assert role == "root" and key.keyid.startswith("096ff443")
    pairs = ks.signing_keys(keys, root["roles"]["root"]["keyids"] + root["roles"]["targets"]["keyids"])
    assert [(kid[:8], k.keyid[:8]) for kid, k in pairs] == [
        ("49508e1a", "096ff443"),
        ("71650064", "71650064"),
    ]
    # the snapshot/timestamp keys are held by the server
    assert ks.signing_keys(keys, root["roles"]["timestamp"]["keyids"]) == []


def test_add_get_remove(tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    ks = KeyStore(
        trust, fixed_retriever({"root": "root-pass-1", "targets": "targets-pass-1"}, default="other-1")
    )
    root = PrivateKey.generate()
    targets = PrivateKey.generate("ed25519")
    signer = PrivateKey.generate()
    assert ks.add_key(root, "root", gun="ignored/for/root") == KeyInfo(root.keyid, "root", None)
    assert ks.add_key(targets, "targets", "example.com/a") == KeyInfo(
        targets.keyid, "targets", "example.com/a"
    )
    assert ks.add_key(signer, "alice", "example.com/a").gun is None
    assert stat.S_IMODE((trust / "private").stat().st_mode) == 0o700
    assert stat.S_IMODE(trust.stat().st_mode) == 0o700
    files = sorted(p.name for p in (trust / "private").iterdir())
    assert files == sorted(k.keyid + ".key" for k in (root, targets, signer))  # no temp files left
    for f in (trust / "private").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    data = (trust / "private" / f"{targets.keyid}.key").read_bytes()
    assert key_file_info(data).headers == {"gun": "example.com/a", "role": "targets"}
    assert decode_key_file(data, "targets-pass-1")[0].keyid == targets.keyid
    assert decode_key_file((trust / "private" / f"{signer.keyid}.key").read_bytes(), "other-1")[0]

    fresh = KeyStore(
        trust, fixed_retriever({"root": "root-pass-1", "targets": "targets-pass-1"}, default="other-1")
    )
    assert fresh.get_key(root.keyid)[1] == "root"
    assert [k.keyid for k in fresh.find_keys(role="targets", gun="example.com/a")] == [targets.keyid]
    fresh.remove_key(targets.keyid)
    assert not fresh.has_key(targets.keyid)
    with pytest.raises(KeyStoreError, match="not found"):
        fresh.get_key(targets.keyid)
    with pytest.raises(KeyStoreError, match="not found"):
        fresh.remove_key(targets.keyid)
    exported = fresh.export_key(root.keyid)
    assert key_file_info(exported).path == root.keyid


def test_existing_private_dir_mode_untouched_and_overwrite(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path, constant_retriever("pass-1234"))
    key = PrivateKey.generate()
    ks.add_key(key, "targets/a")
    ks2 = KeyStore(tmp_path, constant_retriever("pass-5678"))
    ks2.add_key(key, "targets/b")
    assert ks2.list_keys() == [KeyInfo(key.keyid, "targets/b", None)]
    assert decode_key_file(ks2.key_path(key.keyid).read_bytes(), "pass-5678")[1] == {"role": "targets/b"}


def test_no_passphrase_available(tmp_path: Path) -> None:
    with pytest.raises(PassphraseError, match="no passphrase available for new root key"):
        KeyStore(tmp_path).add_key(PrivateKey.generate(), "root")
    ks = KeyStore(NOTARY_TRUST)
    kid = ks.find_keys(role="root")[0].keyid
    with pytest.raises(PassphraseError, match=f"no passphrase available for root key with ID {kid[:7]}"):
        ks.get_key(kid)


def test_wrong_passphrase_retries(tmp_path: Path) -> None:
    calls: list[tuple[str, str, bool, int]] = []

    def flaky(keyid: str, alias: str, creating: bool, attempt: int) -> str:
        calls.append((keyid, alias, creating, attempt))
        return NOTARY_PASS["root"] if attempt == 2 else "wrong"

    ks = KeyStore(NOTARY_TRUST, flaky)
    kid = ks.find_keys(role="root")[0].keyid
    assert ks.get_key(kid)[0].keyid == kid
    assert calls == [(kid, "root", False, 0), (kid, "root", False, 1), (kid, "root", False, 2)]

    ks = KeyStore(NOTARY_TRUST, lambda *a: "wrong", max_attempts=3)
    with pytest.raises(PassphraseError, match="giving up after 3 attempts"):
        ks.get_key(kid)
    # a fixed passphrase that proves wrong gives up at once
    ks = KeyStore(NOTARY_TRUST, constant_retriever("wrong"))
    with pytest.raises(PassphraseError, match="wrong"):
        ks.get_key(kid)


def test_legacy_layouts(tmp_path: Path) -> None:
    priv = tmp_path / "private"
    root = PrivateKey.generate()
    targets = PrivateKey.generate()
    (priv / "root_keys").mkdir(parents=True)
    (priv / "tuf_keys/example.com/lib/app").mkdir(parents=True)
    (priv / "root_keys" / f"{root.keyid}_root.key").write_bytes(encode_key_file(root, "rp-123456", ""))
    (priv / "tuf_keys/example.com/lib/app" / f"{targets.keyid}_targets.key").write_bytes(
        encode_key_file(targets, "tp-123456", "")
    )
    (priv / "junk.key").write_bytes(b"not a key")
    ks = KeyStore(tmp_path, fixed_retriever({"root": "rp-123456", "targets": "tp-123456"}))
    assert ks.list_keys() == sorted(
        [KeyInfo(root.keyid, "root", None), KeyInfo(targets.keyid, "targets", "example.com/lib/app")]
    )
    key, role = ks.get_key(targets.keyid)
    assert (key.keyid, role) == (targets.keyid, "targets")
    ks.remove_key(root.keyid)
    assert not (priv / "root_keys" / f"{root.keyid}_root.key").exists()


def test_key_file_holding_another_key(tmp_path: Path) -> None:
    a, b = PrivateKey.generate(), PrivateKey.generate()
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / f"{a.keyid}.key").write_bytes(encode_key_file(b, None, "root"))
    with pytest.raises(KeyStoreError, match="holds key"):
        KeyStore(tmp_path).get_key(a.keyid)
    with pytest.raises(KeyStoreError, match="invalid key ID"):
        KeyStore(tmp_path).key_path("../evil")


# -- import --------------------------------------------------------------------------------------


def test_notary_key_import(tmp_path: Path) -> None:
    d = FIXTURES / "notary-demo/delegation-key"
    ks = KeyStore(tmp_path, notary_env_retriever(NOTARY_ENV))
    with pytest.raises(KeyStoreError, match="may be encrypted and does not contain path header"):
        ks.import_keys((d / "releases-key.pem").read_bytes())
    infos = ks.import_keys((d / "releases-key-with-path.pem").read_bytes())
    assert [(i.keyid[:8], i.role, i.gun) for i in infos] == [("7ff84f03", "targets/releases", None)]
    stored = ks.key_path(infos[0].keyid).read_bytes()
    assert b"path:" not in stored
    assert ks.get_key(infos[0].keyid)[1] == "targets/releases"
    # an unencrypted key gets its computed ID, the default role "delegation", and is encrypted
    bob = ks.import_keys((FIXTURES / "docker-demo/keys/bob.key").read_bytes())[0]
    assert bob.role == "delegation" and bob.keyid.startswith("b9b5f059")
    assert key_file_info(ks.key_path(bob.keyid).read_bytes()).encrypted
    with pytest.raises(KeyStoreError, match="without a gun"):
        ks.import_keys((FIXTURES / "docker-demo/keys/bob.key").read_bytes(), role="targets")
    assert ks.import_keys((FIXTURES / "docker-demo/keys/bob.key").read_bytes(), role="targets", gun="x.io/y")[
        0
    ] == KeyInfo(bob.keyid, "targets", "x.io/y")
    with pytest.raises(FormatError):
        ks.import_keys(b"nothing here")


def test_docker_key_load(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "trust", docker_env_retriever(DOCKER_ENV))
    bob = tmp_path / "bob.key"
    shutil.copy(FIXTURES / "docker-demo/keys/bob.key", bob)
    bob.chmod(0o644)
    with pytest.raises(KeyStoreError) as exc:
        ks.load_docker_key(bob, "bob")
    assert exc.value.message == f"private key file {bob} must not be readable or writable by others"
    bob.chmod(0o600)
    with pytest.raises(KeyStoreError, match='key name "Bob" must start with lowercase'):
        ks.load_docker_key(bob, "Bob")
    info = ks.load_docker_key(bob, "bob")
    assert info.role == "bob" and info.keyid.startswith("b9b5f059")
    assert decode_key_file(ks.key_path(info.keyid).read_bytes(), DOCKER_REPO_PASS)[1] == {"role": "bob"}

    pub = tmp_path / "alice.pub"
    shutil.copy(FIXTURES / "docker-demo/keys/alice.pub", pub)
    pub.chmod(0o600)
    with pytest.raises(KeyStoreError) as exc:
        ks.load_docker_key(pub, "alice")
    assert exc.value.message == (
        f"provided file {pub} is not a supported private key - to add a signer's public key use docker trust signer add"
    )
    # an encrypted key without path header is decrypted ("encrypted" alias -> repository passphrase)
    carol = PrivateKey.generate()
    enc = tmp_path / "carol.key"
    enc.write_bytes(encode_key_file(carol, DOCKER_REPO_PASS, ""))
    enc.chmod(0o600)
    assert ks.load_docker_key(enc, "carol") == KeyInfo(carol.keyid, "carol", None)
    enc.write_bytes(encode_key_file(PrivateKey.generate(), "other-pass", ""))
    with pytest.raises(PassphraseError):
        ks.load_docker_key(enc, "dave")
    with pytest.raises(KeyStoreError, match="refusing to load key"):
        ks.load_docker_key(tmp_path / "missing.key", "x")


# -- retrievers ------------------------------------------------------------------------------------


def test_docker_env_retriever() -> None:
    r = docker_env_retriever(DOCKER_ENV)
    assert r("k", "root", True, 0) == DOCKER_ROOT_PASS
    for alias in ("targets", "snapshot", "alice", "targets/releases", "encrypted"):
        assert r("k", alias, False, 0) == DOCKER_REPO_PASS
    with pytest.raises(PassphraseError):
        r("k", "targets", False, 1)
    only_repo = docker_env_retriever({"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "x"})
    with pytest.raises(PassphraseUnavailable):
        only_repo("k", "root", False, 0)  # never used for root


def test_notary_env_retriever() -> None:
    r = notary_env_retriever(NOTARY_ENV)
    assert r("k", "root", False, 0) == NOTARY_PASS["root"]
    assert r("k", "targets", False, 0) == NOTARY_PASS["targets"]
    assert r("k", "snapshot", False, 0) == NOTARY_PASS["snapshot"]
    assert r("k", "targets/releases", False, 0) == NOTARY_PASS["targets/releases"]
    assert r("k", "delegation", False, 0) == NOTARY_PASS["targets/releases"]
    with pytest.raises(PassphraseUnavailable):
        r("k", "timestamp", False, 0)
    with pytest.raises(PassphraseUnavailable):
        notary_env_retriever({})("k", "root", False, 0)


def test_chain_and_fixed() -> None:
    r = chain_retriever(notary_env_retriever({}), fixed_retriever({"abc": "by-id"}), constant_retriever("c"))
    assert r("abc", "root", False, 0) == "by-id"
    assert r("zzz", "root", False, 0) == "c"
    with pytest.raises(PassphraseError):
        r("zzz", "root", False, 1)
    with pytest.raises(PassphraseUnavailable, match="no passphrase available"):
        chain_retriever(fixed_retriever({}))("k", "root", False, 0)


def test_short_id() -> None:
    kid = "abc1234" + "0" * 57
    assert short_id(kid) == "abc1234"
    assert short_id("example.com/repo/" + kid) == "abc1234 (example.com/repo)"
    assert short_id("") == ""


def _prompt(
    answers: list[str], alias_names: dict[str, str] | None = None
) -> tuple[PromptRetriever, io.StringIO]:
    out = io.StringIO()
    it = iter(answers)
    return PromptRetriever(alias_names, getpass_func=lambda _p: next(it), out=out), out


def test_prompt_create_root() -> None:
    p, out = _prompt(["longpassphrase", "longpassphrase"])
    kid = "abc1234" + "f" * 57
    assert p(kid, "root", True, 0) == "longpassphrase"
    text = out.getvalue()
    assert "You are about to create a new root signing key passphrase" in text
    assert "Enter passphrase for new root key with ID abc1234: " in text
    assert "Repeat passphrase for new root key with ID abc1234: " in text
    # cached per alias
    assert p(kid, "root", False, 0) == "longpassphrase"


def test_prompt_docker_repository_wording_and_retries() -> None:
    p, out = _prompt(
        ["short", "longpassphrase", "different1", "longpassphrase", "longpassphrase"], DOCKER_ALIAS_NAMES
    )
    kid = "def5678" + "0" * 57
    assert p(kid, "targets", True, 0) == "longpassphrase"
    text = out.getvalue()
    assert "Passphrase is too short" in text
    assert "Passphrases do not match. Please retry." in text
    assert text.count("Enter passphrase for new repository key with ID def5678: ") == 3

    p, out = _prompt(["wrong", "right"], DOCKER_ALIAS_NAMES)
    assert p(kid, "root", False, 0) == "wrong"
    assert p(kid, "root", False, 1) == "right"
    assert "Passphrase incorrect. Please retry." in out.getvalue()
    assert "Enter passphrase for root key with ID def5678: " in out.getvalue()
    with pytest.raises(PassphraseError, match="Too many attempts"):
        p(kid, "root", False, 4)


def test_prompt_with_keystore(tmp_path: Path) -> None:
    p, out = _prompt(["wrong", NOTARY_PASS["root"]])
    ks = KeyStore(NOTARY_TRUST, p)
    kid = ks.find_keys(role="root")[0].keyid
    assert ks.get_key(kid)[0].keyid == kid
    assert out.getvalue().count(f"Enter passphrase for root key with ID {kid[:7]}: ") == 2


def test_prompt_without_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(PassphraseUnavailable, match="environment variables or STDIN"):
        PromptRetriever()("k", "root", False, 0)
    r = docker_retriever({}, None)
    with pytest.raises(PassphraseUnavailable):
        r("k", "root", False, 0)


def test_env_default_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_TARGETS_PASSPHRASE", "from-env")
    assert notary_env_retriever()("k", "targets", False, 0) == "from-env"
    assert os.environ["NOTARY_TARGETS_PASSPHRASE"] == "from-env"
