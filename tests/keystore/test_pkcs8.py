"""Pure key file encode/decode: fixtures from the real tools, round trips, error handling."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.testdata import FIXTURES
from trustbox.errors import FormatError, KeyStoreError, PassphraseError
from trustbox.keystore import der
from trustbox.keystore.pkcs8 import (
    OID_ED25519_NOTARY,
    decode_key_file,
    decode_pkcs8,
    decrypt_pkcs8,
    encode_key_file,
    encode_pkcs8,
    key_file_info,
    parse_pbes2,
)
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.pem import parse_pem_blocks

from .keydata import fixture_key_files, metadata_public_keys, passphrase_for

KEY_FILES = fixture_key_files()
HEX64 = re.compile(r"^[0-9a-f]{64}$")
MESSAGE = b'{"signed":"some canonical json"}'


def _rsa2048() -> PrivateKey:
    return PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))


_KEYS: dict[str, PrivateKey] = {}


def key_of(kind: str) -> PrivateKey:
    """Cached test keys (RSA generation is slow)."""
    if kind not in _KEYS:
        if kind == "rsa":
            _KEYS[kind] = _rsa2048()
        elif kind == "p384":
            _KEYS[kind] = PrivateKey(ec.generate_private_key(ec.SECP384R1()))
        elif kind == "p521":
            _KEYS[kind] = PrivateKey(ec.generate_private_key(ec.SECP521R1()))
        else:
            _KEYS[kind] = PrivateKey.generate(kind)
    return _KEYS[kind]


KINDS = ["ecdsa", "rsa", "ed25519", "p384", "p521"]


def test_fixture_key_files_found() -> None:
    assert len(KEY_FILES) == 13


@pytest.mark.parametrize("path", KEY_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_key_decrypts_and_signs(path: Path) -> None:
    data = path.read_bytes()
    info = key_file_info(data)
    passphrase = passphrase_for(path, info.role)
    assert info.encrypted == (passphrase is not None)
    key, headers = decode_key_file(data, passphrase)
    assert headers == info.headers
    stem = path.name.removesuffix(".key")
    if HEX64.match(stem):
        assert key.keyid == stem
    if info.path:
        assert key.keyid == info.path
    sig = key.sign(MESSAGE)
    key.public_key().verify(key.method, sig, MESSAGE)
    # every fixture key except the deleted throwaway repo's appears in the published metadata
    pubs = metadata_public_keys().get(key.keyid)
    if info.gun == "localhost:25000/spec/throwaway":
        assert pubs is None
    else:
        assert pubs, f"{key.keyid} not found in fixture metadata"
        for pub in pubs:  # bare and x509 (root certificate) forms
            pub.verify(key.method, sig, MESSAGE)


@pytest.mark.parametrize(
    "path", [p for p in KEY_FILES if p.name != "bob.key"], ids=lambda p: str(p.relative_to(FIXTURES))
)
def test_fixture_reencodes_byte_exact(path: Path) -> None:
    """With the file's salt and IV, trustbox writes exactly the bytes notary/docker wrote."""
    data = path.read_bytes()
    info = key_file_info(data)
    passphrase = passphrase_for(path, info.role)
    key, _ = decode_key_file(data, passphrase)
    params = parse_pbes2(parse_pem_blocks(data)[0].der)
    assert (params.iterations, len(params.salt), len(params.iv), params.key_length) == (2048, 8, 16, 32)
    again = encode_key_file(key, passphrase, info.role, info.gun, info.path, salt=params.salt, iv=params.iv)
    assert again == data


def test_key_ids_named_in_readme() -> None:
    files = {p.name.removesuffix(".key")[:10]: p for p in KEY_FILES}
    pubs = metadata_public_keys()
    expected_cert_ids = {
        "a732df55c5": "b4598a70",
        "096ff443fe": "49508e1a",
        "4e159feb55": "639b1b61",
    }
    for short, cert_prefix in expected_cert_ids.items():
        path = files[short]
        key, _ = decode_key_file(path.read_bytes(), passphrase_for(path, "root"))
        certs = [p for p in pubs[key.keyid] if p.is_x509]
        assert any(p.keyid.startswith(cert_prefix) for p in certs)
    for short in ("716500643b", "7ff84f03d6", "7ba7246508", "09170a0cb4", "b9b5f0590d"):
        assert any(k.startswith(short) for k in pubs)


def test_bob_key_is_unencrypted_openssl_pkcs8() -> None:
    path = FIXTURES / "docker-demo/keys/bob.key"
    info = key_file_info(path.read_bytes())
    assert (info.pem_type, info.encrypted, info.headers) == ("PRIVATE KEY", False, {})
    key, _ = decode_key_file(path.read_bytes())
    assert key.public_key() == PublicKey.from_pem((FIXTURES / "docker-demo/keys/bob.pub").read_bytes())
    assert key.keyid.startswith("b9b5f059")


def test_public_key_files_match() -> None:
    d = FIXTURES / "notary-demo/delegation-key"
    key, _ = decode_key_file((d / "releases-key.pem").read_bytes(), "delegation-pass-123")
    assert key.public_key() == PublicKey.from_pem((d / "releases.pem").read_bytes()).canonical()
    alice = PublicKey.from_pem((FIXTURES / "docker-demo/keys/alice.pub").read_bytes())
    assert alice.keyid.startswith("09170a0c")


# -- errors ----------------------------------------------------------------------------------


def test_wrong_passphrase() -> None:
    path = FIXTURES / "notary-demo/delegation-key/releases-key.pem"
    with pytest.raises(PassphraseError, match="incorrect passphrase"):
        decode_key_file(path.read_bytes(), "wrong")
    with pytest.raises(PassphraseError, match="passphrase is required"):
        decode_key_file(path.read_bytes(), None)


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519", "rsa"])
def test_wrong_passphrase_many(kind: str) -> None:
    data = encode_key_file(key_of(kind), "right-passphrase", "targets/x")
    for wrong in ("", "Right-passphrase", "right-passphrase ", "x" * 100):
        with pytest.raises(PassphraseError):
            decode_key_file(data, wrong)


def _garbage_inputs() -> list[bytes]:
    good = encode_key_file(key_of("ecdsa"), "pw-123456", "root")
    lines = good.splitlines(keepends=True)
    pub = (
        key_of("ecdsa")
        .key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return [
        b"",
        b"hello world",
        b"\x00\xff" * 50,
        good[: len(good) // 2],  # truncated: no END line
        b"".join(lines[:3] + lines[-1:]),  # body cut short
        good.replace(lines[4], b"!!!!" + lines[4][4:]),  # bad base64
        pub,  # a public key is not a private key
        b"-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
        b"-----BEGIN EC PRIVATE KEY-----\nMAMCAQE=\n-----END EC PRIVATE KEY-----\n",
        b"-----BEGIN RSA PRIVATE KEY-----\nMAMCAQE=\n-----END RSA PRIVATE KEY-----\n",
    ]


@pytest.mark.parametrize("data", _garbage_inputs())
def test_garbage_is_format_error(data: bytes) -> None:
    with pytest.raises((FormatError, KeyStoreError)):
        decode_key_file(data, "pw-123456")


def test_corrupted_ciphertext_is_passphrase_error() -> None:
    data = encode_key_file(key_of("ecdsa"), "pw-123456", "root")
    block = parse_pem_blocks(data)[0]
    tampered = bytearray(block.der)
    tampered[-20] ^= 0xFF
    with pytest.raises(PassphraseError):
        decode_key_file(encode_key_file_raw(bytes(tampered), block.headers), "pw-123456")


def encode_key_file_raw(envelope: bytes, headers: dict[str, str]) -> bytes:
    from trustbox.tuf.pem import PEMBlock, encode_pem_block

    return encode_pem_block(PEMBlock("ENCRYPTED PRIVATE KEY", envelope, headers))


# -- round trips and exact structure ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("passphrase", ["s3cret-passphrase", None])
def test_round_trip(kind: str, passphrase: str | None) -> None:
    key = key_of(kind)
    data = encode_key_file(key, passphrase, "targets", "example.com/a/b")
    info = key_file_info(data)
    assert info.pem_type == ("ENCRYPTED PRIVATE KEY" if passphrase else "PRIVATE KEY")
    assert data.startswith(
        f"-----BEGIN {info.pem_type}-----\ngun: example.com/a/b\nrole: targets\n\n".encode()
    )
    back, headers = decode_key_file(data, passphrase)
    assert headers == {"gun": "example.com/a/b", "role": "targets"}
    assert back.keyid == key.keyid
    key.public_key().verify(back.method, back.sign(MESSAGE), MESSAGE)


def test_headers_sorted_with_path() -> None:
    key = key_of("ecdsa")
    data = encode_key_file(key, "pw-123456", "targets/releases", path=key.keyid)
    assert data.split(b"\n")[1:4] == [f"path: {key.keyid}".encode(), b"role: targets/releases", b""]
    with pytest.raises(FormatError):
        encode_key_file(key, "pw", "evil\nrole: root")


def test_notary_inner_structure_ecdsa() -> None:
    key = key_of("ecdsa")
    top = der.parse_one(encode_pkcs8(key)).children()
    assert top[0].as_int() == 1  # notary's quirk
    assert [e.as_oid() for e in top[1].children()] == ["1.2.840.10045.2.1", "1.2.840.10045.3.1.7"]
    sec1 = der.parse_one(top[2].as_octets()).children()
    assert sec1[0].as_int() == 1 and len(sec1[1].as_octets()) == 32
    assert [e.tag for e in sec1[2:]] == [0xA0, 0xA1]
    # cryptography refuses version-1 PKCS#8 (why we parse by hand), but the SEC1 part is standard
    sec1_key = serialization.load_der_private_key(top[2].as_octets(), None)
    assert isinstance(sec1_key, ec.EllipticCurvePrivateKey)


def test_notary_inner_structure_rsa_and_ed25519() -> None:
    top = der.parse_one(encode_pkcs8(key_of("rsa"))).children()
    assert top[0].as_int() == 0
    assert [(e.tag, e.content) for e in top[1].children()][0][0] == der.OID
    assert len(top[1].children()) == 1  # Go writes no NULL parameter
    top = der.parse_one(encode_pkcs8(key_of("ed25519"))).children()
    assert top[0].as_int() == 0
    assert top[1].children()[0].as_oid() == OID_ED25519_NOTARY
    raw = top[2].as_octets()
    pub = key_of("ed25519").public_key().public
    assert len(raw) == 96 and raw[:32] == pub and raw[64:] == pub


def test_envelope_structure() -> None:
    data = encode_key_file(key_of("ecdsa"), "pw-123456", "root")
    envelope = parse_pem_blocks(data)[0].der
    p = parse_pbes2(envelope)
    assert (len(p.salt), p.iterations, p.prf, p.cipher, len(p.iv)) == (
        8,
        2048,
        "1.2.840.113549.2.7",
        "2.16.840.1.101.3.4.1.42",
        16,
    )
    kdf_params = der.parse_one(envelope).children()[0].children()[1].children()[0].children()[1].children()
    assert len(kdf_params) == 2  # salt + iterations only: no keyLength, PRF omitted
    assert decode_pkcs8(decrypt_pkcs8(envelope, "pw-123456")).keyid == key_of("ecdsa").keyid


# -- formats written by other tools ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ecdsa", "rsa", "ed25519", "p384"])
@pytest.mark.parametrize("fmt", ["pkcs8", "traditional"])
@pytest.mark.parametrize("encrypted", [False, True])
def test_reads_cryptography_written_keys(kind: str, fmt: str, encrypted: bool) -> None:
    key = key_of(kind)
    if fmt == "traditional" and kind == "ed25519":
        pytest.skip("ed25519 has no traditional format")
    pem = key.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8
        if fmt == "pkcs8"
        else serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"pw-123456") if encrypted else serialization.NoEncryption(),
    )
    back, _ = decode_key_file(pem, "pw-123456" if encrypted else None)
    assert back.keyid == key.keyid
    if encrypted:
        with pytest.raises(PassphraseError):
            decode_key_file(pem, "wrong")


def test_legacy_ed25519_block() -> None:
    from trustbox.tuf.pem import PEMBlock, encode_pem_block

    key = key_of("ed25519")
    raw = der.parse_one(encode_pkcs8(key)).children()[2].as_octets()
    data = encode_pem_block(PEMBlock("ED25519 PRIVATE KEY", raw, {"role": "timestamp"}))
    assert decode_key_file(data)[0].keyid == key.keyid


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize("prf", ["hmacWithSHA1", "hmacWithSHA256", "hmacWithSHA512"])
def test_openssl_pkcs8_v2(tmp_path: Path, prf: str) -> None:
    src = FIXTURES / "docker-demo/keys/bob.key"
    out = subprocess.run(
        [
            "openssl",
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-v2prf",
            prf,
            "-in",
            str(src),
            "-passout",
            "pass:open-ssl-pw",
        ],
        capture_output=True,
        check=True,
    ).stdout
    key, headers = decode_key_file(out, "open-ssl-pw")
    assert key.keyid.startswith("b9b5f059") and headers == {}
    with pytest.raises(PassphraseError):
        decode_key_file(out, "nope")


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_openssl_reads_trustbox_files(tmp_path: Path, kind: str) -> None:
    key = key_of(kind)
    data = encode_key_file(key, "pw-123456", "root")
    body = re.sub(rb"\n(role|gun|path): [^\n]*", b"", data).replace(b"-----\n\n", b"-----\n")
    f = tmp_path / "k.pem"
    f.write_bytes(body)
    out = subprocess.run(
        ["openssl", "pkey", "-in", str(f), "-passin", "pass:pw-123456", "-pubout"],
        capture_output=True,
        check=True,
    ).stdout
    assert PublicKey.from_pem(out) == key.public_key()


# -- property tests --------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    passphrase=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    kind=st.sampled_from(["ecdsa", "ed25519", "rsa"]),
    role=st.sampled_from(["root", "targets", "targets/releases", "alice"]),
)
def test_property_round_trip(passphrase: str, kind: str, role: str) -> None:
    key = key_of(kind)
    data = encode_key_file(key, passphrase, role)
    back, headers = decode_key_file(data, passphrase)
    assert back.keyid == key.keyid and headers == {"role": role}
    with pytest.raises(PassphraseError):
        decode_key_file(data, passphrase + "x")


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=300))
def test_property_random_der_never_crashes(blob: bytes) -> None:
    from trustbox.tuf.pem import PEMBlock, encode_pem_block

    for kind in ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY"):
        data = encode_pem_block(PEMBlock(kind, blob, {}))
        with pytest.raises((FormatError, KeyStoreError)):
            decode_key_file(data, "pw")
