"""Key rotation and refresh as drafts (no server): what ``trust key rotate`` and ``trust refresh``
sign is checked with the core's own rules (root chain, signatures, versions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.simulator import RepositorySimulator
from trustbox.client.errors import InsufficientSignaturesError
from trustbox.client.trust.publish import RepoDraft
from trustbox.client.trust.refresh import due_roles
from trustbox.client.trust.rotation import RotationError, check_rotation
from trustbox.errors import RoleError
from trustbox.keystore.passphrase import constant_retriever
from trustbox.keystore.store import KeyStore
from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.metadata import Metadata, Targets
from trustbox.tuf.verify import TrustedCollection, valid_signers

NOW = datetime(2026, 11, 23, tzinfo=UTC)
GUN = "registry.example.test/ops/app"


def _setup(tmp_path: Path, *, local_snapshot: bool = False) -> tuple[RepositorySimulator, TrustedCollection, KeyStore]:
    repo = RepositorySimulator(GUN, NOW)
    repo.add_target("v1", b"manifest v1")
    repo.delegate("targets/releases")
    repo.add_target("v1", b"manifest v1", role="targets/releases")
    docs = repo.publish()
    tc = TrustedCollection(GUN, docs["root"], NOW, tofu=True)
    tc.update_timestamp(docs["timestamp"])
    tc.update_snapshot(docs["snapshot"])
    tc.update_targets(docs["targets"])
    tc.update_delegation("targets/releases", docs["targets/releases"])
    store = KeyStore(tmp_path, constant_retriever("pass"))
    store.add_key(repo.root_keys[0][0], "root")
    store.add_key(repo.keys["targets"], "targets", GUN)
    store.add_key(repo.delegation_keys["targets/releases"], "targets/releases", GUN)
    if local_snapshot:
        store.add_key(repo.keys["snapshot"], "snapshot", GUN)
    return repo, tc, store


def _parts(draft: RepoDraft) -> dict[str, bytes]:
    return dict(draft.sign())


def test_root_rotation_is_cross_signed_and_followed_by_the_core(tmp_path: Path) -> None:
    repo, tc, store = _setup(tmp_path)
    draft = RepoDraft.from_collection(tc, store, NOW)
    new_key = store.generate_key("root")
    cert = make_root_public_key(new_key, GUN, NOW)
    draft.replace_base_keys("root", [cert])
    parts = _parts(draft)
    assert set(parts) == {"root"}  # the server makes snapshot and timestamp
    old_cert = repo.root_keys[0][1]
    root = Metadata.parse(parts["root"], "root")
    assert root.signed.version == 2 and root.signed.roles["root"].keyids == [cert.keyid]
    assert old_cert.keyid in root.signed.keys  # kept, as notary does
    assert {s.keyid for s in root.signatures} == {old_cert.keyid, cert.keyid}
    follower = TrustedCollection(GUN, tc.root.to_bytes(), NOW)
    follower.update_root(parts["root"])  # the rotation rule: old threshold of old keys, and its own


def test_root_rotation_without_the_old_key_is_refused(tmp_path: Path) -> None:
    _repo, tc, store = _setup(tmp_path)
    draft = RepoDraft.from_collection(tc, KeyStore(tmp_path / "other", constant_retriever("pass")), NOW)
    new_key = draft.keystore.generate_key("root")
    draft.replace_base_keys("root", [make_root_public_key(new_key, GUN, NOW)])
    with pytest.raises(InsufficientSignaturesError, match="keys of the trusted root"):
        draft.sign()


def test_targets_rotation_resigns_targets(tmp_path: Path) -> None:
    repo, tc, store = _setup(tmp_path)
    draft = RepoDraft.from_collection(tc, store, NOW)
    new = store.generate_key("targets", GUN)
    draft.replace_base_keys("targets", [new.public_key()])
    parts = _parts(draft)
    assert set(parts) == {"root", "targets"}
    root = Metadata.parse(parts["root"], "root")
    assert repo.keys["targets"].keyid not in root.signed.keys  # the old key left root
    targets = Metadata.parse(parts["targets"], "targets")
    assert targets.signed.version == tc.targets.signed.version + 1
    assert targets.signed.targets == tc.targets.signed.targets
    assert valid_signers(targets, {new.keyid: new.public_key()}) == [new.keyid]


def test_local_snapshot_rotation_signs_snapshot(tmp_path: Path) -> None:
    _repo, tc, store = _setup(tmp_path)
    draft = RepoDraft.from_collection(tc, store, NOW)
    new = store.generate_key("snapshot", GUN)
    draft.replace_base_keys("snapshot", [new.public_key()])
    parts = _parts(draft)
    assert set(parts) == {"root", "snapshot"}
    snap = Metadata.parse(parts["snapshot"], "snapshot")
    assert valid_signers(snap, {new.keyid: new.public_key()}) == [new.keyid]
    assert snap.signed.meta["root"].matches(parts["root"])


def test_refresh_touch_keeps_content(tmp_path: Path) -> None:
    _repo, tc, store = _setup(tmp_path)
    draft = RepoDraft.from_collection(tc, store, NOW + timedelta(days=1000))
    draft.touch_root()
    draft.touch("targets/releases")
    parts = _parts(draft)
    assert set(parts) == {"root", "targets/releases"}
    root = Metadata.parse(parts["root"], "root")
    assert root.signed.version == 2 and root.signed.keys == tc.root.signed.keys
    assert root.signed.expires == NOW + timedelta(days=1000) + timedelta(days=3650)
    rel: Metadata[Targets] = Metadata.parse(parts["targets/releases"], "targets/releases")
    old = tc.delegations["targets/releases"].metadata.signed
    assert rel.signed.version == old.version + 1 and rel.signed.targets == old.targets
    assert rel.signed.expires == NOW + timedelta(days=1000) + timedelta(days=1095)
    with pytest.raises(RoleError):
        draft.touch("targets/nobody")


def test_due_roles(tmp_path: Path) -> None:
    _repo, tc, _store = _setup(tmp_path)
    assert due_roles(tc, timedelta(days=10)) == []
    assert due_roles(tc, timedelta(days=20)) == ["timestamp"]
    assert due_roles(tc, timedelta(days=1100)) == ["targets", "targets/releases", "snapshot", "timestamp"]


@pytest.mark.parametrize(("role", "server", "text"), [
    ("targets", True, "notary does not permit the server managing the targets key"),
    ("root", True, "notary does not permit the server managing the root key"),
    ("timestamp", False, "notary does not permit the client managing the timestamp key"),
    ("targets/releases", False, "notary does not currently permit rotating the targets/releases key"),
])
def test_rotation_input(role: str, server: bool, text: str) -> None:
    with pytest.raises(RotationError, match=f"^{text}$"):
        check_rotation(role, server)
    for ok in (("root", False), ("targets", False), ("snapshot", False), ("snapshot", True), ("timestamp", True)):
        check_rotation(*ok)
