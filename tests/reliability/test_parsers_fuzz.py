"""Property tests: every parser of untrusted bytes raises the project's own errors, never another.

Inputs are random bytes plus structure-aware mutations of valid documents (a valid signed TUF
document, a valid multipart update, a valid manifest, a valid encrypted key file with one part
replaced), so the fuzzing reaches the deep branches and not only the first "is this JSON" check.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.notary_upload import multipart
from trustbox.errors import FormatError, KeyStoreError, TrustboxError
from trustbox.keystore import decode_key_file, decode_pkcs8, decrypt_pkcs8, encode_key_file, key_file_info
from trustbox.oci.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from trustbox.registry.errors import RegistryError
from trustbox.registry.manifests import validate_pushed
from trustbox.trustserver.upload import MalformedUpload, boundary_of, parse_header_params, parse_multipart
from trustbox.tuf import canonical
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from trustbox.tuf.pem import parse_pem_blocks
from trustbox.tuf.timefmt import utcnow

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ---------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "sha256", "ecdsa", "ed25519", "2030-01-01T00:00:00Z", "AAAA", "=="])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """Replace, delete or re-type one node of ``doc`` (a deep copy)."""
    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return data.draw(json_values)
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    action = data.draw(st.sampled_from(["replace", "delete", "wrap"]))
    if action == "delete":
        del parent[path[-1]]
    elif action == "wrap":
        parent[path[-1]] = [parent[path[-1]]]
    else:
        parent[path[-1]] = data.draw(json_values)
    return doc


def _flip(blob: bytes, data: st.DataObject) -> bytes:
    """Flip, drop or insert bytes of ``blob``."""
    if not blob:
        return data.draw(st.binary(max_size=20))
    buf = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        op = data.draw(st.sampled_from(["flip", "drop", "insert", "truncate"]))
        if op == "flip":
            buf[i] ^= data.draw(st.integers(1, 255))
        elif op == "drop":
            del buf[i]
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[i:]
        if not buf:
            break
    return bytes(buf)


# -- valid documents the mutations start from ---------------------------------------------------


def _valid_docs() -> dict[str, bytes]:
    from tests.helpers.simulator import RepositorySimulator

    b = RepositorySimulator("example.com/fuzz/app", utcnow())
    b.add_target("v1", b"payload")
    b.delegate("targets/releases")
    b.add_target("v2", b"other", role="targets/releases")
    return b.publish()


DOCS = _valid_docs()
ROLE_CLASS = {"root": Root, "targets": Targets, "targets/releases": Targets, "snapshot": Snapshot,
              "timestamp": Timestamp}


def test_valid_documents_parse() -> None:
    """The seeds themselves parse (otherwise the mutation tests below prove little)."""
    for role, data in DOCS.items():
        md = Metadata.parse(data, role, ROLE_CLASS[role])
        assert md.signed_bytes() == canonical.encode_canonical(json.loads(data)["signed"])
        assert Metadata.parse(data, role, ROLE_CLASS[role]).signatures


# -- canonical JSON -----------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=400))
def test_canonical_loads_random_bytes(data: bytes) -> None:
    try:
        canonical.loads(data)
    except FormatError:
        pass


@FAST
@given(st.data())
def test_canonical_loads_mutated_documents(data: st.DataObject) -> None:
    role = data.draw(st.sampled_from(sorted(DOCS)))
    blob = _flip(DOCS[role], data)
    try:
        value = canonical.loads(blob)
    except FormatError:
        return
    # whatever parses also re-encodes canonically or raises the documented error
    try:
        canonical.encode_canonical(value)
    except FormatError:
        pass


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=100_000), st.sampled_from(["[", '{"a":', "[{\"a\":"]))
def test_canonical_loads_deep_nesting(depth: int, opener: str) -> None:
    with pytest.raises(FormatError):
        canonical.loads((opener * depth).encode())


# -- TUF metadata -------------------------------------------------------------------------------


@FAST
@given(st.data())
def test_metadata_parse_mutated_structure(data: st.DataObject) -> None:
    """A valid document with one JSON node replaced, deleted or wrapped."""
    role = data.draw(st.sampled_from(sorted(DOCS)))
    doc = _mutate(json.loads(DOCS[role]), data)
    blob = json.dumps(doc).encode()
    expect = data.draw(st.sampled_from([None, ROLE_CLASS[role]]))
    for parse in (lambda: Metadata.parse(blob, role, expect),
                  lambda: Metadata.parse(blob, role, expect or ROLE_CLASS[role])):
        try:
            md = parse()
        except FormatError:
            continue
        md.signed_bytes()  # a parsed document can always be re-encoded for signature checks


@FAST
@given(st.data())
def test_metadata_parse_mutated_bytes(data: st.DataObject) -> None:
    role = data.draw(st.sampled_from(sorted(DOCS)))
    blob = _flip(DOCS[role], data)
    for parse in (lambda: Metadata.parse(blob, role), lambda: Metadata.parse(blob, role, ROLE_CLASS[role])):
        try:
            parse()
        except FormatError:
            pass


@MEDIUM
@given(json_values)
def test_metadata_parse_arbitrary_json(value: Any) -> None:
    blob = json.dumps({"signed": value, "signatures": []}).encode()
    try:
        Metadata.parse(blob)
    except FormatError:
        pass


# -- the trust server's multipart parser --------------------------------------------------------


def test_multipart_valid_round_trip() -> None:
    parts = [("root", DOCS["root"]), ("targets", DOCS["targets"])]
    got = parse_multipart(multipart(parts, "xyz123")[0], b"xyz123")
    assert [(p.filename, p.data) for p in got] == parts


@FAST
@given(st.data())
def test_multipart_mutated_body(data: st.DataObject) -> None:
    boundary = data.draw(st.sampled_from(["xyz123", "a", "----WebKitFormBoundary7MA4YWxkTrZu0gW"]))
    n = data.draw(st.integers(0, 3))
    parts = [(data.draw(st.sampled_from(["root", "targets", "", "a\"b", "snap;shot"])),
              data.draw(st.binary(max_size=40))) for _ in range(n)]
    body = _flip(multipart(parts, boundary)[0], data) if data.draw(st.booleans()) else multipart(parts, boundary)[0]
    try:
        got = parse_multipart(body, boundary.encode())
    except MalformedUpload:
        return
    assert all(isinstance(p.data, bytes) for p in got)


@FAST
@given(st.binary(max_size=300), st.binary(min_size=1, max_size=12))
def test_multipart_random_bytes(body: bytes, boundary: bytes) -> None:
    try:
        parse_multipart(body, boundary)
    except MalformedUpload:
        pass


@FAST
@given(st.text(max_size=120))
def test_multipart_content_type_and_header_params(value: str) -> None:
    for fn in (boundary_of, parse_header_params):
        try:
            fn(value)
        except MalformedUpload:
            pass


# -- registry manifests -------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


MANIFESTS: list[tuple[dict[str, Any], str]] = [
    ({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(b"c"), "size": 1},
      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(b"l"),
                  "size": 1, "urls": ["https://x.test/l"]}],
      "subject": {"mediaType": OCI_MANIFEST, "digest": _digest(b"s"), "size": 3},
      "annotations": {"a": "b"}}, OCI_MANIFEST),
    ({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
      "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": _digest(b"c"), "size": 1},
      "layers": []}, DOCKER_MANIFEST),
    ({"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/x.test",
      "manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha512:" + hashlib.sha512(b"m").hexdigest(), "size": 9,
                     "platform": {"os": "linux"}}]}, OCI_INDEX),
    ({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": []}, DOCKER_LIST),
]


def test_valid_manifests_parse() -> None:
    for doc, ct in MANIFESTS:
        parsed = validate_pushed(json.dumps(doc).encode(), ct)
        assert parsed.media_type == ct


@FAST
@given(st.data())
def test_manifest_mutated_structure(data: st.DataObject) -> None:
    doc, ct = data.draw(st.sampled_from(MANIFESTS))
    mutated = _mutate(doc, data)
    content_type = data.draw(st.sampled_from([ct, None, "", "application/json", OCI_INDEX, "text/plain;x=y"]))
    try:
        validate_pushed(json.dumps(mutated).encode(), content_type)
    except RegistryError:
        pass


@FAST
@given(st.data())
def test_manifest_mutated_bytes(data: st.DataObject) -> None:
    doc, ct = data.draw(st.sampled_from(MANIFESTS))
    blob = _flip(json.dumps(doc).encode(), data)
    try:
        validate_pushed(blob, ct)
    except RegistryError:
        pass


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=900, max_value=200_000))
def test_manifest_deep_nesting(depth: int) -> None:
    """Deeply nested JSON is refused with a registry error, never RecursionError."""
    blob = b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","annotations":' + b"[" * depth
    blob += b"]" * depth + b"}"
    with pytest.raises(RegistryError):
        validate_pushed(blob, OCI_MANIFEST)


# -- PEM key files ------------------------------------------------------------------------------

PASSPHRASE = "fuzz passphrase"
KEY_FILES = {
    kind: encode_key_file(PrivateKey.generate(kind), PASSPHRASE, "targets", "example.com/fuzz")
    for kind in ("ecdsa", "ed25519")
}


def test_key_files_decode() -> None:
    for data in KEY_FILES.values():
        key, headers = decode_key_file(data, PASSPHRASE)
        assert headers["role"] == "targets"
        assert key.keyid


@MEDIUM
@given(st.data())
def test_key_file_mutated_text(data: st.DataObject) -> None:
    """Bytes of a valid encrypted key file flipped, dropped or inserted (PEM armour and base64)."""
    blob = _flip(data.draw(st.sampled_from(sorted(KEY_FILES.values()))), data)
    passphrase = data.draw(st.sampled_from([PASSPHRASE, None, "wrong"]))
    for fn in (lambda: key_file_info(blob), lambda: parse_pem_blocks(blob),
               lambda: decode_key_file(blob, passphrase)):
        try:
            fn()
        except (FormatError, KeyStoreError):
            pass


@MEDIUM
@given(st.data())
def test_key_file_mutated_der(data: st.DataObject) -> None:
    """The DER inside a valid ENCRYPTED PRIVATE KEY block mutated and re-armoured."""
    src = data.draw(st.sampled_from(sorted(KEY_FILES.values())))
    block = parse_pem_blocks(src)[0]
    der = _flip(block.der, data)
    kind = data.draw(st.sampled_from(["ENCRYPTED PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY",
                                      "RSA PRIVATE KEY", "ED25519 PRIVATE KEY"]))
    headers = "role: targets\n\n" if data.draw(st.booleans()) else ""
    if data.draw(st.booleans()):
        headers = "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n"
    pem = (f"-----BEGIN {kind}-----\n{headers}" + base64.b64encode(der).decode() + f"\n-----END {kind}-----\n")
    for fn in (lambda: decode_key_file(pem.encode(), PASSPHRASE), lambda: decrypt_pkcs8(der, PASSPHRASE),
               lambda: decode_pkcs8(der)):
        try:
            fn()
        except (FormatError, KeyStoreError):
            pass


@FAST
@given(st.binary(max_size=300))
def test_pem_random_bytes(blob: bytes) -> None:
    wrapped = b"-----BEGIN PRIVATE KEY-----\n" + blob + b"\n-----END PRIVATE KEY-----\n"
    for data in (blob, wrapped):
        try:
            decode_key_file(data, PASSPHRASE)
        except TrustboxError:
            pass


def test_seed_documents_are_fresh() -> None:
    """The seed documents do not expire during a run (so mutations are the only failure cause)."""
    ts = Metadata.parse(DOCS["timestamp"], "timestamp", Timestamp)
    assert ts.signed.expires > utcnow() + timedelta(days=1)
