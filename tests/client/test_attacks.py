"""Attacks a malicious or compromised trust server (or network) could try, each refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from tests.client.fakeserver import FakeNotary
from tests.helpers.simulator import GUN, RepositorySimulator, target_meta
from trustbox.client.errors import BadResponseError, NoSuchTargetError
from trustbox.client.images.distribution import check_manifest, lookup_manifest
from trustbox.client.pinning import TrustPinning
from trustbox.errors import (
    ExpiredError,
    HashMismatchError,
    LengthError,
    RollbackError,
    RootError,
    ThresholdError,
)
from trustbox.oci.reference import parse_reference
from trustbox.tuf.keys import ECDSA, ED25519, PrivateKey
from trustbox.tuf.metadata import FileMeta

from .conftest import SERVER


def _names(fake: FakeNotary) -> list[str]:
    return [p.rsplit("/_trust/tuf/", 1)[-1] for _, p in fake.requests]


def test_baseline_update_verifies(repo: RepositorySimulator, make_client) -> None:
    client = make_client()
    t = client.get_signed_target("v1")
    assert (t.role, t.sha256_hex, t.length) == ("targets/releases", "01" * 32, 401)


# --- rollback ------------------------------------------------------------------------------------


def test_timestamp_rollback_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    old_ts = repo.docs["timestamp"]
    repo.make_timestamp()
    repo.serve(fake)
    make_client().update()  # trusts timestamp v2
    fake.repo(GUN).current["timestamp"] = old_ts
    with pytest.raises(RollbackError, match="timestamp version 1 is lower than the trusted version 2"):
        make_client().update()


def test_snapshot_rollback_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    old_snapshot = repo.docs["snapshot"]
    repo.refresh()  # snapshot v2, timestamp v2
    repo.serve(fake)
    make_client().update()
    repo.make_timestamp(snapshot=old_snapshot)  # a fresh timestamp pointing at snapshot v1
    repo.serve(fake)
    with pytest.raises(RollbackError, match="snapshot version 1 is lower than the trusted version 2"):
        make_client().update()


def test_targets_rollback_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    old_targets = repo.docs["targets"]
    repo.make_targets(releases=True, targets={"new": target_meta(2)})
    repo.refresh()
    repo.serve(fake)
    make_client().update()
    repo.docs["targets"] = old_targets
    repo.refresh()
    repo.serve(fake)
    with pytest.raises(RollbackError, match="targets version 1 is lower than the trusted version 2"):
        make_client().update()


def test_delegation_rollback_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    old_releases = repo.docs["targets/releases"]
    repo.make_releases({"v1": target_meta(1), "v2": target_meta(2)})
    repo.refresh()
    repo.serve(fake)
    assert make_client().get_signed_target("v2").sha256_hex == "02" * 32
    repo.docs["targets/releases"] = old_releases
    repo.refresh()
    repo.serve(fake)
    with pytest.raises(RollbackError, match="targets/releases version 1 is lower than the trusted version 2"):
        make_client().update()


def test_root_rollback_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    root_v1 = repo.docs["root"]
    old_ts_key = repo.timestamp_key
    repo.timestamp_key = PrivateKey.generate(ED25519)
    repo.make_root()  # root v2 rotates the timestamp key (signed by the same root key)
    repo.refresh()
    repo.serve(fake)
    client = make_client()
    client.update()
    assert client.collection.root.signed.version == 2
    # attacker: old root and a timestamp signed by the old timestamp key
    fake.repo(GUN).current["root"] = root_v1
    repo.timestamp_key = old_ts_key
    repo.make_timestamp()
    repo.serve(fake)
    fake.repo(GUN).current["root"] = root_v1
    with pytest.raises(RollbackError, match="root version 1 is lower than the trusted version 2"):
        make_client().update()


def test_root_rotation_is_followed_version_by_version(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    make_client().update()
    new_root_key = PrivateKey.generate(ECDSA)
    old_key, old_cert = repo.root_keys[0]
    from trustbox.tuf.certs import make_root_public_key

    new_cert = make_root_public_key(new_root_key, GUN, repo.now - timedelta(days=1))
    repo.root_keys = [(new_root_key, new_cert)]
    # v2: new root key, signed by old and new (rotation rule)
    repo.make_root(signers=[(old_key, old_cert), (new_root_key, new_cert)])
    repo.timestamp_key = PrivateKey.generate(ED25519)
    repo.make_root(signers=[(new_root_key, new_cert)])  # v3: new timestamp key
    repo.refresh()
    repo.serve(fake)
    fake.requests.clear()
    client = make_client()
    client.update()
    assert client.collection.root.signed.version == 3
    assert "2.root.json" in _names(fake)


def test_root_rotation_not_signed_by_old_root_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    make_client().update()
    intruder = PrivateKey.generate(ECDSA)
    from trustbox.tuf.certs import make_root_public_key

    cert = make_root_public_key(intruder, GUN, repo.now - timedelta(days=1))
    repo.root_keys = [(intruder, cert)]
    repo.timestamp_key = PrivateKey.generate(ED25519)
    repo.make_root()  # v2 signed only by the intruder
    repo.refresh()
    repo.serve(fake)
    with pytest.raises(RootError, match="not signed by the previously trusted root keys"):
        make_client().update()


# --- freeze ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["timestamp", "snapshot", "targets"])
def test_expired_metadata_refused(role: str, fake: FakeNotary, make_client) -> None:
    repo = RepositorySimulator()
    repo.make_root()
    repo.make_targets(releases=True, targets={}, expires=timedelta(days=-1) if role == "targets" else timedelta(days=1095))
    repo.make_releases({"v1": target_meta(1)})
    repo.make_snapshot(expires=timedelta(days=-1) if role == "snapshot" else timedelta(days=1095))
    repo.make_timestamp(expires=timedelta(days=-1) if role == "timestamp" else timedelta(days=14))
    repo.serve(fake)
    with pytest.raises(ExpiredError, match=f"{role} expired at"):
        make_client().update()


def test_frozen_timestamp_after_time_passes(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    make_client().update()
    with pytest.raises(ExpiredError, match="timestamp expired"):
        make_client(now=repo.now + timedelta(days=15)).update()


def test_unreachable_server_falls_back_to_cache_but_not_past_expiry(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    make_client().update()
    fake.overrides[(GUN, "timestamp.json")] = lambda req: (_ for _ in ()).throw(httpx.ConnectError("down"))
    assert make_client().get_signed_target("v1").length == 401  # cached, still fresh
    with pytest.raises(ExpiredError):
        make_client(now=repo.now + timedelta(days=15)).update()


def test_expired_delegation_is_skipped_and_reported(fake: FakeNotary, make_client) -> None:
    repo = RepositorySimulator()
    repo.make_root()
    repo.make_targets(releases=True, targets={})
    repo.make_releases({"v1": target_meta(1)}, expires=timedelta(days=-1))
    repo.refresh()
    repo.serve(fake)
    with pytest.raises(ExpiredError, match="targets/releases expired"):
        make_client().get_signed_target("v1")


# --- mix and match -------------------------------------------------------------------------------


def test_snapshot_not_matching_timestamp_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    genuine = repo.docs["snapshot"]
    repo.make_snapshot()  # a validly signed snapshot the timestamp does not reference
    other = repo.docs["snapshot"]
    repo.docs["snapshot"] = genuine
    repo.serve(fake)
    import hashlib

    fake.overrides[(GUN, f"snapshot.{hashlib.sha256(genuine).hexdigest()}.json")] = other
    with pytest.raises((HashMismatchError, LengthError)):
        make_client().update()


def test_targets_not_matching_snapshot_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    import hashlib

    genuine = repo.docs["targets"]
    other = repo.make_targets(releases=True, targets={"evil": target_meta(9)})  # signed with the real key, but not in the snapshot
    repo.docs["targets"] = genuine
    fake.overrides[(GUN, f"targets.{hashlib.sha256(genuine).hexdigest()}.json")] = other
    with pytest.raises((HashMismatchError, LengthError), match="targets"):
        make_client().update()


def test_delegation_not_matching_snapshot_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    import hashlib

    genuine = repo.docs["targets/releases"]
    other = repo.make_releases({"v1": target_meta(7)})
    fake.overrides[(GUN, f"targets/releases.{hashlib.sha256(genuine).hexdigest()}.json")] = other
    with pytest.raises((HashMismatchError, LengthError), match="targets/releases"):
        make_client().update()


# --- endless data ----------------------------------------------------------------------------------


class _Endless:
    """A response body that never ends; counts what was pulled."""

    def __init__(self, prefix: bytes = b'{"signed":') -> None:
        self.pulled = 0
        self.prefix = prefix

    def __iter__(self) -> Iterator[bytes]:
        yield self.prefix
        while True:
            self.pulled += 65536
            if self.pulled > 1 << 30:
                raise AssertionError("client kept reading past any sane limit")
            yield b" " * 65536


def test_endless_timestamp_download_is_cut_at_1mib(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    bodies: list[_Endless] = []

    def serve(req: httpx.Request) -> httpx.Response:
        bodies.append(_Endless())
        return httpx.Response(200, content=iter(bodies[-1]))

    fake.overrides[(GUN, "timestamp.json")] = serve
    with pytest.raises(BadResponseError, match="trust server returned a bad response"):
        make_client().update()
    assert bodies and all(1 << 20 <= b.pulled <= (1 << 20) + 2 * 65536 for b in bodies)


def test_oversized_snapshot_is_cut_at_its_length(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    import hashlib

    bodies: list[_Endless] = []

    def serve(req: httpx.Request) -> httpx.Response:
        bodies.append(_Endless())
        return httpx.Response(200, content=iter(bodies[-1]))

    name = f"snapshot.{hashlib.sha256(repo.docs['snapshot']).hexdigest()}.json"
    fake.overrides[(GUN, name)] = serve
    with pytest.raises(BadResponseError):
        make_client().update()
    assert bodies and all(b.pulled <= len(repo.docs["snapshot"]) + 2 * 65536 for b in bodies)


def test_announced_oversize_refused_before_reading(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    fake.overrides[(GUN, "timestamp.json")] = lambda req: httpx.Response(
        200, headers={"Content-Length": str(50 << 20)}, content=b"x" * 10
    )
    with pytest.raises(BadResponseError):
        make_client().update()


# --- wrong root / pinning / threshold -----------------------------------------------------------------


def test_recreated_repository_with_unrelated_root_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    make_client().update()  # root pinned on first use
    fake.repos.clear()
    RepositorySimulator().initial().serve(fake)  # same GUN, all-new keys, root v1 again
    with pytest.raises(RootError, match="differs from the trusted root"):
        make_client().update()


def test_recreated_repository_with_higher_root_version_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    make_client().update()
    fake.repos.clear()
    other = RepositorySimulator()
    other.make_root()
    other.initial().serve(fake)  # root v2 not signed by the pinned root
    with pytest.raises(RootError):
        make_client().update()


def test_root_for_another_gun_refused_on_first_use(fake: FakeNotary, make_client) -> None:
    RepositorySimulator(gun="registry.example.test/other").initial().serve(fake)
    fake.repos[GUN] = fake.repos.pop("registry.example.test/other")
    with pytest.raises(RootError, match="not for"):
        make_client().update()


def test_trust_pinning_cert_ids(repo: RepositorySimulator, make_client) -> None:
    with pytest.raises(RootError, match="pinned certificates"):
        make_client(pinning=TrustPinning(certs={GUN: ["00" * 32]})).update()
    make_client(pinning=TrustPinning(certs={GUN: [repo.certs[0].keyid]})).update()


def test_trust_pinning_ca_and_disable_tofu(repo: RepositorySimulator, make_client, tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.helpers.certs import make_ca

    ca, _ = make_ca()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(RootError, match="pinned CA"):
        make_client(pinning=TrustPinning(ca={"registry.example.test/": ca_file})).update()
    with pytest.raises(RootError, match="trust on first use is disabled"):
        make_client(pinning=TrustPinning(disable_tofu=True)).update()


def test_targets_below_threshold_refused(fake: FakeNotary, make_client) -> None:
    repo = RepositorySimulator(targets_keys=[PrivateKey.generate(ECDSA), PrivateKey.generate(ECDSA)], targets_threshold=2)
    repo.make_root()
    repo.make_targets(releases=True, targets={}, signers=repo.targets_keys[:1])
    repo.make_releases({"v1": target_meta(1)})
    repo.refresh()
    repo.serve(fake)
    with pytest.raises(ThresholdError, match="valid signatures did not meet threshold for targets"):
        make_client().update()


def test_timestamp_signed_by_unknown_key_refused(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    repo.make_timestamp(key=PrivateKey.generate(ED25519))
    repo.serve(fake)
    with pytest.raises(ThresholdError, match="threshold for timestamp"):
        make_client().update()


def test_delegation_below_threshold_is_not_trusted(fake: FakeNotary, make_client) -> None:
    repo = RepositorySimulator()
    repo.make_root()
    repo.make_targets(releases=True, targets={})
    real = repo.releases_key
    repo.releases_key = PrivateKey.generate(ECDSA)
    repo.make_releases({"v1": target_meta(1)})  # signed by a key targets does not delegate to
    repo.releases_key = real
    repo.refresh()
    repo.serve(fake)
    with pytest.raises(ThresholdError):
        make_client().get_signed_target("v1")


def test_tag_only_in_other_delegation_is_not_released(repo: RepositorySimulator, make_client) -> None:
    with pytest.raises(NoSuchTargetError, match="No valid trust data for v9"):
        make_client().get_signed_target("v9")


# --- manifest vs trusted target ------------------------------------------------------------------


def test_manifest_that_differs_from_trusted_target_refused() -> None:
    manifest = b'{"schemaVersion":2}'
    import hashlib

    good = hashlib.sha256(manifest).hexdigest()
    check_manifest(manifest, good, len(manifest))
    with pytest.raises(HashMismatchError, match="digest"):
        check_manifest(manifest + b" ", good, len(manifest) + 1)
    with pytest.raises(HashMismatchError, match="bytes"):
        check_manifest(manifest, good, len(manifest) + 5)


def test_registry_lying_about_digest_refused() -> None:
    manifest = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'

    def handler(req: httpx.Request) -> httpx.Response:
        assert "application/vnd.oci.image.manifest.v1+json" in req.headers["accept"]
        return httpx.Response(200, content=manifest, headers={"Docker-Content-Digest": "sha256:" + "ab" * 32})

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(HashMismatchError):
            lookup_manifest(parse_reference("127.0.0.1:5000/team/app:v1"), http=http)


def test_endless_root_on_first_contact_is_capped(fake: FakeNotary, make_client) -> None:
    calls = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        return httpx.Response(200, headers={"Content-Length": str(200 << 20)}, content=b"{}")

    fake.overrides[(GUN, "root.json")] = handler
    with pytest.raises(BadResponseError):
        make_client().update()


def test_server_meta_unchanged_uses_cache(repo: RepositorySimulator, fake: FakeNotary, make_client) -> None:
    make_client().update()
    fake.requests.clear()
    make_client().update()
    assert _names(fake) == ["timestamp.json"] or _names(fake)[-1] == "timestamp.json"
    assert not any(n.startswith("snapshot") for n in _names(fake))


def test_fixed_meta_is_sha256_only_for_docker_targets() -> None:
    fm = FileMeta(3, {"sha256": b"\x00" * 32})
    assert fm.to_dict() == {"hashes": {"sha256": "A" * 43 + "="}, "length": 3}


def test_server_url_is_what_the_client_uses(make_client) -> None:
    assert make_client().remote.base_url() == f"{SERVER}/v2/{GUN}/_trust/tuf/"
