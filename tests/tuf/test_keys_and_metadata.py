"""Keys, key IDs, signatures and metadata models against the golden fixtures."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from trustbox.errors import FormatError, RootError, SignatureError, UnsupportedKeyError
from trustbox.tuf.certs import check_root_certificate, make_root_certificate, make_root_public_key
from trustbox.tuf.keys import PrivateKey, PublicKey
from trustbox.tuf.metadata import (
    DelegatedRole,
    FileMeta,
    Metadata,
    RoleKeys,
    Root,
    Snapshot,
    Targets,
    Timestamp,
    is_delegation,
)

from .fixture_data import REPOS, metadata_files

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def _role_of(path, repo_dir) -> str:
    rel = path.relative_to(repo_dir).as_posix()[: -len(".json")]
    head, dot, rest = rel.partition(".")
    return rest if dot and head.isdigit() else rel


def _all_keys(repo_dir):
    """keyid -> PublicKey and role -> set of keyids allowed, over every version in the folder."""
    keys: dict[str, PublicKey] = {}
    allowed: dict[str, set[str]] = {}
    for p in repo_dir.rglob("*.json"):
        md = Metadata.parse(p.read_bytes())
        if isinstance(md.signed, Root):
            keys.update(md.signed.keys)
            for r, rk in md.signed.roles.items():
                allowed.setdefault(r, set()).update(rk.keyids)
        elif isinstance(md.signed, Targets):
            keys.update(md.signed.delegations.keys)
            for dr in md.signed.delegations.roles:
                allowed.setdefault(dr.name, set()).update(dr.keyids)
    return keys, allowed


@pytest.mark.parametrize("path", metadata_files(), ids=lambda p: "/".join(p.parts[-4:]))
def test_every_fixture_parses_and_every_signature_verifies(path) -> None:
    repo_dir = next(d for _g, d in REPOS.values() if d in path.parents)
    keys, allowed = _all_keys(repo_dir)
    data = path.read_bytes()
    md = Metadata.parse(data, str(path))
    role = _role_of(path, repo_dir)
    assert md.signatures, "fixture documents are signed"
    for sig in md.signatures:
        assert sig.keyid in allowed[role], f"{sig.keyid} is not declared for {role}"
        key = keys[sig.keyid]
        assert key.keyid == sig.keyid
        key.verify(sig.method, sig.sig, md.signed_bytes())
    # rebuilding from the typed model gives the same bytes
    assert Metadata(md.signed, md.signatures).to_bytes() == data


def test_key_ids_match_the_fixture_table() -> None:
    root = Metadata.parse((REPOS["notary-demo"][1] / "root.json").read_bytes()).signed
    root_key = root.keys[root.roles["root"].keyids[0]]
    assert root_key.keyid.startswith("49508e1a")
    assert root_key.canonical_keyid.startswith("096ff443")
    old = Metadata.parse((REPOS["notary-demo"][1] / "1.root.json").read_bytes()).signed
    old_key = old.keys[old.roles["root"].keyids[0]]
    assert (old_key.keyid[:8], old_key.canonical_keyid[:8]) == ("b4598a70", "a732df55")


def test_fixture_root_certificates_are_valid_for_their_gun() -> None:
    for gun, d in REPOS.values():
        root = Metadata.parse((d / "root.json").read_bytes()).signed
        for kid in root.roles["root"].keyids:
            check_root_certificate(root.keys[kid], gun, NOW)
            with pytest.raises(RootError):
                check_root_certificate(root.keys[kid], gun + "x", NOW)
            with pytest.raises(RootError):
                check_root_certificate(root.keys[kid], gun, NOW + timedelta(days=3660))


@pytest.mark.parametrize("keytype", ["ecdsa", "rsa", "ed25519"])
def test_sign_verify_round_trip_every_key_type(keytype, rsa_key) -> None:
    key = rsa_key if keytype == "rsa" else PrivateKey.generate(keytype)
    pub = PublicKey.from_dict(json.loads(json.dumps(key.public_key().to_dict())))
    sig = key.sign(b"message")
    pub.verify(key.method, sig, b"message")
    with pytest.raises(SignatureError):
        pub.verify(key.method, sig, b"messagf")
    bad = bytearray(sig)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(SignatureError):
        pub.verify(key.method, bytes(bad), b"message")


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.mark.parametrize("keytype", ["ecdsa", "rsa"])
def test_x509_root_keys(keytype, rsa_key) -> None:
    key = rsa_key if keytype == "rsa" else PrivateKey.generate("ecdsa")
    gun = "registry.example.test/team/app_x"
    cert = make_root_certificate(key, gun, NOW)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    pub = make_root_public_key(key, gun, NOW)
    assert pub.keytype == f"{keytype}-x509"
    assert pub.canonical_keyid == key.keyid != pub.keyid
    check_root_certificate(pub, gun, NOW)
    pub.verify(key.method, key.sign(b"m"), b"m")


def test_cn_is_printable_string_like_go_when_possible() -> None:
    key = PrivateKey.generate("ecdsa")
    cert = make_root_certificate(key, "localhost:25000/spec/notary-demo", NOW)
    # PrintableString tag (0x13) right before the CN value, as Go writes it
    assert b"\x13\x20localhost:25000/spec/notary-demo" in cert.tbs_certificate_bytes


def test_ecdsa_signature_must_be_raw_r_s() -> None:
    key = PrivateKey.generate("ecdsa")
    der = key.key.sign(b"m", ec.ECDSA(__import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()))
    with pytest.raises(SignatureError):
        key.public_key().verify("ecdsa", der, b"m")


def test_unknown_method_and_key_types_are_refused() -> None:
    key = PrivateKey.generate("ed25519")
    with pytest.raises(UnsupportedKeyError):
        key.public_key().verify("hmac", b"x" * 64, b"m")
    with pytest.raises(SignatureError):
        key.public_key().verify("ecdsa", b"x" * 64, b"m")
    with pytest.raises(UnsupportedKeyError):
        PublicKey.from_dict({"keytype": "dsa", "keyval": {"public": "AAAA"}})
    with pytest.raises(FormatError):
        PublicKey.from_dict({"keytype": "ed25519", "keyval": {"public": "AAAA"}})
    with pytest.raises(FormatError):
        PublicKey.from_dict({"keytype": "ecdsa", "keyval": {"public": "not base64!"}})


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=2048), st.sampled_from(["ecdsa", "ed25519"]))
def test_sign_verify_property(message, keytype) -> None:
    key = PrivateKey.generate(keytype)
    key.public_key().verify(key.method, key.sign(message), message)


def _build_repo(now: datetime):
    gun = "example.test/org/repo"
    root_key, targets_key, snap_key, ts_key = (PrivateKey.generate(t) for t in ("ecdsa", "ecdsa", "ed25519", "ed25519"))
    root_pub = make_root_public_key(root_key, gun, now)
    root = Root(
        1,
        now + timedelta(days=3650),
        keys={k.keyid: k for k in (root_pub, targets_key.public_key(), snap_key.public_key(), ts_key.public_key())},
        roles={
            "root": RoleKeys([root_pub.keyid]),
            "targets": RoleKeys([targets_key.keyid]),
            "snapshot": RoleKeys([snap_key.keyid]),
            "timestamp": RoleKeys([ts_key.keyid]),
        },
    )
    return gun, (root_key, root_pub), targets_key, snap_key, ts_key, root


def test_build_sign_parse_round_trip() -> None:
    gun, (root_key, root_pub), targets_key, snap_key, ts_key, root = _build_repo(NOW)
    root_md: Metadata[Root] = Metadata(root)
    root_md.sign(root_key, root_pub.keyid)
    rel_key = PrivateKey.generate("ecdsa")
    targets = Targets(2, NOW + timedelta(days=1095))
    targets.targets["v1"] = FileMeta.from_bytes(b"hello\n")
    targets.targets["custom"] = FileMeta(3, {"sha256": b"\x00" * 32}, custom={"z": 1, "a": [1.0, "x<y"]}, has_custom=True)
    targets.delegations.keys[rel_key.keyid] = rel_key.public_key()
    targets.delegations.roles.append(DelegatedRole("targets/releases", [rel_key.keyid], 1, [""]))
    t_md: Metadata[Targets] = Metadata(targets)
    t_md.sign(targets_key)
    snap = Snapshot(2, NOW + timedelta(days=1095), meta={"root": FileMeta.from_bytes(root_md.to_bytes()), "targets": FileMeta.from_bytes(t_md.to_bytes())})
    s_md: Metadata[Snapshot] = Metadata(snap)
    s_md.sign(snap_key)
    ts = Timestamp(1, NOW + timedelta(days=14), meta={"snapshot": FileMeta.from_bytes(s_md.to_bytes())})
    ts_md: Metadata[Timestamp] = Metadata(ts)
    ts_md.sign(ts_key)
    for md in (root_md, t_md, s_md, ts_md):
        data = md.to_bytes()
        again = Metadata.parse(data)
        assert again.to_bytes() == data
        assert again.signed_bytes() == md.signed_bytes()
    parsed_targets = Metadata.parse(t_md.to_bytes()).signed
    assert parsed_targets.targets["custom"].custom == {"z": 1, "a": [1, "x<y"]}
    assert parsed_targets.delegations.get("targets/releases").paths == [""]
    assert b'"expires":"' in t_md.to_bytes() and b"\\u003c" in t_md.to_bytes()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.update(_type="Targets"), "_type"),
        (lambda s: s.update(version=0), "version"),
        (lambda s: s.update(version=1.5), "version"),
        (lambda s: s.update(expires="tomorrow"), "expires"),
        (lambda s: s["roles"].pop("snapshot"), "snapshot"),
        (lambda s: s["roles"]["targets"].update(threshold=0), "threshold"),
        (lambda s: s["roles"]["targets"].update(keyids=["ab" * 32]), "not in keys"),
    ],
)
def test_malformed_root_is_refused_with_a_message_naming_the_problem(mutate, message) -> None:
    data = json.loads((REPOS["notary-demo"][1] / "root.json").read_bytes())
    mutate(data["signed"])
    with pytest.raises(FormatError, match=message):
        Metadata.parse(json.dumps(data).encode(), "root.json", expect=Root)


def test_role_names() -> None:
    assert is_delegation("targets/releases") and is_delegation("targets/a/b_c-1")
    for bad in ("targets", "targets/", "targets/../root", "targets/A", "targets//x", "root", "targets/x/"):
        assert not is_delegation(bad), bad


def test_strict_base64_signatures() -> None:
    data = json.loads((REPOS["notary-demo"][1] / "timestamp.json").read_bytes())
    sig = data["signatures"][0]["sig"]
    raw = base64.b64decode(sig)
    assert base64.b64encode(raw).decode() == sig
    # change unused trailing bits: Go would decode it to the same bytes; we refuse it
    last = sig.rstrip("=")[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data["signatures"][0]["sig"] = sig.rstrip("=")[:-1] + alphabet[alphabet.index(last) ^ 1] + "=" * (len(sig) - len(sig.rstrip("=")))
    with pytest.raises(FormatError):
        Metadata.parse(json.dumps(data).encode())


def _with_x509_version_98(pem: bytes) -> bytes:
    """``pem`` with its certificate's version field changed to 98 (cryptography raises
    ``InvalidVersion``, which is not a ValueError)."""
    import base64 as _b64

    from cryptography import x509 as _x509
    from cryptography.hazmat.primitives import serialization as _ser

    der = _x509.load_pem_x509_certificate(pem).public_bytes(_ser.Encoding.DER)
    at = der.index(bytes.fromhex("a003020102")) + 4
    bad = der[:at] + b"\x62" + der[at + 1:]
    body = _b64.encodebytes(bad).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n").encode()


def test_certificate_with_an_invalid_x509_version_is_a_format_error() -> None:
    from datetime import datetime

    from trustbox.errors import FormatError
    from trustbox.tuf.certs import make_root_public_key
    from trustbox.tuf.keys import PrivateKey, PublicKey

    pub = make_root_public_key(PrivateKey.generate("ecdsa"), "example.com/a", datetime.now(UTC))
    bad = _with_x509_version_98(pub.public)
    with pytest.raises(FormatError):
        PublicKey(pub.keytype, bad).certificate()
    with pytest.raises(FormatError):
        PublicKey.from_pem(bad)


def test_every_changed_byte_of_a_certificate_is_a_trustbox_error() -> None:
    """Certificates are untrusted bytes: every one-byte change of a root certificate (each position,
    several values) gives a TrustboxError or a usable key, never another exception (cryptography
    raises InvalidVersion, UnsupportedAlgorithm and ValueError for different fields)."""
    import base64 as _b64
    from datetime import datetime

    from cryptography import x509 as _x509
    from cryptography.hazmat.primitives import serialization as _ser

    from trustbox.errors import TrustboxError
    from trustbox.tuf.certs import check_certificate, check_root_certificate, make_root_public_key
    from trustbox.tuf.keys import PrivateKey, PublicKey

    now = datetime.now(UTC)
    pub = make_root_public_key(PrivateKey.generate("ecdsa"), "example.com/a", now)
    der = _x509.load_pem_x509_certificate(pub.public).public_bytes(_ser.Encoding.DER)

    def pem(d: bytes) -> bytes:
        return b"-----BEGIN CERTIFICATE-----\n" + _b64.encodebytes(d) + b"-----END CERTIFICATE-----\n"

    for i in range(len(der)):
        for value in {0x00, 0xFF, der[i] ^ 1, 0x62}:
            changed = pem(der[:i] + bytes([value]) + der[i + 1:])
            key = PublicKey(pub.keytype, changed)
            for step in (lambda c=changed: PublicKey.from_pem(c), key.certificate, key.canonical, key.crypto_key,
                         lambda k=key: check_certificate(k),
                         lambda k=key: check_root_certificate(k, "example.com/a", now)):
                try:
                    step()
                except TrustboxError:
                    pass
