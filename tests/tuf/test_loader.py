"""RepoLoader (notary's RepositorySimulator.Load) and the client's TrustedCollection apply one rulebook.

Every attack below goes through the client state machine and through the loader in the client's
order (root, timestamp, snapshot, targets, delegations) and in the trust server's order (root,
targets, delegations, then the snapshot that checks them); all three refuse it with the same
error class.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.helpers.legacy_certs import sha1_certificate_key
from tests.helpers.simulator import RepositorySimulator
from trustbox.errors import (
    FormatError,
    HashMismatchError,
    LengthError,
    RootError,
    ThresholdError,
    TrustboxError,
)
from trustbox.tuf.certs import SHA1_SIGNED, CertificateError
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.loader import LoaderInputError, RepoLoader
from trustbox.tuf.metadata import FileMeta, Metadata, RoleKeys, Root, Snapshot
from trustbox.tuf.verify import (
    ChecksumMismatchError,
    InvalidDelegationError,
    InvalidMetadataError,
    KeyIDMismatchError,
    NoSignaturesError,
    PreviousRootCertificatesError,
    RoleExpiredError,
    RootCertificatesError,
    RootRotationError,
    RootSignaturesError,
    TrustedCollection,
    VersionTooLowError,
)

NOW = datetime(2026, 11, 23, tzinfo=UTC)
GUN = "registry.example.test/team/app"
Docs = dict[str, bytes]


def fresh() -> RepositorySimulator:
    """A repository with one target and one delegation holding another."""
    r = RepositorySimulator(GUN, NOW)
    r.add_target("v1", b"image manifest v1")
    r.delegate("targets/releases")
    r.add_target("v2", b"image manifest v2", role="targets/releases")
    return r


@pytest.fixture
def repo() -> RepositorySimulator:
    return fresh()


def delegations_of(docs: Docs) -> list[str]:
    return sorted((r for r in docs if r.startswith("targets/")), key=lambda r: (r.count("/"), r))


def through_client(docs: Docs) -> None:
    tc = TrustedCollection(GUN, docs["root"], NOW, tofu=True)
    tc.update_timestamp(docs["timestamp"])
    tc.update_snapshot(docs["snapshot"])
    tc.update_targets(docs["targets"])
    queue = tc.delegated_roles("targets")
    while queue:
        role = queue.pop(0)
        tc.update_delegation(role, docs[role])
        queue.extend(tc.delegated_roles(role))


def through_loader(docs: Docs) -> RepoLoader:
    loader = RepoLoader(GUN, NOW)
    for role in ["root", "timestamp", "snapshot", "targets", *delegations_of(docs)]:
        loader.load(role, docs[role])
    return loader


def through_server_order(docs: Docs) -> RepoLoader:
    loader = RepoLoader(GUN, NOW)
    for role in ["root", "targets", *delegations_of(docs), "snapshot"]:
        loader.load(role, docs[role])
    return loader


SEQUENCERS = [through_client, through_loader, through_server_order]


def resnapshot(r: RepositorySimulator, docs: Docs) -> Docs:
    """New snapshot and timestamp over ``docs`` as they are now."""
    docs["snapshot"] = r.snapshot_doc({k: v for k, v in docs.items() if k not in ("snapshot", "timestamp")})
    docs["timestamp"] = r.timestamp_doc(docs["snapshot"])
    return docs


def unsigned(data: bytes) -> bytes:
    d = json.loads(data)
    d["signatures"] = []
    return json.dumps(d).encode()


def snapshot_with(r: RepositorySimulator, docs: Docs, edit: Callable[[dict[str, FileMeta]], None]) -> Docs:
    meta = {k: FileMeta.from_bytes(v) for k, v in docs.items() if k not in ("snapshot", "timestamp")}
    edit(meta)
    md: Metadata[Snapshot] = Metadata(Snapshot(r.versions["snapshot"], NOW.replace(year=2029), meta=meta))
    md.sign(r.keys["snapshot"])
    docs["snapshot"] = md.to_bytes()
    docs["timestamp"] = r.timestamp_doc(docs["snapshot"])
    return docs


def _targets_by_stranger(r: RepositorySimulator) -> Docs:
    docs = r.publish()
    docs["targets"] = r.targets_doc(key=PrivateKey.generate("ecdsa"))
    return resnapshot(r, docs)


def _targets_unsigned(r: RepositorySimulator) -> Docs:
    docs = r.publish()
    docs["targets"] = unsigned(docs["targets"])
    return resnapshot(r, docs)


def _targets_expired(r: RepositorySimulator) -> Docs:
    docs = r.publish()
    docs["targets"] = r.targets_doc(expired=True)
    return resnapshot(r, docs)


def _delegation_by_parent_key(r: RepositorySimulator) -> Docs:
    docs = r.publish()
    docs["targets/releases"] = r.targets_doc("targets/releases", key=r.keys["targets"])
    return resnapshot(r, docs)


def _delegation_key_is_sha1_certificate(r: RepositorySimulator) -> Docs:
    key = PrivateKey.generate("ecdsa")
    r.delegate("targets/qa", key=key, pub=sha1_certificate_key(key, "qa signer", NOW))
    return r.publish()


def _delegation_not_a_direct_child(r: RepositorySimulator) -> Docs:
    r.delegate("targets/releases/qa", parent="targets")
    return r.publish()


def _snapshot_without_root(r: RepositorySimulator) -> Docs:
    return snapshot_with(r, r.publish(), lambda meta: meta.pop("root"))


def _targets_from_another_snapshot(r: RepositorySimulator) -> Docs:
    old = r.publish()
    r.versions["targets"] += 1
    r.add_target("v9", b"new")
    return dict(r.publish(), targets=old["targets"])


def _snapshot_lies_about_a_length(r: RepositorySimulator) -> Docs:
    def longer(meta: dict[str, FileMeta]) -> None:
        meta["targets/releases"].length += 1

    return snapshot_with(r, r.publish(), longer)


def _targets_key_listed_under_another_id(r: RepositorySimulator) -> Docs:
    wrong = "ab" * 32
    body = Metadata.parse(r.root_doc(), "root", expect=Root).signed
    body.keys[wrong] = body.keys.pop(body.roles["targets"].keyids[0])
    body.roles["targets"] = RoleKeys([wrong])
    root: Metadata[Root] = Metadata(body)
    for key, pub in r.root_keys:
        root.sign(key, pub.keyid)
    docs = dict(r.publish(), root=root.to_bytes())
    targets = Metadata.parse(docs["targets"])
    targets.signatures = []
    targets.sign(r.keys["targets"], wrong)
    docs["targets"] = targets.to_bytes()
    return resnapshot(r, docs)


ATTACKS: list[tuple[Callable[[RepositorySimulator], Docs], type[TrustboxError]]] = [
    (_targets_by_stranger, ThresholdError),
    (_targets_unsigned, NoSignaturesError),
    (_targets_expired, RoleExpiredError),
    (_delegation_by_parent_key, ThresholdError),
    (_delegation_key_is_sha1_certificate, CertificateError),
    (_delegation_not_a_direct_child, InvalidMetadataError),
    (_snapshot_without_root, InvalidMetadataError),
    (_targets_from_another_snapshot, ChecksumMismatchError),
    (_snapshot_lies_about_a_length, LengthError),
    (_targets_key_listed_under_another_id, KeyIDMismatchError),
]


@pytest.mark.parametrize("sequencer", SEQUENCERS, ids=lambda f: f.__name__)
def test_a_published_repository_loads(repo: RepositorySimulator, sequencer: Callable[[Docs], object]) -> None:
    docs = repo.publish()
    loaded = sequencer(docs)
    if isinstance(loaded, RepoLoader):
        # the server's order leaves only the snapshot for a timestamp to check
        assert set(loaded.unchecked) == ({"snapshot"} if sequencer is through_server_order else set())
        assert loaded.paths == {"targets": [""], "targets/releases": [""]}


@pytest.mark.parametrize(("attack", "error"), ATTACKS, ids=lambda a: getattr(a, "__name__", ""))
def test_client_and_loader_refuse_alike(attack: Callable[[RepositorySimulator], Docs], error: type[TrustboxError]) -> None:
    docs = attack(fresh())
    for sequencer in SEQUENCERS:
        with pytest.raises(TrustboxError) as info:
            sequencer(docs)
        assert type(info.value) is error, (sequencer.__name__, info.value)


def test_typed_errors_carry_what_they_found(repo: RepositorySimulator) -> None:
    docs = _targets_from_another_snapshot(repo)
    with pytest.raises(ChecksumMismatchError) as info:
        through_server_order(docs)
    assert (info.value.role, info.value.algorithm) == ("targets", "sha256")
    assert info.value.expected == Metadata.parse(docs["snapshot"]).signed.meta["targets"].hashes["sha256"]
    with pytest.raises(RoleExpiredError) as expired:
        through_loader(_targets_expired(fresh()))
    assert expired.value.role == "targets" and expired.value.expires < NOW
    with pytest.raises(CertificateError) as cert:
        through_loader(_delegation_key_is_sha1_certificate(fresh()))
    assert (cert.value.problem, cert.value.cn) == (SHA1_SIGNED, "qa signer")


def test_rollback_floor_is_the_minimum_version(repo: RepositorySimulator) -> None:
    docs = repo.publish()
    tc = TrustedCollection(GUN, docs["root"], NOW, floor_versions={"targets": 5})
    tc.update_timestamp(docs["timestamp"])
    tc.update_snapshot(docs["snapshot"])
    with pytest.raises(VersionTooLowError, match="targets version 1 is lower than the trusted version 5"):
        tc.update_targets(docs["targets"])
    loader = RepoLoader(GUN, NOW)
    loader.load("root", docs["root"])
    with pytest.raises(VersionTooLowError) as info:
        loader.load("targets", docs["targets"], 5)
    assert (info.value.version, info.value.minimum) == (1, 5)


# -- loader bookkeeping ------------------------------------------------------------------------------


def test_loading_out_of_order_is_an_input_error(repo: RepositorySimulator) -> None:
    docs = repo.publish()
    loader = RepoLoader(GUN, NOW)
    for role, message in (("targets", "root must be loaded first"), ("bogus", "bogus is an invalid role")):
        with pytest.raises(LoaderInputError, match=message):
            loader.load(role, docs.get(role, b"{}"))
    loader.load("root", docs["root"])
    with pytest.raises(LoaderInputError, match="targets must be loaded first"):
        loader.load("targets/releases", docs["targets/releases"])
    with pytest.raises(LoaderInputError, match="root has already been loaded"):
        loader.load("root", docs["root"])
    loader.load("targets", docs["targets"])
    with pytest.raises(InvalidDelegationError, match="tuf: invalid role targets/other. delegation does not exist"):
        loader.load("targets/other", docs["targets/releases"])


def test_checksums_wait_for_the_document_that_holds_them(repo: RepositorySimulator) -> None:
    docs = repo.publish()
    loader = RepoLoader(GUN, NOW)
    for role in ("root", "targets", "targets/releases", "snapshot"):
        loader.load(role, docs[role])
    assert set(loader.unchecked) == {"snapshot"}  # the timestamp is not loaded yet
    loader.load("timestamp", docs["timestamp"])
    assert loader.unchecked == {}
    stale = RepoLoader(GUN, NOW)
    stale.load("root", docs["root"])
    stale.load("snapshot", docs["snapshot"])
    with pytest.raises(ChecksumMismatchError):
        stale.load("timestamp", repo.timestamp_doc(docs["snapshot"] + b" "))
    assert not stale.is_loaded("timestamp") and stale.loaded_version("timestamp") == 1


def test_a_trusted_root_is_not_checked_again(repo: RepositorySimulator) -> None:
    """The server's stored root (checked when stored) starts a loader as is, and a new root
    loaded after bootstrap must chain from it."""
    root = Metadata.parse(repo.root_doc(), "root", expect=Root)
    loader = RepoLoader.with_root(GUN, NOW.replace(year=2040), root)  # long after its certificate expired
    assert loader.loaded_version("root") == 1 and loader.unchecked == {"root": root.to_bytes()}
    with pytest.raises(RootCertificatesError):
        loader.bootstrap().load("root", repo.root_doc())


def test_paths_outside_the_delegation_are_refused_by_the_loader_and_ignored_by_the_client() -> None:
    r = RepositorySimulator(GUN, NOW)
    r.delegate("targets/releases", paths=["stable/"])
    r.add_target("stable/v1", b"a", role="targets/releases")
    r.add_target("evil", b"b", role="targets/releases")
    docs = r.publish()
    loader = through_loader(docs)
    loader.check_paths("targets")
    with pytest.raises(InvalidMetadataError, match="target 'evil' is outside the role's paths"):
        loader.check_paths("targets/releases")
    tc = TrustedCollection(GUN, docs["root"], NOW)
    tc.update_timestamp(docs["timestamp"])
    tc.update_snapshot(docs["snapshot"])
    tc.update_targets(docs["targets"])
    tc.update_delegation("targets/releases", docs["targets/releases"])
    assert tc.find_target("evil", ["targets/releases"]) is None


# -- roots -----------------------------------------------------------------------------------------


def rotate(r: RepositorySimulator, signers: list[int]) -> bytes:
    """Root version 2 with one new root key; signed by the listed root keys (indexes, -1 = new)."""
    old = list(r.root_keys)
    new = r.add_root_key()
    r.root_keys = [new]
    r.root_version = 2
    return r.root_doc(signers=[(old + [new])[i] for i in signers])


def through_both(trusted: bytes, new: bytes, trusted_as_is: bool = False) -> list[type[TrustboxError]]:
    """The error classes of the client's update_root and of a bootstrapped loader."""
    errors: list[type[TrustboxError]] = []
    old = Metadata.parse(trusted, "root", expect=Root)
    tc = TrustedCollection.__new__(TrustedCollection) if trusted_as_is else TrustedCollection(GUN, trusted, NOW)
    if trusted_as_is:  # a trusted root the client could not have accepted itself
        tc.gun, tc.now, tc.floor, tc.root = GUN, NOW, {}, old
    for step in (lambda: tc.update_root(new),
                 lambda: RepoLoader.with_root(GUN, NOW, old).bootstrap().load("root", new, 2)):
        with pytest.raises(TrustboxError) as info:
            step()
        errors.append(type(info.value))
    return errors


def test_rotation_does_not_count_an_old_sha1_certificate() -> None:
    """The trusted root lists a good certificate and a SHA-1 one; a new root signed by the SHA-1
    one (and its own key) does not chain, for the client and the loader alike."""
    r = RepositorySimulator(GUN, NOW)
    legacy_key = PrivateKey.generate("ecdsa")
    r.root_keys.append((legacy_key, sha1_certificate_key(legacy_key, GUN, NOW)))
    trusted = r.root_doc(signers=r.root_keys[:1])
    TrustedCollection(GUN, trusted, NOW, tofu=True)  # the SHA-1 certificate is simply not usable
    assert through_both(trusted, rotate(r, [1, -1])) == [RootRotationError, RootRotationError]


def test_rotation_from_a_root_without_usable_certificates() -> None:
    r = RepositorySimulator(GUN, NOW)
    legacy_key = PrivateKey.generate("ecdsa")
    r.root_keys = [(legacy_key, sha1_certificate_key(legacy_key, GUN, NOW))]
    trusted = r.root_doc()
    with pytest.raises(RootCertificatesError):
        TrustedCollection(GUN, trusted, NOW, tofu=True)
    errors = through_both(trusted, rotate(r, [0, -1]), trusted_as_is=True)
    assert errors == [PreviousRootCertificatesError, PreviousRootCertificatesError]


def test_new_root_certificates_are_checked_before_the_rotation() -> None:
    """A root for another GUN, not signed by the trusted root either: notary reports the
    certificates (checked first), not the rotation."""
    r = RepositorySimulator(GUN, NOW)
    trusted = r.root_doc()
    other = RepositorySimulator("registry.example.test/team/other", NOW)
    other.root_version = 2
    assert through_both(trusted, other.root_doc()) == [RootCertificatesError, RootCertificatesError]


def test_rotated_root_must_sign_itself() -> None:
    r = RepositorySimulator(GUN, NOW)
    trusted = r.root_doc()
    errors = through_both(trusted, rotate(r, [0]))
    assert errors == [RootSignaturesError, RootSignaturesError]
    assert issubclass(RootSignaturesError, RootError) and issubclass(RootSignaturesError, ThresholdError)


def test_loader_root_rules_are_the_clients(repo: RepositorySimulator) -> None:
    docs = repo.publish()
    RepoLoader(GUN, NOW).load("root", docs["root"])
    with pytest.raises(RootCertificatesError, match="not for"):
        RepoLoader("registry.example.test/team/other", NOW).load("root", docs["root"])
    with pytest.raises(FormatError):
        RepoLoader(GUN, NOW).load("root", docs["targets"])
    with pytest.raises(HashMismatchError):
        loader = RepoLoader(GUN, NOW)
        loader.load("root", docs["root"])
        loader.load("targets", docs["targets"])
        loader.load("snapshot", repo.snapshot_doc({"root": docs["root"] + b" ", "targets": docs["targets"]}))
