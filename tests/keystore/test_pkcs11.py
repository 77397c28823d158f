"""PKCS#11 keys (keystore/pkcs11.py) against a real module, SoftHSM2: key generation on the
token (ECDSA P-256), signatures that verify, RFC 7512 URIs, the key store's records, root
certificates signed on the token, and one-line errors for a wrong PIN and a missing token.

SoftHSM reads its token folder when the module is first loaded, so every token these tests use
is made once, before that (session fixture); the module is loaded once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers import softhsm
from trustbox.errors import FormatError, KeyStoreError, PassphraseError
from trustbox.keystore.pkcs11 import PIN_ENV, Pkcs11URI, TokenKey, generate_token_key, open_token_key
from trustbox.keystore.store import KeyStore
from trustbox.tuf.certs import check_certificate, make_root_public_key
from trustbox.tuf.metadata import Metadata, Targets
from trustbox.tuf.verify import valid_signers

TOKENS = ("unit-a", "unit-b")


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    why = softhsm.missing()
    if why:
        pytest.skip(why)
    conf = softhsm.make_store(tmp_path_factory.mktemp("softhsm"))
    for label in TOKENS:
        softhsm.init_token(conf, label)
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield {"SOFTHSM2_CONF": str(conf), PIN_ENV: softhsm.USER_PIN}
    finally:
        if old is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = old


def test_uri_parsing() -> None:
    uri = Pkcs11URI.parse("pkcs11:token=My%20Token;object=root?module-path=/x/y.so&pin-value=12")
    assert (uri.token, uri.object, uri.module_path, uri.pin_value) == ("My Token", "root", "/x/y.so", "12")
    assert str(uri) == "pkcs11:token=My%20Token;object=root?module-path=/x/y.so"  # never the PIN
    assert Pkcs11URI.parse("pkcs11:token=t;id=%01%02").id == b"\x01\x02"
    for bad in ("token=t;object=o", "pkcs11:object=o", "pkcs11:token=t", "pkcs11:token=t;object=o;bogus=1",
                "pkcs11:token=t;object=o?pin=1"):
        with pytest.raises(FormatError):
            Pkcs11URI.parse(bad)


def test_generate_sign_verify(hsm: dict[str, str]) -> None:
    key = open_token_key("pkcs11:token=unit-a;object=signer1", environ=hsm, create=True)
    again = open_token_key("pkcs11:token=unit-a;object=signer1", environ=hsm)
    assert again.keyid == key.keyid and key.keytype == "ecdsa"
    md: Metadata[Targets] = Metadata(Targets(1, datetime(2030, 1, 1, tzinfo=UTC)))
    md.sign(key)
    pub = key.public_key()
    assert valid_signers(Metadata.parse(md.to_bytes(), "targets"), {pub.keyid: pub}) == [pub.keyid]
    # one key per label: a second generation is refused, the first key stays
    with pytest.raises(KeyStoreError, match="already holds a key 'signer1'"):
        generate_token_key(Pkcs11URI.parse("pkcs11:token=unit-a;object=signer1"), environ=hsm)
    assert open_token_key("pkcs11:token=unit-a;object=signer1", environ=hsm).keyid == key.keyid


def test_root_certificate_signed_on_token(hsm: dict[str, str]) -> None:
    key = open_token_key("pkcs11:token=unit-b;object=root", environ=hsm, create=True)
    cert_key = make_root_public_key(key, "example.test/app", datetime.now(UTC))
    assert cert_key.keytype == "ecdsa-x509" and cert_key.canonical_keyid == key.keyid
    check_certificate(cert_key)
    cert = cert_key.certificate()
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))


def test_keystore_records_token_keys(hsm: dict[str, str], tmp_path: Path) -> None:
    store = KeyStore(tmp_path, environ=hsm)
    key = store.add_token_key("pkcs11:token=unit-a;object=alice?pin-value=" + softhsm.USER_PIN, "alice", create=True)
    record = (tmp_path / "pkcs11" / f"{key.keyid}.json").read_text()
    assert "pin" not in record and "pkcs11:token=unit-a;object=alice" in record
    fresh = KeyStore(tmp_path, environ=hsm)
    assert [(k.keyid, k.role) for k in fresh.list_keys()] == [(key.keyid, "alice")]
    assert fresh.has_key(key.keyid) and fresh.canonical_id_for(key.public_key()) == key.keyid
    signer, role = fresh.get_signer(key.keyid)
    assert isinstance(signer, TokenKey) and role == "alice"
    pub = key.public_key()
    ((kid, s),) = fresh.signing_keys({pub.keyid: pub}, [pub.keyid])
    assert kid == pub.keyid
    pub.verify("ecdsa", s.sign(b"message"), b"message")
    assert not (tmp_path / "private").exists()  # nothing of the key is written as a file


def test_wrong_pin_and_missing_token(hsm: dict[str, str]) -> None:
    key = open_token_key("pkcs11:token=unit-a;object=signer1", environ={**hsm, PIN_ENV: "0000"})
    with pytest.raises(PassphraseError, match="^incorrect PIN for PKCS#11 token 'unit-a'$"):
        key.sign(b"x")
    with pytest.raises(KeyStoreError, match="^no PKCS#11 token labelled 'absent' is present$"):
        open_token_key("pkcs11:token=absent;object=x", environ=hsm)
    with pytest.raises(KeyStoreError, match="^no key 'nothing' on PKCS#11 token 'unit-a'$"):
        open_token_key("pkcs11:token=unit-a;object=nothing", environ=hsm)


def _cli(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "DOCKER_CONFIG": str(tmp_path / "cfg"), "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "trustbox", *args], env=full, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_cli_one_line_errors(hsm: dict[str, str], tmp_path: Path) -> None:
    r = _cli({**hsm, PIN_ENV: "0000"}, tmp_path, "trust", "key", "generate", "bob", "--dir", str(tmp_path),
             "--pkcs11", "pkcs11:token=unit-b;object=bob")
    assert r.returncode == 1
    assert r.stderr == "Error: failed to generate key for bob: incorrect PIN for PKCS#11 token 'unit-b'\n"
    r = _cli(hsm, tmp_path, "trust", "key", "generate", "bob", "--dir", str(tmp_path),
             "--pkcs11", "pkcs11:token=gone;object=bob")
    assert r.returncode == 1
    assert r.stderr == "Error: failed to generate key for bob: no PKCS#11 token labelled 'gone' is present\n"
    env = {k: v for k, v in hsm.items() if k != PIN_ENV}
    r = _cli(env, tmp_path, "trust", "key", "generate", "bob", "--dir", str(tmp_path),
             "--pkcs11", "pkcs11:token=unit-b;object=bob")
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "no PIN for PKCS#11 token 'unit-b'" in r.stderr
    r = _cli(hsm, tmp_path, "trust", "key", "generate", "bob", "--dir", str(tmp_path),
             "--pkcs11", "pkcs11:token=unit-b;object=bob")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bob.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    r = _cli(hsm, tmp_path, "trust", "key", "list")
    assert r.returncode == 0 and [line.split()[1:] for line in r.stdout.splitlines()[1:]] == [["bob"]], r.stdout
