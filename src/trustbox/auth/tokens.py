"""Docker registry bearer tokens: compact JWS (JWT) signed with ES256/RS256, verified strictly.

The format is the one distribution's token access controller (registry:2, notary-server) accepts:
header ``{"typ":"JWT","alg":"ES256","kid":"<libtrust key ID>"[,"x5c":[...]]}``, claims ``iss``,
``sub``, ``aud`` (a single string: the service), ``exp``, ``nbf``, ``iat``, ``jti`` and
``access: [{"type","name","actions"}]``. Servers trust the certificates of a PEM bundle
(``rootcertbundle``): a token is accepted when its ``kid`` names the key of a bundle certificate, or
when its ``x5c`` chain leads to one.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID

from trustbox.auth.scopes import Scope
from trustbox.errors import ConfigError, FormatError, TrustboxError
from trustbox.tuf.keys import load_certificate

DEFAULT_TTL = 300
DEFAULT_LEEWAY = 60  # seconds, as distribution's token.Leeway
MAX_TOKEN_LENGTH = 64 * 1024

_EC_ALGS: dict[str, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm, int]] = {
    "ES256": (ec.SECP256R1, hashes.SHA256(), 32),
    "ES384": (ec.SECP384R1, hashes.SHA384(), 48),
    "ES512": (ec.SECP521R1, hashes.SHA512(), 66),
}
_RSA_ALGS: dict[str, hashes.HashAlgorithm] = {
    "RS256": hashes.SHA256(),
    "RS384": hashes.SHA384(),
    "RS512": hashes.SHA512(),
}
ALLOWED_ALGS = frozenset(_EC_ALGS) | frozenset(_RSA_ALGS)
_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class InvalidTokenError(TrustboxError):
    """A bearer token that is malformed, badly signed, expired or meant for someone else."""


# --- encoding helpers -------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (JOSE)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url: only the URL-safe alphabet, no padding, canonical trailing bits."""
    if not _B64URL_RE.match(text) or len(text) % 4 == 1:
        raise InvalidTokenError("malformed token: bad base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("malformed token: bad base64url") from None
    if b64url_encode(data) != text:
        raise InvalidTokenError("malformed token: non-canonical base64url")
    return data


def libtrust_key_id(key: PublicKey) -> str:
    """The libtrust key ID of a public key: SHA-256 of its DER SubjectPublicKeyInfo, first 240 bits,
    base32 without padding, in 12 colon-separated groups of 4 characters."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii").rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


def alg_for_key(key: PrivateKey | PublicKey) -> str:
    """The JWS algorithm a key signs with: ES256/384/512 by curve, RS256 for RSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        for alg, (curve, _h, _n) in _EC_ALGS.items():
            if isinstance(key.curve, curve):
                return alg
        raise ConfigError(f"unsupported EC curve {key.curve.name} for token signing")
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ConfigError("RSA token signing keys must have at least 2048 bits")
        return "RS256"
    raise ConfigError("token signing keys must be ECDSA or RSA")


def _json_segment(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":"), sort_keys=False).encode("utf-8"))


# --- claims -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claims:
    """The verified claims of a token."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    expires: int
    not_before: int
    issued_at: int
    jwt_id: str
    access: tuple[Scope, ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _access_claim(scopes: Sequence[Scope]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in scopes:
        item: dict[str, Any] = {"type": s.type, "name": s.name, "actions": list(s.actions)}
        if s.resource_class:
            item["class"] = s.resource_class
        out.append(item)
    return out


def _parse_access(value: object) -> tuple[Scope, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidTokenError("malformed token: access is not a list")
    out: list[Scope] = []
    for item in value:
        if not isinstance(item, dict):
            raise InvalidTokenError("malformed token: access entry is not an object")
        rtype, name, actions = item.get("type"), item.get("name"), item.get("actions")
        rclass = item.get("class", "")
        if actions is None:
            actions = []
        if (
            not isinstance(rtype, str)
            or not isinstance(name, str)
            or not isinstance(rclass, str)
            or not isinstance(actions, list)
            or not all(isinstance(a, str) for a in actions)
        ):
            raise InvalidTokenError("malformed token: bad access entry")
        out.append(Scope(rtype, name, tuple(actions), rclass))
    return tuple(out)


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now if now is not None else datetime.datetime.now(datetime.UTC)


# --- issuing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and its lifetime."""

    token: str
    expires_in: int
    issued_at: datetime.datetime
    claims: dict[str, Any]


class TokenIssuer:
    """Signs tokens for one issuer name with one private key (and its certificate chain)."""

    def __init__(
        self,
        issuer: str,
        key: PrivateKey,
        chain: Sequence[x509.Certificate] = (),
        *,
        include_x5c: bool | None = None,
    ) -> None:
        self.issuer = issuer
        self.key = key
        self.alg = alg_for_key(key)
        self.chain = list(chain)
        self.kid = libtrust_key_id(key.public_key())
        if self.chain and self.chain[0].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
            raise ConfigError("the token signing certificate does not match the signing key")
        if include_x5c is None:
            # A self-signed certificate is found by kid in the bundle; a CA-issued one needs its chain.
            include_x5c = bool(self.chain) and self.chain[0].issuer != self.chain[0].subject
        self.include_x5c = include_x5c

    @classmethod
    def from_files(cls, issuer: str, key_path: Path | str, cert_path: Path | str | None = None) -> TokenIssuer:
        """Load a PEM private key (PKCS#8/SEC1/PKCS#1, unencrypted) and optionally its PEM chain."""
        try:
            key_data = Path(key_path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read signing key {key_path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"cannot load signing key {key_path}: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ConfigError(f"signing key {key_path} must be ECDSA or RSA")
        chain: list[x509.Certificate] = []
        if cert_path is not None:
            chain = load_cert_bundle(cert_path)
        return cls(issuer, key, chain)

    def header(self) -> dict[str, Any]:
        """The JOSE header of every token this issuer signs."""
        header: dict[str, Any] = {"typ": "JWT", "alg": self.alg, "kid": self.kid}
        if self.include_x5c:
            header["x5c"] = [
                base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii") for c in self.chain
            ]
        return header

    def issue(
        self,
        subject: str,
        audience: str,
        access: Sequence[Scope],
        ttl: int = DEFAULT_TTL,
        now: datetime.datetime | None = None,
    ) -> IssuedToken:
        """Sign a token for ``subject`` (``""`` when anonymous) granting ``access`` on ``audience``."""
        issued = _now(now).replace(microsecond=0)
        iat = int(issued.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "exp": iat + ttl,
            "nbf": iat,
            "iat": iat,
            "jti": secrets.token_urlsafe(24),
            "access": _access_claim(access),
        }
        signing_input = f"{_json_segment(self.header())}.{_json_segment(claims)}"
        signature = sign(self.key, self.alg, signing_input.encode("ascii"))
        return IssuedToken(f"{signing_input}.{b64url_encode(signature)}", ttl, issued, claims)


def sign(key: PrivateKey, alg: str, data: bytes) -> bytes:
    """A JWS signature: raw ``r || s`` for ECDSA, PKCS#1 v1.5 for RSA."""
    if alg in _EC_ALGS and isinstance(key, ec.EllipticCurvePrivateKey):
        curve, h, size = _EC_ALGS[alg]
        if not isinstance(key.curve, curve):
            raise ConfigError(f"{alg} needs a {curve.name} key")
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg in _RSA_ALGS and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), _RSA_ALGS[alg])
    raise ConfigError(f"cannot sign {alg} with this key")


def verify_signature(key: PublicKey, alg: str, data: bytes, signature: bytes) -> bool:
    """Check a JWS signature; the algorithm must fit the key type and curve exactly."""
    try:
        if alg in _EC_ALGS and isinstance(key, ec.EllipticCurvePublicKey):
            curve, h, size = _EC_ALGS[alg]
            if not isinstance(key.curve, curve) or len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(h))
            return True
        if alg in _RSA_ALGS and isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 2048:
                return False
            key.verify(signature, data, padding.PKCS1v15(), _RSA_ALGS[alg])
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


# --- verifying --------------------------------------------------------------------------------


def load_cert_bundle(path: Path | str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle file; ConfigError if it holds none."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificate bundle {path}: {exc.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise ConfigError(f"cannot parse certificate bundle {path}: {exc}") from None
    if not certs:
        raise ConfigError(f"certificate bundle {path} holds no certificate")
    return certs


def _cert_valid_at(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


class TokenVerifier:
    """Verifies tokens for one service against a bundle of trusted certificates."""

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        issuers: Sequence[str] | str,
        audiences: Sequence[str] | str,
        *,
        leeway: int = DEFAULT_LEEWAY,
    ) -> None:
        if not roots:
            raise ConfigError("token verification needs at least one trusted certificate")
        self.roots = list(roots)
        self.issuers = frozenset([issuers] if isinstance(issuers, str) else issuers)
        self.audiences = frozenset([audiences] if isinstance(audiences, str) else audiences)
        self.leeway = leeway
        self.trusted_keys: dict[str, PublicKey] = {}
        for cert in self.roots:
            try:
                key = cert.public_key()
            except (ValueError, UnsupportedAlgorithm):
                continue  # a root whose key cryptography cannot use trusts nothing
            if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
                self.trusted_keys[libtrust_key_id(key)] = key

    @classmethod
    def from_bundle(
        cls, bundle: Path | str, issuers: Sequence[str] | str, audiences: Sequence[str] | str, *, leeway: int = DEFAULT_LEEWAY
    ) -> TokenVerifier:
        """A verifier trusting the certificates of a PEM bundle file (``rootcertbundle``)."""
        return cls(load_cert_bundle(bundle), issuers, audiences, leeway=leeway)

    def _chain_key(self, x5c: object, now: datetime.datetime) -> PublicKey:
        if not isinstance(x5c, list) or not x5c or len(x5c) > 5 or not all(isinstance(c, str) for c in x5c):
            raise InvalidTokenError("invalid token: bad x5c")
        certs: list[x509.Certificate] = []
        for item in x5c:
            try:
                certs.append(load_certificate(der=base64.b64decode(item, validate=True)))
            except (binascii.Error, FormatError):
                raise InvalidTokenError("invalid token: bad certificate in x5c") from None
        leaf = certs[0]
        roots_der = {r.public_bytes(serialization.Encoding.DER) for r in self.roots}
        current = leaf
        pool = certs[1:]
        for _depth in range(len(certs) + 1):
            if not _cert_valid_at(current, now):
                raise InvalidTokenError("invalid token: certificate in x5c is not valid now")
            if current.public_bytes(serialization.Encoding.DER) in roots_der:
                break
            parent = self._issuer_of(current, self.roots, now, require_ca=True)
            if parent is not None:
                break
            nxt = self._issuer_of(current, pool, now, require_ca=True)
            if nxt is None:
                raise InvalidTokenError("invalid token: x5c does not chain to a trusted certificate")
            pool = [c for c in pool if c is not nxt]
            current = nxt
        else:
            raise InvalidTokenError("invalid token: x5c does not chain to a trusted certificate")
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise InvalidTokenError("invalid token: unsupported key in x5c")
        return key

    @staticmethod
    def _issuer_of(
        cert: x509.Certificate, candidates: Sequence[x509.Certificate], now: datetime.datetime, require_ca: bool
    ) -> x509.Certificate | None:
        for cand in candidates:
            if cand.subject != cert.issuer or not _cert_valid_at(cand, now):
                continue
            if require_ca:
                try:
                    bc = cand.extensions.get_extension_for_class(x509.BasicConstraints).value
                except x509.ExtensionNotFound:
                    continue
                if not bc.ca:
                    continue
            try:
                cert.verify_directly_issued_by(cand)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return cand
        return None

    def verify(self, token: str, now: datetime.datetime | None = None) -> Claims:
        """Return the claims of a valid token; raise InvalidTokenError otherwise.

        Checks, in order: shape, header (``alg`` in the allow-list, never ``none``; no ``crit``),
        the signing key (``x5c`` chain to the bundle, else ``kid`` of a bundle key; an embedded
        ``jwk`` is refused), the signature, then issuer, audience, ``exp``/``nbf`` with leeway.
        """
        current = _now(now)
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("malformed token")
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidTokenError("malformed token: want three segments")
        header = _json_object(b64url_decode(parts[0]), "header")
        claims = _json_object(b64url_decode(parts[1]), "claims")
        signature = b64url_decode(parts[2])
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:
            raise InvalidTokenError(f"invalid token: algorithm {alg!r} not allowed")
        if "crit" in header:
            raise InvalidTokenError("invalid token: critical header parameters are not supported")
        if header.get("typ", "JWT") not in ("JWT", "jwt"):
            raise InvalidTokenError("invalid token: typ is not JWT")
        if "x5c" in header:
            try:
                key = self._chain_key(header["x5c"], current)
            except (ValueError, KeyError, TypeError, UnsupportedAlgorithm) as exc:
                # certificates from the token: cryptography refuses unknown key algorithms, curves
                # and malformed keys while the chain is walked
                raise InvalidTokenError("invalid token: bad certificate in x5c") from exc
        elif isinstance(header.get("kid"), str) and header["kid"] in self.trusted_keys:
            key = self.trusted_keys[header["kid"]]
        else:
            raise InvalidTokenError("invalid token: signed by an untrusted key")
        if not signature or not verify_signature(key, alg, f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
            raise InvalidTokenError("invalid token: bad signature")
        return self._check_claims(claims, current)

    def _check_claims(self, claims: dict[str, Any], now: datetime.datetime) -> Claims:
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss not in self.issuers:
            raise InvalidTokenError("invalid token: untrusted issuer")
        aud = claims.get("aud")
        auds: tuple[str, ...]
        if isinstance(aud, str):
            auds = (aud,)
        elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
            auds = tuple(aud)
        else:
            raise InvalidTokenError("invalid token: missing audience")
        if not self.audiences.intersection(auds):
            raise InvalidTokenError("invalid token: intended for another audience")
        exp = _int_claim(claims, "exp", required=True)
        nbf = _int_claim(claims, "nbf", required=False)
        iat = _int_claim(claims, "iat", required=False)
        ts = now.timestamp()
        if ts > exp + self.leeway:
            raise InvalidTokenError("invalid token: expired")
        if ts < nbf - self.leeway:
            raise InvalidTokenError("invalid token: not valid yet")
        sub = claims.get("sub", "")
        jti = claims.get("jti", "")
        if not isinstance(sub, str) or not isinstance(jti, str):
            raise InvalidTokenError("malformed token: bad sub or jti")
        return Claims(iss, sub, auds, exp, nbf, iat, jti, _parse_access(claims.get("access")), claims)


def _int_claim(claims: dict[str, Any], name: str, required: bool) -> int:
    value = claims.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTokenError(f"malformed token: {name} must be an integer")
    return value


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise InvalidTokenError(f"malformed token: duplicate {k!r} in {what}")
            out[k] = v
        return out

    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidTokenError(f"malformed token: {what} is not JSON") from None
    if not isinstance(value, dict):
        raise InvalidTokenError(f"malformed token: {what} is not an object")
    return value


# --- key material -----------------------------------------------------------------------------


def generate_signing_material(
    common_name: str = "trustbox token issuer", days: int = 3650, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """A new P-256 signing key and a self-signed certificate for it: ``(key_pem, cert_pem)``.

    The certificate is what servers put in their ``rootcertbundle``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now(now) - datetime.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
