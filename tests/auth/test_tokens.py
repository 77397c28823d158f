"""JWT issue/verify round trip and the refusals: tampering, wrong key, expiry, audience, alg."""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.auth.helpers import ca_issued_signer, issuer_and_verifier
from trustbox.auth.scopes import repository
from trustbox.auth.tokens import (
    InvalidTokenError,
    TokenIssuer,
    TokenVerifier,
    b64url_decode,
    b64url_encode,
    libtrust_key_id,
    sign,
)

NOW = datetime.datetime.now(datetime.UTC)


def _parts(token: str) -> tuple[dict, dict, str]:  # type: ignore[type-arg]
    h, c, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(c)), s


def _resign(issuer: TokenIssuer, header: dict, claims: dict) -> str:  # type: ignore[type-arg]
    h = b64url_encode(json.dumps(header).encode())
    c = b64url_encode(json.dumps(claims).encode())
    return f"{h}.{c}.{b64url_encode(sign(issuer.key, issuer.alg, f'{h}.{c}'.encode()))}"


def test_round_trip() -> None:
    issuer, verifier, _k, _c = issuer_and_verifier()
    tok = issuer.issue("alice", "svc", [repository("a/b", "pull", "push")])
    header, claims, _ = _parts(tok.token)
    assert header == {"typ": "JWT", "alg": "ES256", "kid": issuer.kid}
    assert claims["aud"] == "svc" and claims["iss"] == "trustbox" and claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    assert claims["access"] == [{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}]
    verified = verifier.verify(tok.token)
    assert verified.subject == "alice" and verified.access == (repository("a/b", "pull", "push"),)


def test_libtrust_key_id_format() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    kid = libtrust_key_id(key)
    groups = kid.split(":")
    assert len(groups) == 12 and all(len(g) == 4 for g in groups)
    assert set(kid.replace(":", "")) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert libtrust_key_id(key) == kid != libtrust_key_id(ec.generate_private_key(ec.SECP256R1()).public_key())


def test_tampered_claims_refused() -> None:
    issuer, verifier, _k, _c = issuer_and_verifier()
    tok = issuer.issue("alice", "svc", [repository("a", "pull")]).token
    h, c, s = tok.split(".")
    claims = json.loads(b64url_decode(c))
    claims["access"][0]["actions"] = ["pull", "push"]
    forged = f"{h}.{b64url_encode(json.dumps(claims).encode())}.{s}"
    with pytest.raises(InvalidTokenError, match="signature"):
        verifier.verify(forged)
    sig = bytearray(b64url_decode(s))
    sig[5] ^= 1
    with pytest.raises(InvalidTokenError):
        verifier.verify(f"{h}.{c}.{b64url_encode(bytes(sig))}")


def test_wrong_key_refused() -> None:
    issuer, _v, _k, _c = issuer_and_verifier()
    _i2, other_verifier, _k2, _c2 = issuer_and_verifier()
    tok = issuer.issue("alice", "svc", []).token
    with pytest.raises(InvalidTokenError, match="untrusted key"):
        other_verifier.verify(tok)
    # Same kid as a trusted key but signed by another key: signature check fails.
    header, claims, _ = _parts(tok)
    impostor = TokenIssuer("trustbox", ec.generate_private_key(ec.SECP256R1()))
    forged = _resign(impostor, header, claims)
    with pytest.raises(InvalidTokenError, match="signature"):
        _v.verify(forged)


def test_expiry_and_not_before() -> None:
    issuer, verifier, _k, _c = issuer_and_verifier()
    tok = issuer.issue("alice", "svc", [], ttl=300, now=NOW).token
    verifier.verify(tok, now=NOW + datetime.timedelta(seconds=330))  # inside the 60 s leeway
    with pytest.raises(InvalidTokenError, match="expired"):
        verifier.verify(tok, now=NOW + datetime.timedelta(seconds=400))
    with pytest.raises(InvalidTokenError, match="not valid yet"):
        verifier.verify(tok, now=NOW - datetime.timedelta(seconds=120))


def test_audience_and_issuer() -> None:
    issuer, verifier, _k, cert_pem = issuer_and_verifier(service="svc")
    with pytest.raises(InvalidTokenError, match="audience"):
        verifier.verify(issuer.issue("alice", "other-service", []).token)
    cert = x509.load_pem_x509_certificate(cert_pem)
    with pytest.raises(InvalidTokenError, match="issuer"):
        TokenVerifier([cert], "someone-else", "svc").verify(issuer.issue("alice", "svc", []).token)
    header, claims, _ = _parts(issuer.issue("alice", "svc", []).token)
    claims["aud"] = ["x", "svc"]
    assert verifier.verify(_resign(issuer, header, claims)).audience == ("x", "svc")
    del claims["aud"]
    with pytest.raises(InvalidTokenError, match="audience"):
        verifier.verify(_resign(issuer, header, claims))


def test_alg_none_and_others_refused() -> None:
    issuer, verifier, _k, _c = issuer_and_verifier()
    header, claims, _ = _parts(issuer.issue("alice", "svc", [repository("a", "*")]).token)
    for alg in ("none", "HS256", "ES384", "RS256", "PS256", None):
        h = dict(header, alg=alg)
        unsigned = f"{b64url_encode(json.dumps(h).encode())}.{b64url_encode(json.dumps(claims).encode())}."
        with pytest.raises(InvalidTokenError):
            verifier.verify(unsigned)
        with pytest.raises(InvalidTokenError):
            verifier.verify(unsigned + b64url_encode(b"x" * 64))
    with pytest.raises(InvalidTokenError, match="critical"):
        verifier.verify(_resign(issuer, dict(header, crit=["exp"]), claims))


@pytest.mark.parametrize("bad", ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.A", "W10.e30.AAAA", "e30=.e30.AAAA"])
def test_malformed_refused(bad: str) -> None:
    _i, verifier, _k, _c = issuer_and_verifier()
    with pytest.raises(InvalidTokenError):
        verifier.verify(bad)


def test_duplicate_claims_refused() -> None:
    issuer, verifier, _k, _c = issuer_and_verifier()
    header, claims, _ = _parts(issuer.issue("alice", "svc", []).token)
    h = b64url_encode(json.dumps(header).encode())
    body = json.dumps(claims)[:-1] + ', "sub": "root"}'
    c = b64url_encode(body.encode())
    tok = f"{h}.{c}.{b64url_encode(sign(issuer.key, issuer.alg, f'{h}.{c}'.encode()))}"
    with pytest.raises(InvalidTokenError, match="duplicate"):
        verifier.verify(tok)


def test_x5c_chain_to_ca_bundle() -> None:
    key, chain, ca = ca_issued_signer()
    issuer = TokenIssuer("trustbox", key, chain)
    assert issuer.include_x5c
    header, _c, _s = _parts(issuer.issue("alice", "svc", []).token)
    assert base64.b64decode(header["x5c"][0]) == chain[0].public_bytes(serialization.Encoding.DER)
    good = TokenVerifier([ca], "trustbox", "svc")
    assert good.verify(issuer.issue("alice", "svc", []).token).subject == "alice"
    _k2, _chain2, other_ca = ca_issued_signer()
    with pytest.raises(InvalidTokenError, match="chain"):
        TokenVerifier([other_ca], "trustbox", "svc").verify(issuer.issue("alice", "svc", []).token)
    # an x5c pointing at a trusted chain but signed by another key
    impostor = TokenIssuer("trustbox", ec.generate_private_key(ec.SECP256R1()))
    hdr, claims, _ = _parts(issuer.issue("alice", "svc", []).token)
    with pytest.raises(InvalidTokenError, match="signature"):
        good.verify(_resign(impostor, hdr, claims))


def test_rsa_tokens() -> None:
    key = rsa.generate_private_key(65537, 2048)
    issuer = TokenIssuer("trustbox", key)
    assert issuer.alg == "RS256"
    tok = issuer.issue("bob", "svc", [repository("a", "pull")]).token
    header, claims, _ = _parts(tok)
    verifier = TokenVerifier([_self_signed(key)], "trustbox", "svc")
    assert verifier.verify(tok).subject == "bob"
    # alg confusion: an RSA-keyed token relabelled ES256 is refused
    h = b64url_encode(json.dumps(dict(header, alg="ES256")).encode())
    rest = tok.split(".", 1)[1]
    with pytest.raises(InvalidTokenError):
        verifier.verify(f"{h}.{rest}")


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )


def test_x5c_with_an_invalid_x509_version_is_an_invalid_token() -> None:
    # cryptography raises InvalidVersion (not a ValueError) for a certificate version it does not know
    key, chain, ca = ca_issued_signer()
    issuer = TokenIssuer("trustbox", key, chain)
    header, claims, _ = _parts(issuer.issue("alice", "svc", []).token)
    der = bytearray(base64.b64decode(header["x5c"][0]))
    at = bytes(der).index(bytes.fromhex("a003020102")) + 4
    der[at] = 0x62
    header["x5c"] = [base64.b64encode(bytes(der)).decode()]
    with pytest.raises(InvalidTokenError, match="bad certificate in x5c"):
        TokenVerifier([ca], "trustbox", "svc").verify(_resign(issuer, header, claims))


def test_every_changed_byte_of_an_x5c_certificate_is_an_invalid_token() -> None:
    key, chain, ca = ca_issued_signer()
    issuer = TokenIssuer("trustbox", key, chain)
    verifier = TokenVerifier([ca], "trustbox", "svc")
    header, claims, _ = _parts(issuer.issue("alice", "svc", []).token)
    der = base64.b64decode(header["x5c"][0])
    for i in range(len(der)):
        for value in {0x00, 0xFF, der[i] ^ 1}:
            header["x5c"] = [base64.b64encode(der[:i] + bytes([value]) + der[i + 1:]).decode()]
            try:
                verifier.verify(_resign(issuer, header, claims))
            except InvalidTokenError:
                pass
