"""Interop with the real notary CLI / notary-server and the docker CLI (no daemon needed)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers.notary_server import notary_server, run_notary
from trustbox.keystore import (
    KeyStore,
    PassphraseRetriever,
    decode_key_file,
    encode_key_file,
    fixed_retriever,
    key_file_info,
)
from trustbox.tuf.canonical import encode_canonical
from trustbox.tuf.keys import PrivateKey, PublicKey

pytestmark = pytest.mark.interop

needs_notary = pytest.mark.skipif(shutil.which("notary") is None, reason="notary CLI not installed")
needs_server = pytest.mark.skipif(
    shutil.which("notary") is None or shutil.which("notary-server") is None,
    reason="notary-server not installed",
)
needs_docker = pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")

PASS = {
    "root": "tb-root-pass",
    "targets": "tb-targets-pass",
    "snapshot": "tb-snap-pass",
    "delegation": "tb-deleg-pass",
}
NOTARY_ENV = {
    "NOTARY_ROOT_PASSPHRASE": PASS["root"],
    "NOTARY_TARGETS_PASSPHRASE": PASS["targets"],
    "NOTARY_SNAPSHOT_PASSPHRASE": PASS["snapshot"],
    "NOTARY_DELEGATION_PASSPHRASE": PASS["delegation"],
}


def retriever() -> PassphraseRetriever:
    return fixed_retriever(PASS, default=PASS["delegation"])


def make_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return PrivateKey.generate(kind)


def notary_key_list(trust: Path) -> dict[str, tuple[str, str]]:
    out = run_notary(trust, None, None, "key", "list", env=NOTARY_ENV).stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and len(parts[-2]) == 64:
            rows[parts[-2]] = (parts[0], parts[1] if len(parts) == 4 else "")
    return rows


@needs_notary
def test_notary_lists_and_decrypts_trustbox_keys(tmp_path: Path) -> None:
    """`notary key list` shows trustbox-written keys; `notary key passwd` decrypts them (and
    re-encrypts: trustbox then reads notary's output)."""
    trust = tmp_path / "trust"
    ks = KeyStore(trust, retriever())
    written = {}
    for kind in ("ecdsa", "rsa", "ed25519"):
        key = make_key(kind)
        ks.add_key(key, f"targets/{kind}")
        written[key.keyid] = key
    tkey = make_key("ecdsa")
    ks.add_key(tkey, "targets", "example.com/test/repo")
    listed = notary_key_list(trust)
    assert listed[tkey.keyid] == ("targets", "example.com/test/repo")
    for kid in written:
        assert listed[kid][0].startswith("targets/")
    for kid in written:
        before = ks.key_path(kid).read_bytes()
        r = run_notary(trust, None, None, "key", "passwd", kid, env=NOTARY_ENV)
        assert "Successfully updated passphrase" in r.stdout + r.stderr
        after = ks.key_path(kid).read_bytes()
        assert after != before  # new salt/IV: notary decrypted and re-encrypted it
        back, headers = decode_key_file(after, PASS["delegation"])
        assert back.keyid == kid and headers["role"].startswith("targets/")


@needs_notary
def test_notary_import_and_export(tmp_path: Path) -> None:
    key = make_key("ecdsa")
    f = tmp_path / "k.pem"
    f.write_bytes(encode_key_file(key, PASS["delegation"], "targets/releases", path=key.keyid))
    trust = tmp_path / "trust"
    run_notary(trust, None, None, "key", "import", str(f), env=NOTARY_ENV)
    assert notary_key_list(trust)[key.keyid] == ("targets/releases", "")
    plain = make_key("ecdsa")
    g = tmp_path / "plain.pem"
    g.write_bytes(encode_key_file(plain, None, "targets/plain"))
    run_notary(trust, None, None, "key", "import", str(g), env=NOTARY_ENV)
    assert notary_key_list(trust)[plain.keyid] == ("targets/plain", "")
    # notary encrypted the unencrypted import with the delegation passphrase; trustbox reads it
    ks = KeyStore(trust, retriever())
    assert ks.get_key(plain.keyid)[0].keyid == plain.keyid
    out = tmp_path / "export.pem"
    run_notary(trust, None, None, "key", "export", "--key", key.keyid, "-o", str(out), env=NOTARY_ENV)
    exported, headers = decode_key_file(out.read_bytes(), PASS["delegation"])
    assert exported.keyid == key.keyid and headers["path"] == key.keyid
    # and trustbox imports notary's export
    ks2 = KeyStore(tmp_path / "trust2", retriever())
    assert ks2.import_keys(out.read_bytes())[0].keyid == key.keyid


def _get_json(url: str, ca: Path) -> dict:  # type: ignore[type-arg]
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


@needs_server
@pytest.mark.parametrize("root_kind", ["ecdsa", "rsa"])
def test_notary_signs_with_trustbox_keys(tmp_path: Path, root_kind: str) -> None:
    """The real notary client publishes with a trustbox-written root key and delegation key."""
    with notary_server(tmp_path / "server") as (url, ca):
        trust = tmp_path / "trust"
        ks = KeyStore(trust, retriever())
        root = make_key(root_kind)
        deleg = make_key("ecdsa")
        ks.add_key(root, "root")
        ks.add_key(deleg, "targets/releases")
        gun = "example.com/test/repo"
        r = run_notary(trust, url, ca, "init", gun, "-p", env=NOTARY_ENV)
        assert f"Root key found, using: {root.keyid}" in r.stdout + r.stderr
        pub = tmp_path / "deleg.pem"
        pub.write_bytes(
            deleg.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        run_notary(
            trust,
            url,
            ca,
            "delegation",
            "add",
            gun,
            "targets/releases",
            str(pub),
            "--all-paths",
            "-p",
            env=NOTARY_ENV,
        )
        payload = tmp_path / "payload.txt"
        payload.write_text("hello trustbox\n")
        run_notary(
            trust,
            url,
            ca,
            "add",
            gun,
            "v1",
            str(payload),
            "--roles",
            "targets/releases",
            "-p",
            env=NOTARY_ENV,
        )

        base = f"{url}/v2/{gun}/_trust/tuf"
        root_doc = _get_json(f"{base}/root.json", ca)
        keys = {kid: PublicKey.from_dict(k) for kid, k in root_doc["signed"]["keys"].items()}
        [root_id] = root_doc["signed"]["roles"]["root"]["keyids"]
        assert keys[root_id].is_x509 and keys[root_id].canonical_keyid == root.keyid
        [sig] = root_doc["signatures"]
        assert sig["keyid"] == root_id
        signed_bytes = encode_canonical(root_doc["signed"])
        root.public_key().verify(sig["method"], base64.b64decode(sig["sig"]), signed_bytes)

        rel = _get_json(f"{base}/targets/releases.json", ca)
        assert [s["keyid"] for s in rel["signatures"]] == [deleg.keyid]
        deleg.public_key().verify(
            rel["signatures"][0]["method"],
            base64.b64decode(rel["signatures"][0]["sig"]),
            encode_canonical(rel["signed"]),
        )
        assert "v1" in rel["signed"]["targets"]
        # trustbox reads the targets/snapshot keys the notary client generated
        ks2 = KeyStore(trust, fixed_retriever(PASS))
        made = {k.role: k for k in ks2.find_keys(gun=gun)}
        assert set(made) == {"targets", "snapshot"}
        [targets_id] = root_doc["signed"]["roles"]["targets"]["keyids"]
        assert ks2.get_key(targets_id)[1] == "targets"
        assert ks2.get_key(made["snapshot"].keyid)[0].keyid == made["snapshot"].keyid
        # and the root key can be found from the certificate ID
        assert ks2.get_key_for_public(keys[root_id])[0].keyid == root.keyid


def _docker(
    config: Path, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(config.parent),
        "DOCKER_CONFIG": str(config),
        "DOCKER_HOST": f"unix://{config}/no-daemon.sock",
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "dk-root-pass",
        "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": "dk-repo-pass",
    }
    full.update(env or {})
    return subprocess.run(
        ["docker", *args],
        env=full,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@needs_docker
def test_docker_trust_key_load_and_generate(tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    key = make_key("ecdsa")
    f = tmp_path / "mine.key"
    f.write_bytes(encode_key_file(key, None, ""))  # unencrypted PKCS#8 in notary's form
    f.chmod(0o600)
    r = _docker(config, "trust", "key", "load", str(f), "--name", "mine", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Successfully imported key" in r.stdout
    ks = KeyStore(config / "trust", fixed_retriever({}, default="dk-repo-pass"))
    assert ks.key_info(key.keyid).role == "mine"
    assert ks.get_key(key.keyid)[0].keyid == key.keyid

    # an encrypted trustbox file carrying a path header is imported as-is
    enc = make_key("ecdsa")
    g = tmp_path / "enc.key"
    g.write_bytes(encode_key_file(enc, "dk-repo-pass", "carol", path=enc.keyid))
    g.chmod(0o600)
    r = _docker(config, "trust", "key", "load", str(g), "--name", "carol", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert ks.get_key(enc.keyid)[1] == "carol"

    # same permission message as trustbox
    f.chmod(0o644)
    r = _docker(config, "trust", "key", "load", str(f), "--name", "mine2", cwd=tmp_path)
    assert r.returncode != 0
    assert f"private key file {f} must not be readable or writable by others" in r.stderr

    # docker trust key generate -> trustbox reads it and it matches the .pub file
    r = _docker(config, "trust", "key", "generate", "gen", "--dir", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pub = PublicKey.from_pem((tmp_path / "gen.pub").read_bytes())
    assert (
        key_file_info((tmp_path / "gen.pub").read_bytes().replace(b"PUBLIC KEY", b"PRIVATE KEY")).role
        == "gen"
    )
    generated, role = ks.get_key(pub.keyid)
    assert role == "gen" and generated.public_key() == pub
    assert oct((config / "trust/private" / f"{pub.keyid}.key").stat().st_mode & 0o777) == "0o600"


@needs_docker
def test_docker_key_load_encrypted_without_path_imports_nothing(tmp_path: Path) -> None:
    """Observed upstream quirk (docker CLI 28 / notary 0.7): `docker trust key load` of an
    encrypted key without a `path:` header decrypts it, then hands the bare DER to ImportKeys,
    which finds no PEM block: it prints success but stores nothing. trustbox imports it."""
    config = tmp_path / "docker-config"
    key = make_key("ecdsa")
    f = tmp_path / "enc.key"
    f.write_bytes(encode_key_file(key, "dk-repo-pass", ""))
    f.chmod(0o600)
    r = _docker(config, "trust", "key", "load", str(f), "--name", "dave", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    docker_has_it = (config / "trust/private" / f"{key.keyid}.key").exists()
    ks = KeyStore(tmp_path / "tb", fixed_retriever({}, default="dk-repo-pass"))
    assert ks.load_docker_key(f, "dave").keyid == key.keyid
    if docker_has_it:  # a fixed docker: then both agree
        assert (
            KeyStore(config / "trust", fixed_retriever({}, default="dk-repo-pass")).get_key(key.keyid)[1]
            == "dave"
        )
