"""Update validation: every rule, accepted and rejected, with upstream's error bodies."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest

from tests.helpers.legacy_certs import sha1_certificate_key
from tests.helpers.notary_upload import multipart
from tests.helpers.simulator import RepositorySimulator, target
from tests.trustserver.ts_helpers import GUN, error, new_repo, post, publish_new, root_listing, tuf
from trustbox.errors import FormatError
from trustbox.trustserver.errors import ServerError
from trustbox.trustserver.service import parse_parts
from trustbox.trustserver.upload import UploadPart
from trustbox.tuf.canonical import MAX_DEPTH, json_depth
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.loader import RepoLoader
from trustbox.tuf.metadata import FileMeta, Metadata, Snapshot, Targets
from trustbox.tuf.verify import TrustedCollection

THRESHOLD_TARGETS = (
    b'{"errors":[{"code":"INVALID_UPDATE","message":"Update sent by the client is invalid.","detail":'
    b'{"Name":"ErrBadTargets","Error":{"Msg":"valid signatures did not meet threshold for targets"}}}]}\n'
)
VERSION_BODY = b'{"errors":[{"code":"VERSION","message":"A newer version of metadata is already available.","detail":{}}]}\n'


def invalid(r, name: str) -> str:
    assert r.status_code == 400, r.text
    e = error(r)
    assert e["code"] == "INVALID_UPDATE" and e["message"] == "Update sent by the client is invalid."
    assert e["detail"]["Name"] == name, e
    msg: str = e["detail"]["Error"]["Msg"]
    return msg


def unchanged(client, gun: str, expected: dict[str, bytes]) -> None:
    for role, data in expected.items():
        assert client.get(tuf(gun, f"{role}.json")).content == data, role


def current(client, gun: str = GUN) -> dict[str, bytes]:
    out = {}
    for role in ("root", "targets", "snapshot", "timestamp"):
        r = client.get(tuf(gun, f"{role}.json"))
        if r.status_code == 200:
            out[role] = r.content
    return out


# -- root ---------------------------------------------------------------------------------


def test_no_root_at_all(client):
    repo = new_repo(client)
    r = post(client, GUN, {"targets": repo.make_targets(version=2)})
    assert invalid(r, "ErrValidation") == "no pre-existing root and no root provided in update."
    assert client.get(tuf(GUN, "targets.json")).status_code == 404


def test_root_version_must_be_current_or_next(client):
    repo = publish_new(client)
    before = current(client)
    r = post(client, GUN, {"root": repo.make_root(version=3)})
    assert invalid(r, "ErrBadRoot") == "Root modifications must increment the version. Current 1, new 3"
    r = post(client, GUN, {"root": repo.make_root(version=1), "snapshot": repo.make_snapshot(version=3)})
    assert (r.status_code, r.content) == (400, VERSION_BODY)  # same version: storage refuses
    unchecked_root = repo.make_root(version=2)
    r = post(client, GUN, {"root": unchecked_root, "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200, r.text
    assert client.get(tuf(GUN, "root.json")).content == unchecked_root
    assert client.get(tuf(GUN, "1.root.json")).content == before["root"]


def test_new_repo_root_version_must_be_one_or_two(client):
    repo = new_repo(client)
    r = post(client, GUN, {"root": repo.make_root(version=5), "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    assert invalid(r, "ErrBadRoot") == "Root modifications must increment the version. Current 1, new 5"


def test_cross_gun_replay_is_rejected(client):
    repo = publish_new(client)
    parts = {"root": repo.docs["root"], "targets": repo.docs["targets"], "snapshot": repo.docs["snapshot"]}
    r = post(client, "example.com/victim", parts)
    assert invalid(r, "ErrBadRoot") == (
        "could not validate the path to a trusted root: unable to retrieve valid leaf certificates"
    )
    assert client.get(tuf("example.com/victim", "root.json")).status_code == 404


def test_root_signed_by_wrong_key(client):
    repo = new_repo(client)
    stranger = PrivateKey.generate("ecdsa")
    r = post(client, GUN, {"root": repo.make_root(signers=[(stranger, repo.root_pub.keyid)]),
                           "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    assert invalid(r, "ErrBadRoot") == "could not validate the path to a trusted root: failed to validate integrity of roots"


def test_root_bare_key_not_certificate(client):
    repo = new_repo(client)
    repo.root_keys = [(repo.root_key, repo.root_key.public_key())]  # not an x509 key
    r = post(client, GUN, {"root": repo.make_root(), "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    assert "unable to retrieve valid leaf certificates" in invalid(r, "ErrBadRoot")


def test_root_expired(client):
    repo = new_repo(client)
    r = post(client, GUN, {"root": repo.make_root(expires=repo.now - timedelta(days=1)), "targets": repo.make_targets(version=2),
                           "snapshot": repo.make_snapshot(version=2)})
    assert invalid(r, "ErrBadRoot").startswith("root expired at ")


def test_root_threshold_two(client):
    repo = new_repo(client)
    r = post(client, GUN, {"root": repo.make_root(threshold=2), "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    assert "failed to validate integrity of roots" in invalid(r, "ErrBadRoot")


def test_root_rotation_needs_old_and_new_keys(client):
    repo = publish_new(client)
    old_key, old_id = repo.rotate_root_key()
    repo.extra_root_signers = []
    # signed only by the new key: rotation refused
    only_new = repo.make_root(version=2, signers=[(repo.root_key, repo.root_pub.keyid)])
    r = post(client, GUN, {"root": only_new, "snapshot": repo.make_snapshot(version=3)})
    assert invalid(r, "ErrBadRoot") == (
        "could not rotate trust to a new trusted root: failed to validate data with current trusted certificates"
    )
    # signed only by the old key: the new root does not sign itself
    only_old = repo.make_root(version=2, signers=[(old_key, old_id)])
    r = post(client, GUN, {"root": only_old, "snapshot": repo.make_snapshot(version=3)})
    assert "failed to validate integrity of roots" in invalid(r, "ErrBadRoot")
    # both: accepted
    repo.extra_root_signers = [(old_key, old_id)]
    both = repo.make_root(version=2)
    r = post(client, GUN, {"root": both, "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200, r.text
    # from now on the old key alone cannot make root v3
    repo.extra_root_signers = []
    r = post(client, GUN, {"root": repo.make_root(version=3, signers=[(old_key, old_id)]), "snapshot": repo.make_snapshot(version=4)})
    assert "could not rotate trust" in invalid(r, "ErrBadRoot")


def test_rotation_does_not_count_a_sha1_certificate_of_the_previous_root(client):
    """The stored root lists a good certificate and a SHA-1 one; a new root signed by the SHA-1
    one and by its own key does not chain (the client's rule, and notary-server's)."""
    repo = new_repo(client)
    legacy = PrivateKey.generate("ecdsa")
    good, old_sha1 = (repo.root_key, repo.root_pub), (legacy, sha1_certificate_key(legacy, GUN, repo.now))
    r = post(client, GUN, {"root": root_listing(repo, [good, old_sha1], [0, 1]), "targets": repo.make_targets(version=2),
                           "snapshot": repo.make_snapshot(version=2)})
    assert r.status_code == 200, r.text
    before = current(client)
    repo.rotate_root_key()
    new = (repo.root_key, repo.root_pub)
    r = post(client, GUN, {"root": root_listing(repo, [new, old_sha1], [0, 1]), "snapshot": repo.make_snapshot(version=3)})
    assert invalid(r, "ErrBadRoot") == (
        "could not rotate trust to a new trusted root: failed to validate data with current trusted certificates"
    )
    unchanged(client, GUN, before)
    repo.root_version = 1
    r = post(client, GUN, {"root": root_listing(repo, [new, good], [0, 1]), "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200, r.text


def test_new_root_certificates_are_checked_before_the_rotation(client):
    repo = publish_new(client)
    other = RepositorySimulator("example.com/other", repo.now, timestamp_key=repo.timestamp_pub)
    r = post(client, GUN, {"root": other.make_root(version=2), "snapshot": repo.make_snapshot(version=3)})
    assert invalid(r, "ErrBadRoot") == (
        "could not validate the path to a trusted root: unable to retrieve valid leaf certificates"
    )


def test_delegation_key_certificate_signed_with_sha1(client):
    """Delegating to such a certificate is stored (as upstream); a document signed with it is not."""
    repo = publish_new(client)
    dk = PrivateKey.generate("ecdsa")
    dpub = sha1_certificate_key(dk, "signer", repo.now)
    r = post(client, GUN, {"targets": repo.make_targets(delegations=[("targets/releases", dpub, [""])], version=3),
                           "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200, r.text
    rel: Metadata[Targets] = Metadata.parse(repo.make_targets(role="targets/releases", key=dk, version=1))
    rel.signatures = []
    rel.sign(dk, dpub.keyid)
    r = post(client, GUN, {"targets/releases": rel.to_bytes(), "snapshot": repo.make_snapshot(version=4)})
    assert invalid(r, "ErrBadTargets") == "certificate with CN signer uses invalid SHA1 signature algorithm"


def test_key_listed_under_another_id(client):
    repo = new_repo(client)
    wrong = "ab" * 32
    root = root_listing(repo, [(repo.root_key, repo.root_pub)], [0], targets=wrong)
    targets: Metadata[Targets] = Metadata.parse(repo.make_targets(version=2))
    targets.signatures = []
    targets.sign(repo.targets_key, wrong)
    repo.docs["targets"] = targets.to_bytes()
    r = post(client, GUN, {"root": root, "targets": repo.docs["targets"], "snapshot": repo.make_snapshot(version=2)})
    assert invalid(r, "ErrBadTargets") == "key ID is not valid for key content"


def test_timestamp_key_not_held(client):
    repo = new_repo(client)
    repo.timestamp_key = PrivateKey.generate("ed25519").public_key()
    r = post(client, GUN, {"root": repo.make_root(), "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
    assert invalid(r, "ErrBadRoot") == "no  timestamp keys exist on the server"
    assert client.get(tuf(GUN, "root.json")).status_code == 404


# -- targets ------------------------------------------------------------------------------


def test_targets_bad_signature_exact_body(client):
    repo = publish_new(client)
    before = current(client)
    stranger = PrivateKey.generate("ecdsa")
    r = post(client, GUN, {"targets": repo.make_targets(key=stranger, version=3), "snapshot": repo.make_snapshot(version=3)})
    assert (r.status_code, r.content) == (400, THRESHOLD_TARGETS)
    unchecked(client, before)


def unchecked(client, before):
    unchanged(client, GUN, before)


def test_targets_tampered_after_signing(client):
    repo = publish_new(client)
    doc = json.loads(repo.make_targets({"v1": target(b"x")}, version=3))
    doc["signed"]["targets"]["evil"] = {"hashes": {"sha256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, "length": 1}
    data = json.dumps(doc).encode()
    repo.docs["targets"] = data
    r = post(client, GUN, {"targets": data, "snapshot": repo.make_snapshot(version=3)})
    assert invalid(r, "ErrBadTargets") == "valid signatures did not meet threshold for targets"


def test_targets_without_signatures(client):
    repo = publish_new(client)
    doc = json.loads(repo.make_targets(version=3))
    doc["signatures"] = []
    data = json.dumps(doc).encode()
    repo.docs["targets"] = data
    r = post(client, GUN, {"targets": data, "snapshot": repo.make_snapshot(version=3)})
    assert invalid(r, "ErrBadTargets") == "tuf: data has no signatures"


def test_targets_old_version_is_version_error(client):
    repo = publish_new(client)
    r = post(client, GUN, {"targets": repo.make_targets(version=3), "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200
    r = post(client, GUN, {"targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=4)})
    assert (r.status_code, r.content) == (400, VERSION_BODY)
    # and nothing of that update was stored (snapshot v4 neither)
    assert client.get(tuf(GUN, "4.snapshot.json")).status_code == 404
    assert client.get(tuf(GUN, "3.timestamp.json")).status_code == 404


def test_targets_expired(client):
    repo = publish_new(client)
    r = post(client, GUN, {"targets": repo.make_targets(expires=repo.now - timedelta(seconds=5), version=3), "snapshot": repo.make_snapshot(version=3)})
    assert invalid(r, "ErrBadTargets").startswith("targets expired at ")


def test_targets_wrong_type(client):
    repo = publish_new(client)
    r = post(client, GUN, {"targets": repo.docs["root"], "snapshot": repo.make_snapshot(version=3)})
    invalid(r, "ErrBadTargets")


def test_unknown_fields_are_kept_byte_identical(client):
    repo = publish_new(client)
    md = Metadata.parse(repo.make_targets(version=3))
    value = md.signed_value
    value["x-extra"] = {"note": "kept", "n": [1, 2]}
    md2: Metadata[Targets] = Metadata(md.signed, [], value)
    md2.sign(repo.targets_key)
    data = md2.to_bytes()
    repo.docs["targets"] = data
    r = post(client, GUN, {"targets": data, "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200, r.text
    assert client.get(tuf(GUN, "targets.json")).content == data


# -- delegations --------------------------------------------------------------------------


def _with_delegation(client, paths=("",), name="targets/releases"):
    repo = publish_new(client)
    dkey = PrivateKey.generate("ecdsa")
    repo.make_targets({"v1": target(b"payload-1")}, delegations=[(name, dkey.public_key(), list(paths))], version=3)
    r = post(client, GUN, {"targets": repo.docs["targets"], "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200, r.text
    return repo, dkey


def test_delegation_publish_and_serve(client):
    repo, dkey = _with_delegation(client)
    rel = repo.make_targets({"v3": target(b"three")}, key=dkey, role="targets/releases", version=1)
    r = post(client, GUN, {"targets/releases": rel, "snapshot": repo.make_snapshot(version=4)})
    assert r.status_code == 200, r.text
    assert client.get(tuf(GUN, "targets/releases.json")).content == rel
    assert client.get(tuf(GUN, "1.targets/releases.json")).content == rel
    h = hashlib.sha256(rel).hexdigest()
    assert client.get(tuf(GUN, f"targets/releases.{h}.json")).content == rel


def test_delegation_wrong_key(client):
    repo, _ = _with_delegation(client)
    rel = repo.make_targets({"v3": target(b"three")}, key=repo.targets_key, role="targets/releases", version=1)
    r = post(client, GUN, {"targets/releases": rel, "snapshot": repo.make_snapshot(version=4)})
    assert invalid(r, "ErrBadTargets") == "valid signatures did not meet threshold for targets/releases"


def test_undelegated_role(client):
    repo, dkey = _with_delegation(client)
    other = repo.make_targets(key=dkey, role="targets/other", version=1)
    r = post(client, GUN, {"targets/other": other, "snapshot": repo.make_snapshot(version=4)})
    assert invalid(r, "ErrBadTargets") == "tuf: invalid role targets/other. delegation does not exist"


def test_delegation_target_outside_paths(client):
    repo, dkey = _with_delegation(client, paths=("release/",))
    ok = repo.make_targets({"release/v1": target(b"1")}, key=dkey, role="targets/releases", version=1)
    r = post(client, GUN, {"targets/releases": ok, "snapshot": repo.make_snapshot(version=4)})
    assert r.status_code == 200, r.text
    bad = repo.make_targets({"other/v1": target(b"1")}, key=dkey, role="targets/releases", version=2)
    r = post(client, GUN, {"targets/releases": bad, "snapshot": repo.make_snapshot(version=5)})
    assert "outside the role's paths" in invalid(r, "ErrBadTargets")


def test_nested_delegation_paths_within_parent(client):
    repo, dkey = _with_delegation(client, paths=("release/",))
    ckey = PrivateKey.generate("ecdsa")
    bad = repo.make_targets(delegations=[("targets/releases/qa", ckey.public_key(), ["other/"])], key=dkey,
                       role="targets/releases", version=1)
    r = post(client, GUN, {"targets/releases": bad, "snapshot": repo.make_snapshot(version=4)})
    assert "not within the paths delegated to its parent" in invalid(r, "ErrBadTargets")
    good = repo.make_targets(delegations=[("targets/releases/qa", ckey.public_key(), ["release/qa/"])], key=dkey,
                        role="targets/releases", version=1)
    qa = repo.make_targets({"release/qa/x": target(b"x")}, key=ckey, role="targets/releases/qa", version=1)
    r = post(client, GUN, {"targets/releases/qa": qa, "targets/releases": good, "snapshot": repo.make_snapshot(version=4)})
    assert r.status_code == 200, r.text
    assert client.get(tuf(GUN, "targets/releases/qa.json")).content == qa


def test_delegation_not_direct_child(client):
    repo = publish_new(client)
    dkey = PrivateKey.generate("ecdsa")
    data = repo.make_targets(delegations=[("targets/a/b", dkey.public_key(), [""])], version=3)
    r = post(client, GUN, {"targets": data, "snapshot": repo.make_snapshot(version=3)})
    assert invalid(r, "ErrBadTargets") == "targets type metadata invalid: delegation role targets/a/b invalid"


def test_delegation_structure_is_checked_before_its_signatures(client):
    """notary loads a delegation's structure and version before its signatures (targets: after)."""
    repo, _ = _with_delegation(client)
    stranger = PrivateKey.generate("ecdsa")
    rel = repo.make_targets(key=stranger, role="targets/releases",
                       delegations=[("targets/other/x", stranger.public_key(), [""])], version=1)
    r = post(client, GUN, {"targets/releases": rel, "snapshot": repo.make_snapshot(version=4)})
    assert invalid(r, "ErrBadTargets") == "targets/releases type metadata invalid: delegation role targets/other/x invalid"
    bad = repo.make_targets(key=stranger, delegations=[("targets/other/x", stranger.public_key(), [""])], version=4)
    r = post(client, GUN, {"targets": bad, "snapshot": repo.make_snapshot(version=4)})
    assert invalid(r, "ErrBadTargets") == "valid signatures did not meet threshold for targets"


def test_delegation_key_missing(client):
    repo = publish_new(client)
    dkey = PrivateKey.generate("ecdsa")
    md = Metadata.parse(repo.make_targets(delegations=[("targets/releases", dkey.public_key(), [""])], version=3))
    value = md.signed_value
    value["delegations"]["keys"] = {}
    md2: Metadata[Targets] = Metadata(md.signed, [], value)
    md2.sign(repo.targets_key)
    data = md2.to_bytes()
    repo.docs["targets"] = data
    r = post(client, GUN, {"targets": data, "snapshot": repo.make_snapshot(version=3)})
    msg = invalid(r, "ErrBadTargets")
    assert "without corresponding key" in msg


def test_delegation_before_targets_exist(client):
    repo = new_repo(client)
    dkey = PrivateKey.generate("ecdsa")
    rel = repo.make_targets(key=dkey, role="targets/releases", version=1)
    r = post(client, GUN, {"root": repo.make_root(), "targets/releases": rel, "snapshot": repo.make_snapshot(version=2)})
    assert invalid(r, "ErrBadTargets") == "targets must be loaded first"


# -- snapshot -----------------------------------------------------------------------------


def test_snapshot_hash_mismatch(client):
    repo = publish_new(client)
    before = current(client)
    snap = repo.make_snapshot(version=3)  # made before the new targets: hashes the old targets
    data = repo.make_targets({"v2": target(b"two")}, version=3)
    r = post(client, GUN, {"targets": data, "snapshot": snap})
    expected = hashlib.sha256(before["targets"]).hexdigest()
    assert invalid(r, "ErrBadSnapshot") == f"sha256 checksum for targets did not match: expected {expected}"
    unchanged(client, GUN, before)


def test_snapshot_must_cover_stored_root(client):
    repo = publish_new(client)
    snap = repo.make_snapshot(roles={"root": b"not the root", "targets": repo.docs["targets"]}, version=3)
    r = post(client, GUN, {"snapshot": snap})
    assert "checksum for root did not match" in invalid(r, "ErrBadSnapshot")


def test_snapshot_missing_delegation_entry(client):
    repo, dkey = _with_delegation(client)
    rel = repo.make_targets(key=dkey, role="targets/releases", version=1)
    snap = repo.make_snapshot(roles={"root": repo.docs["root"], "targets": repo.docs["targets"]}, version=4)
    r = post(client, GUN, {"targets/releases": rel, "snapshot": snap})
    assert invalid(r, "ErrBadSnapshot") == "no checksums for supported algorithms were provided for targets/releases"


def test_snapshot_bad_signature(client):
    repo = publish_new(client)
    r = post(client, GUN, {"targets": repo.make_targets(version=3), "snapshot": repo.make_snapshot(key=repo.targets_key, version=3)})
    assert invalid(r, "ErrBadSnapshot") == "valid signatures did not meet threshold for snapshot"


def test_snapshot_expired(client):
    repo = publish_new(client)
    r = post(client, GUN, {"targets": repo.make_targets(version=3), "snapshot": repo.make_snapshot(expires=repo.now - timedelta(1), version=3)})
    assert invalid(r, "ErrBadSnapshot").startswith("snapshot expired at ")


def test_missing_snapshot_when_client_holds_key(client):
    repo = publish_new(client)
    r = post(client, GUN, {"targets": repo.make_targets(version=3)})
    assert r.status_code == 400
    assert r.content == (
        b'{"errors":[{"code":"INVALID_UPDATE","message":"Update sent by the client is invalid.","detail":'
        b'{"Name":"ErrBadHierarchy","Error":{"Missing":"snapshot","Msg":"no snapshot was included in update and '
        b'server does not hold current snapshot key for repository"}}}]}\n'
    )


def test_uploaded_timestamp_is_ignored(client):
    repo = publish_new(client)
    ts_before = client.get(tuf(GUN, "timestamp.json")).content
    r = post(client, GUN, {"targets": repo.make_targets(version=3), "snapshot": repo.make_snapshot(version=3), "timestamp": ts_before})
    assert r.status_code == 200, r.text
    assert client.get(tuf(GUN, "timestamp.json")).content != ts_before
    assert client.get(tuf(GUN, "2.timestamp.json")).status_code == 200


def test_snapshot_length_must_match_the_document(client):
    """Right checksums but a wrong length: the client would refuse the repository, so the server
    refuses to publish it (upstream checks checksums only)."""
    repo = publish_new(client)
    before = current(client)
    data = repo.make_targets({"v2": target(b"two")}, version=3)
    meta = {"root": FileMeta.from_bytes(repo.docs["root"]), "targets": FileMeta.from_bytes(data)}
    meta["targets"].length += 1
    md: Metadata[Snapshot] = Metadata(Snapshot(version=3, expires=repo.now + timedelta(days=30), meta=meta))
    assert repo.client_snapshot_key is not None
    md.sign(repo.client_snapshot_key)
    r = post(client, GUN, {"targets": data, "snapshot": md.to_bytes()})
    assert invalid(r, "ErrBadSnapshot") == f"targets: {len(data)} bytes, but the referencing metadata says {len(data) + 1}"
    unchanged(client, GUN, before)


# -- step 1: parts ------------------------------------------------------------------------


def _signed_with_custom(repo, depth: int) -> bytes:
    """targets v3 signed by the targets key, whose target ``t`` has a ``custom`` value nested so
    that the whole document nests ``depth`` levels (document, signed, targets, t, custom...)."""
    value = Metadata.parse(repo.make_targets({"t": target(b"x")}, version=3)).signed_value
    custom: object = 1
    for _ in range(depth - 4):
        custom = {"x": custom}
    value["targets"]["t"]["custom"] = custom
    signed = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()  # ASCII: canonical
    sig = {"keyid": repo.targets_key.keyid, "method": repo.targets_key.method,
           "sig": base64.b64encode(repo.targets_key.sign(signed)).decode()}
    data = b'{"signed":' + signed + b',"signatures":[' + json.dumps(sig, separators=(",", ":")).encode() + b"]}"
    assert json_depth(data) == depth
    repo.docs["targets"] = data
    return data


def test_nesting_bound_is_the_clients(client):
    """A signed targets document nesting 80 levels (deep ``custom``) is refused as MALFORMED_JSON,
    because its JSON is refused with the FormatError the client refuses it with; at the limit both
    accept it."""
    repo = publish_new(client)
    before = current(client)
    deep = _signed_with_custom(repo, 80)
    r = post(client, GUN, {"targets": deep, "snapshot": repo.make_snapshot(version=3)})
    assert (r.status_code, error(r)["code"]) == (400, "MALFORMED_JSON")
    unchanged(client, GUN, before)
    with pytest.raises(ServerError) as server_side:
        parse_parts([UploadPart("targets", deep)])
    assert type(server_side.value.__cause__) is FormatError
    with pytest.raises(FormatError) as client_side:
        Metadata.parse(deep, "targets")
    assert str(client_side.value) == str(server_side.value.__cause__) == f"JSON nesting deeper than {MAX_DEPTH} levels"
    loader = RepoLoader(GUN, repo.now)
    loader.load("root", repo.docs["root"])
    with pytest.raises(FormatError):
        loader.load("targets", deep)

    at_limit = _signed_with_custom(repo, MAX_DEPTH)
    r = post(client, GUN, {"targets": at_limit, "snapshot": repo.make_snapshot(version=3)})
    assert r.status_code == 200, r.text
    tc = TrustedCollection(GUN, client.get(tuf(GUN, "root.json")).content, repo.now)
    tc.update_timestamp(client.get(tuf(GUN, "timestamp.json")).content)
    tc.update_snapshot(client.get(tuf(GUN, "snapshot.json")).content)
    assert tc.update_targets(client.get(tuf(GUN, "targets.json")).content).raw == at_limit


def test_malformed_json_exact_body(client):
    publish_new(client)
    before = current(client)
    r = post(client, GUN, {"targets": b"notjson"})
    assert r.status_code == 400
    assert r.content == (
        b'{"errors":[{"code":"MALFORMED_JSON","message":"JSON sent by the client could not be parsed by the server"}]}\n'
    )
    for bad in (b'{"signed": 5, "signatures": []}', b'{"signed": {"version": "2"}}', b'[1]',
                b'{"signed": {"version": 1.5}}', b'{"signatures": [{"sig": "!!"}]}', b'{"a":1,"a":2}',
                b'{"signed": {"version": 99999999999}}', b'{"signed": {"expires": "tomorrow"}}'):
        r = post(client, GUN, {"targets": bad})
        assert error(r)["code"] == "MALFORMED_JSON", bad
    unchanged(client, GUN, before)


def test_invalid_role_exact_body(client):
    repo = publish_new(client)
    r = post(client, GUN, {"bogus": repo.docs["targets"]})
    assert r.content == (
        b'{"errors":[{"code":"INVALID_ROLE","message":"The role you are attempting to operate on is invalid.",'
        b'"detail":"bogus"}]}\n'
    )
    for name in ("targets/../root", "targets/", "targets/UPPER", "../root", "targets//a"):
        assert error(post(client, GUN, {name: repo.docs["targets"]}))["code"] == "INVALID_ROLE", name


def test_no_filename(client):
    body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"\r\n\r\n{}\r\n--b--\r\n")
    r = client.post(tuf(GUN, ""), content=body, headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.content == b'{"errors":[{"code":"NO_FILENAME","message":"No file/role name provided."}]}\n'


def test_not_multipart_exact_body(client):
    r = client.post(tuf(GUN, ""), content=b"{}", headers={"content-type": "application/json"})
    assert (r.status_code, r.content) == (
        400, b'{"errors":[{"code":"MALFORMED_UPLOAD","message":"The body of your request is malformed."}]}\n'
    )


def test_broken_multipart(client):
    repo = new_repo(client)
    body, ct = multipart({"root": repo.make_root()})
    for broken in (body[:-8], body.replace(b"\r\n\r\n", b"\r\n", 1), b"", b"garbage"):
        r = client.post(tuf(GUN, ""), content=broken, headers={"content-type": ct})
        assert error(r)["code"] == "MALFORMED_UPLOAD"
    r = client.post(tuf(GUN, ""), content=body, headers={"content-type": "multipart/form-data"})
    assert error(r)["code"] == "MALFORMED_UPLOAD"
