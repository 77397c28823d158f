"""Registry-side enforcement (``--trust-policy``), in process: a registry app with a trust policy
reading crafted trust data (real keys and signatures, tests/helpers/simulator.py) from a fake trust
server, or sigstore attachments from the registry itself. Every refusal is a 403 DENIED naming
the rule; a hostile trust server is refused, logged in one line, and nothing of it is kept."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.helpers.simulator import RepositorySimulator
from trustbox.errors import ConfigError, RootError
from trustbox.oci.simplesigning import (
    SignatureLayer,
    build_payload,
    build_signature_manifest,
    public_key_pem,
    sign_payload,
    signature_tag,
)
from trustbox.registry.app import create_app
from trustbox.registry.config import RegistryConfig
from trustbox.registry.trustfetch import RootStore
from trustbox.registry.trustpolicy import TrustPolicy, glob_regex, load_trust_policy
from trustbox.tuf.keys import PrivateKey
from trustbox.tuf.metadata import FileMeta

from .conftest import OCI_INDEX, Reg, error_code

PREFIX = "reg.test/"
REPO = "app"
GUN = PREFIX + REPO
SERVER = "https://trust.test"
NOW = datetime.now(UTC).replace(microsecond=0)


class FakeTrust:
    """A trust server answering from a dict, with switches for hostile answers."""

    def __init__(self) -> None:
        self.docs: dict[str, bytes] = {}
        self.down = False
        self.override: dict[str, bytes] = {}
        self.status: int | None = None
        self.requests: list[str] = []
        self.trickle = False

    def publish(self, b: RepositorySimulator, docs: dict[str, bytes] | None = None) -> dict[str, bytes]:
        docs = docs or b.publish()
        self.docs = {}
        for role, data in docs.items():
            self.docs[role] = data
            if role != "timestamp":
                self.docs[f"{role}.{hashlib.sha256(data).hexdigest()}"] = data
        self.docs[f"{b.root_version}.root"] = docs["root"]
        return docs

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append(path)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        prefix = f"/v2/{GUN}/_trust/tuf/"
        if not path.startswith(prefix) or not path.endswith(".json"):
            return httpx.Response(404)
        name = path[len(prefix):-len(".json")]
        if self.status is not None:
            return httpx.Response(self.status, content=b"oops")
        if self.trickle:
            def slowly() -> Iterator[bytes]:
                for _ in range(20):
                    time.sleep(0.1)
                    yield b" "
            return httpx.Response(200, content=slowly())
        if name in self.override:
            return httpx.Response(200, content=self.override[name])
        data = self.docs.get(name)
        return httpx.Response(200, content=data) if data is not None else httpx.Response(404)


@pytest.fixture
def fake() -> FakeTrust:
    return FakeTrust()


def stable_roots(b: RepositorySimulator) -> dict[int, bytes]:
    """Make ``b`` publish one root document per version, as a real trust server does (the builder
    signs a fresh root each time); returns the per-version store (tests put rotated roots in it)."""
    made: dict[int, bytes] = {}
    sign_root = b.root_doc

    def root(signers: Any = None) -> bytes:
        if signers is not None:
            return sign_root(signers)
        if b.root_version not in made:
            made[b.root_version] = sign_root()
        return made[b.root_version]

    b.root_doc = root  # type: ignore[method-assign]
    b.roots_by_version = made  # type: ignore[attr-defined]
    return made


@pytest.fixture
def builder() -> RepositorySimulator:
    b = RepositorySimulator(gun=GUN, now=NOW - timedelta(hours=1))
    stable_roots(b)
    return b


class World:
    def __init__(self, tmp_path: Path, fake: FakeTrust, builder: RepositorySimulator) -> None:
        self.tmp, self.fake, self.b = tmp_path, fake, builder
        self.offset = timedelta(0)
        self.app = create_app(RegistryConfig(storage=str(tmp_path / "store")))
        self.registry = self.app.state.registry
        self.client = TestClient(self.app)
        self.client.__enter__()
        self.reg = Reg(self.client, self.registry.driver)
        self.policy: TrustPolicy | None = None

    def clock(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def set_policy(self, **rule: Any) -> TrustPolicy:
        doc = {"name": "prod", "repositories": ["app", "other/*"], **rule}
        if "trust_server" not in doc and "sigstore_keys" not in doc:
            doc.update(trust_server=SERVER, gun_prefix=PREFIX)
        path = self.tmp / "policy.json"
        path.write_text(json.dumps({"rules": [doc]}))
        self.policy = TrustPolicy(load_trust_policy(path), self.registry.driver, self.registry.manifests,
                                  clock=self.clock, transport=httpx.MockTransport(self.fake.handle))
        self.registry.trust_policy = self.policy
        return self.policy

    def sign(self, tag: str, body: bytes, role: str = "targets") -> None:
        self.b.add_target(tag, body, role)
        self.bump()

    def bump(self) -> None:
        for role in self.b.versions:
            if role != "root":
                self.b.versions[role] += 1
        self.fake.publish(self.b)

    def get(self, ref: str, repo: str = REPO, method: str = "GET") -> httpx.Response:
        return self.client.request(method, f"/v2/{repo}/manifests/{ref}",
                                   headers={"Accept": "application/vnd.oci.image.manifest.v1+json, " + OCI_INDEX})


@pytest.fixture
def world(tmp_path: Path, fake: FakeTrust, builder: RepositorySimulator) -> Iterator[World]:
    w = World(tmp_path, fake, builder)
    fake.publish(builder)
    yield w
    w.client.__exit__(None, None, None)


def denied(resp: httpx.Response, *words: str) -> str:
    assert resp.status_code == 403, resp.text
    assert error_code(resp) == "DENIED"
    message = str(resp.json()["errors"][0]["message"])
    assert "trust policy rule 'prod'" in message
    for w in words:
        assert w in message, message
    return message


# --- tags ----------------------------------------------------------------------------------------


def test_signed_tag_served_unsigned_and_repointed_refused(world: World) -> None:
    world.set_policy()
    d1, body1, _ = world.reg.image(REPO, tag="v1")
    d2, _, _ = world.reg.image(REPO, tag="v2")
    world.sign("v1", body1)
    r = world.get("v1")
    assert r.status_code == 200 and r.content == body1
    assert world.get("v1", method="HEAD").status_code == 200
    denied(world.get("v2"), "tag v2 is not signed")
    assert world.get("v2", method="HEAD").status_code == 403
    # a push re-points v1 at an unsigned manifest: refused at once (no cache involved)
    d3, _, _ = world.reg.image(REPO, tag="v1")
    denied(world.get("v1"), f"signed for {d1}", f"holds {d3}")
    # unprotected repositories are untouched
    world.reg.image("free", tag="x")
    assert world.get("x", repo="free").status_code == 200
    assert d2


def test_digest_reads(world: World) -> None:
    world.set_policy()
    d1, body1, _ = world.reg.image(REPO, tag="v1")
    d2, _, _ = world.reg.image(REPO)
    world.sign("v1", body1)
    assert world.get(d1).status_code == 200
    denied(world.get(d2), f"manifest {d2} is neither signed")
    # an index signed by tag approves its children by digest, not other manifests
    c1, b1, _ = world.reg.image(REPO)
    c2, b2, _ = world.reg.image(REPO)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": c, "size": len(b)} for c, b in ((c1, b1), (c2, b2))]}
    ibody = json.dumps(index).encode()
    assert world.reg.push_manifest(REPO, "multi", ibody, OCI_INDEX).status_code == 201
    denied(world.get(c1))
    world.sign("multi", ibody)
    world.policy.rules[0].cache_seconds = 0  # type: ignore[union-attr]  (see the new trust data now)
    assert world.get("multi").status_code == 200
    assert world.get(c1).status_code == 200 and world.get(c2).status_code == 200


def test_signature_and_referrer_artifacts_of_signed_manifests(world: World) -> None:
    world.set_policy()
    d1, body1, _ = world.reg.image(REPO, tag="v1")
    d2, _, _ = world.reg.image(REPO, tag="v2")
    world.sign("v1", body1)
    key = PrivateKey.generate("ecdsa")
    for d in (d1, d2):
        payload = build_payload("reg.test/app", d)
        world.reg.push_blob(REPO, payload)
        sm = build_signature_manifest([SignatureLayer.for_payload(payload, sign_payload(key, payload))])
        world.reg.push_blob(REPO, sm.config)
        assert world.reg.push_manifest(REPO, signature_tag(d), sm.manifest).status_code == 201
    assert world.get(signature_tag(d1)).status_code == 200
    sig1 = world.get(signature_tag(d1)).headers["docker-content-digest"]
    assert world.get(sig1).status_code == 200
    denied(world.get(signature_tag(d2)), f"signatures of {d2}")
    # a referrer (subject) of the signed manifest: served when it is an artifact (JSON layers) ...
    subject = {"subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d1, "size": len(body1)}}
    note = b'{"note":"an attestation"}'
    nd = world.reg.push_blob(REPO, note)
    att = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "artifactType": "application/vnd.example+json",
           "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": world.reg.push_blob(REPO, b"{}"),
                      "size": 2},
           "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": nd, "size": len(note)}], **subject}
    r = world.reg.push_manifest(REPO, "sha256:" + hashlib.sha256(json.dumps(att).encode()).hexdigest(), att)
    assert r.status_code == 201, r.text
    assert world.get(r.headers["docker-content-digest"]).status_code == 200
    # ... but not a runnable image that merely names the signed manifest as its subject
    runnable, _, _ = world.reg.image(REPO, extra=subject)
    denied(world.get(runnable), "neither signed")
    # nor a runnable image pushed under the .sig tag of a signed manifest
    world.reg.image(REPO, tag=signature_tag(d1))
    denied(world.get(signature_tag(d1)), "holds an image, not signatures")
    other = world.get(signature_tag(d1), method="HEAD").headers.get("docker-content-digest")
    assert other is None


def test_revoked_tag_refused_once_the_cache_bound_passed(world: World) -> None:
    world.set_policy(cache_seconds=0.5)
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    assert world.get("v1").status_code == 200
    del world.b.target_files["targets"]["v1"]
    world.bump()
    assert world.get("v1").status_code == 200  # within the documented bound
    time.sleep(0.6)
    denied(world.get("v1"), "not signed")


def test_expired_timestamp_refused(world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.set_policy(cache_seconds=0)
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    assert world.get("v1").status_code == 200
    world.offset = timedelta(days=15)  # past the timestamp's 14 days
    with caplog.at_level(logging.WARNING, "trustbox.registry.trust"):
        denied(world.get("v1"), "expired")
    assert len(caplog.records) == 1


def test_cached_data_never_outlives_its_expiry(world: World) -> None:
    world.set_policy(cache_seconds=3600)
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    assert world.get("v1").status_code == 200
    world.offset = timedelta(days=15)
    denied(world.get("v1"), "expired")


# --- hostile trust servers ----------------------------------------------------------------------


def _hostile_cases(b: RepositorySimulator, fake: FakeTrust) -> dict[str, Callable[[], None]]:
    def garbage() -> None:
        fake.override["timestamp"] = b"\x00garbage{"

    def oversized() -> None:
        fake.override["timestamp"] = b"{" + b" " * (1024 * 1024 + 10) + b"}"

    def expired() -> None:
        b.versions["timestamp"] += 5
        fake.override["timestamp"] = b.timestamp_doc(fake.docs["snapshot"], expired=True)

    def wrong_root() -> None:
        other = RepositorySimulator(gun=GUN, now=b.now)
        fake.publish(other)

    def rolled_back() -> None:
        b.versions["timestamp"] -= 1
        fake.override["timestamp"] = b.timestamp_doc(fake.docs["snapshot"])

    def wrong_key() -> None:
        b.versions["timestamp"] += 5
        fake.override["timestamp"] = b.timestamp_doc(fake.docs["snapshot"], key=PrivateKey.generate("ecdsa"))

    def endless_targets() -> None:
        name = next(k for k in fake.docs if k.startswith("targets."))
        fake.override[name] = fake.docs[name] + b" " * 100

    return {"garbage": garbage, "oversized": oversized, "expired": expired, "wrong_root": wrong_root,
            "rolled_back": rolled_back, "wrong_key": wrong_key, "endless_targets": endless_targets}


@pytest.mark.parametrize("case", ["garbage", "oversized", "expired", "wrong_root", "rolled_back", "wrong_key",
                                  "endless_targets"])
def test_hostile_trust_server(world: World, case: str, caplog: pytest.LogCaptureFixture) -> None:
    policy = world.set_policy(cache_seconds=0)
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.b.versions["timestamp"] += 1  # room to roll back
    world.sign("v1", body1)
    assert world.get("v1").status_code == 200
    stored = RootStore(world.registry.driver).load(SERVER, GUN)
    _hostile_cases(world.b, world.fake)[case]()
    time.sleep(1.05)  # past the retry pause
    with caplog.at_level(logging.WARNING, "trustbox.registry.trust"):
        denied(world.get("v1"))
    lines = [r for r in caplog.records if r.name == "trustbox.registry.trust"]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage(), lines
    assert all(e.trust is None for e in policy._trust.values())  # nothing kept
    assert RootStore(world.registry.driver).load(SERVER, GUN) == stored  # nor stored
    # the failure is remembered for a moment: no second fetch, no second line
    before = len(world.fake.requests)
    denied(world.get("v1"))
    assert len(world.fake.requests) == before


def test_hostile_on_first_contact_stores_nothing(world: World) -> None:
    world.set_policy(cache_seconds=0)
    world.reg.image(REPO, tag="v1")
    world.fake.override["root"] = b"[]"
    denied(world.get("v1"), "failed verification")
    assert RootStore(world.registry.driver).load(SERVER, GUN) is None


# --- unreachable servers ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["deny", "cached", "allow"])
def test_unreachable_modes(world: World, mode: str) -> None:
    world.set_policy(cache_seconds=0, unreachable=mode)
    _, body1, _ = world.reg.image(REPO, tag="v1")
    _, _, _ = world.reg.image(REPO, tag="v2")
    world.sign("v1", body1)
    assert world.get("v1").status_code == 200
    world.fake.down = True
    r1, r2 = world.get("v1"), world.get("v2")
    if mode == "deny":
        denied(r1, "unreachable")
        denied(r2, "unreachable")
    elif mode == "cached":
        assert r1.status_code == 200
        denied(r2, "not signed")  # the last verified data still decides
    else:
        assert r1.status_code == 200 and r2.status_code == 200


def test_server_error_status_is_unreachable_not_a_lie(world: World) -> None:
    world.set_policy(cache_seconds=0, unreachable="cached")
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    assert world.get("v1").status_code == 200
    world.fake.status = 503
    assert world.get("v1").status_code == 200


def test_no_trust_data_refused(world: World) -> None:
    world.set_policy()
    world.fake.docs = {}
    world.reg.image(REPO, tag="v1")
    denied(world.get("v1"), "no content trust data")


# --- roots: pinning, trust on first use kept durably, rotation -----------------------------------


def test_root_pinning(world: World) -> None:
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    world.set_policy(root_keys=["0" * 64])
    denied(world.get("v1"), "none of the pinned certificates")
    world.set_policy(root_keys=[world.b.root_keys[0][1].keyid])
    assert world.get("v1").status_code == 200


def test_tofu_root_is_kept_durably(world: World) -> None:
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    world.set_policy()
    assert world.get("v1").status_code == 200
    # a new policy instance (a restarted registry) over the same storage, and a server that now
    # holds someone else's root for the GUN: refused
    other = RepositorySimulator(gun=GUN, now=world.b.now)
    other.add_target("v1", body1)
    world.fake.publish(other)
    world.set_policy()
    denied(world.get("v1"), "failed verification")


def test_root_rotation_is_walked(world: World) -> None:
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    world.set_policy(cache_seconds=0)
    assert world.get("v1").status_code == 200
    roots = world.b.roots_by_version  # type: ignore[attr-defined]
    published = {}
    for _ in range(2):  # two rotations (2.root, 3.root), each signed by the previous and the new key
        old = list(world.b.root_keys)
        new = world.b.add_root_key()
        world.b.root_keys = [new]
        world.b.root_version += 1
        roots[world.b.root_version] = world.b.root_doc(signers=[*old, new])
        published[world.b.root_version] = roots[world.b.root_version]
    world.bump()
    for v, data in published.items():
        world.fake.docs[f"{v}.root"] = data
    assert world.get("v1").status_code == 200
    stored = RootStore(world.registry.driver).load(SERVER, GUN)
    assert stored is not None and json.loads(stored[0])["signed"]["version"] == 3
    # a root rotation that is not signed by the trusted root key is refused
    world.b.root_keys = [world.b.add_root_key()]
    world.b.root_version += 1
    roots[world.b.root_version] = world.b.root_doc(signers=list(world.b.root_keys))
    world.bump()
    time.sleep(1.05)
    denied(world.get("v1"), "failed verification")


# --- signers ----------------------------------------------------------------------------------------


def test_named_signers_and_minimum(world: World) -> None:
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.b.delegate("targets/releases")
    world.b.delegate("targets/alice")
    world.b.add_target("v1", body1, "targets/releases")
    world.b.add_target("v1", body1, "targets/alice")
    world.bump()
    world.set_policy(signers=["alice"])
    assert world.get("v1").status_code == 200
    world.set_policy(signers=["alice", "targets/bob"])
    denied(world.get("v1"), "not signed for", "targets/bob")
    world.set_policy(min_signers=2)
    denied(world.get("v1"), "signed by 1 role(s), the rule requires 2")
    world.b.add_target("v1", body1, "targets")
    world.bump()
    world.set_policy(min_signers=2)
    assert world.get("v1").status_code == 200


def test_releases_wins_over_targets_like_docker(world: World) -> None:
    d1, body1, _ = world.reg.image(REPO, tag="v1")
    _, body2, _ = world.reg.image(REPO)
    world.b.delegate("targets/releases")
    world.b.add_target("v1", body2, "targets")
    world.b.add_target("v1", body1, "targets/releases")
    world.bump()
    world.set_policy()
    r = world.get("v1")
    assert r.status_code == 200, r.text


# --- sigstore -----------------------------------------------------------------------------------


def _attach(world: World, digest: str, key: PrivateKey, repo: str = REPO, identity: str = "reg.test/app") -> None:
    payload = build_payload(identity, digest)
    world.reg.push_blob(repo, payload)
    sm = build_signature_manifest([SignatureLayer.for_payload(payload, sign_payload(key, payload))])
    world.reg.push_blob(repo, sm.config)
    assert world.reg.push_manifest(repo, signature_tag(digest), sm.manifest).status_code == 201


def test_sigstore_rule(world: World) -> None:
    key, stranger = PrivateKey.generate("ecdsa"), PrivateKey.generate("ed25519")
    (world.tmp / "k.pub").write_bytes(public_key_pem(key.public_key()))
    world.set_policy(sigstore_keys=["k.pub"])
    d1, _, _ = world.reg.image(REPO, tag="v1")
    d2, _, _ = world.reg.image(REPO, tag="v2")
    d3, _, _ = world.reg.image(REPO, tag="v3")
    _attach(world, d1, key)
    _attach(world, d2, stranger)
    _attach(world, d3, key, identity="reg.test/elsewhere")
    assert world.get("v1").status_code == 200
    assert world.get(d1).status_code == 200
    assert world.get(signature_tag(d1)).status_code == 200
    denied(world.get("v2"), "no valid sigstore signature")
    denied(world.get(d2))
    denied(world.get("v3"), "no valid sigstore signature")
    d4, _, _ = world.reg.image(REPO, tag="v4")
    denied(world.get("v4"), "no valid sigstore signature")


def test_sigstore_flipped_signature_refused(world: World) -> None:
    key = PrivateKey.generate("ecdsa")
    (world.tmp / "k.pub").write_bytes(public_key_pem(key.public_key()))
    world.set_policy(sigstore_keys=["k.pub"])
    d1, _, _ = world.reg.image(REPO, tag="v1")
    payload = build_payload("reg.test/app", d1)
    world.reg.push_blob(REPO, payload)
    sig = bytearray(sign_payload(key, payload))
    sig[-1] ^= 1
    layer = SignatureLayer(SignatureLayer.for_payload(payload, b"x").payload_digest, len(payload),
                           base64.b64encode(bytes(sig)).decode())
    sm = build_signature_manifest([layer])
    world.reg.push_blob(REPO, sm.config)
    world.reg.push_manifest(REPO, signature_tag(d1), sm.manifest)
    denied(world.get("v1"), "no valid sigstore signature")


def test_both_content_trust_and_sigstore(world: World) -> None:
    key = PrivateKey.generate("ecdsa")
    (world.tmp / "k.pub").write_bytes(public_key_pem(key.public_key()))
    world.set_policy(trust_server=SERVER, gun_prefix=PREFIX, sigstore_keys=["k.pub"])
    d1, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    denied(world.get("v1"), "no valid sigstore signature")
    _attach(world, d1, key)
    assert world.get("v1").status_code == 200


# --- configuration -------------------------------------------------------------------------------


def test_glob() -> None:
    assert glob_regex("prod/*").fullmatch("prod/app")
    assert not glob_regex("prod/*").fullmatch("prod/a/b")
    assert glob_regex("prod/**").fullmatch("prod/a/b")
    assert glob_regex("a?c").fullmatch("abc") and not glob_regex("a?c").fullmatch("a/c")
    assert not glob_regex("a.c").fullmatch("abc")


@pytest.mark.parametrize("doc, words", [
    ({"rules": []}, "no rules"),
    ({"rules": [{"repositories": ["a"]}]}, "requires nothing"),
    ({"rules": [{"repositories": ["a"], "trust_server": "https://t"}]}, "gun_prefix"),
    ({"rules": [{"repositories": ["a"], "trust_server": "ftp://t", "gun_prefix": "r/"}]}, "http(s) URL"),
    ({"rules": [{"repositories": ["a"], "trust_server": "https://t", "gun_prefix": "r/", "x": 1}]}, "unknown key"),
    ({"rules": [{"repositories": ["a"], "sigstore_keys": ["missing.pub"]}]}, "cannot read sigstore key"),
    ({"rules": [{"repositories": ["a"], "sigstore_keys": ["bad.pub"]}]}, "sigstore key"),
    ({"rules": [{"repositories": ["a"], "signers": ["x"]}]}, "need trust_server"),
    ({"rules": [{"repositories": [], "trust_server": "https://t", "gun_prefix": "r/"}]}, "repositories"),
    ({"rules": [{"repositories": ["a"], "trust_server": "https://t", "gun_prefix": "r/", "unreachable": "x"}]},
     "unreachable"),
    ({"rules": [{"repositories": ["a"], "trust_server": "https://t", "gun_prefix": "r/", "cache_seconds": -1}]},
     "cache_seconds"),
    ({"other": 1}, "only a list of rules"),
])
def test_policy_errors(tmp_path: Path, doc: dict[str, Any], words: str) -> None:
    (tmp_path / "bad.pub").write_text("not a key")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as err:
        load_trust_policy(path)
    assert words in err.value.message


def test_toml_policy_and_registry_config(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[[rule]]\nname = "p"\nrepositories = ["prod/**"]\ntrust_server = "https://t:4443"\n'
                    'gun_prefix = "reg:5000/"\nsigners = ["alice"]\ncache_seconds = 5\n')
    (rule,) = load_trust_policy(path)
    assert rule.signers == ["targets/alice"] and rule.gun("prod/x") == "reg:5000/prod/x" and rule.cache_seconds == 5
    app = create_app(RegistryConfig(storage=str(tmp_path / "s"), trust_policy=str(path)))
    assert app.state.registry.trust_policy is not None
    assert create_app(RegistryConfig(storage=str(tmp_path / "s2"))).state.registry.trust_policy is None
    with pytest.raises(ConfigError):
        RegistryConfig(storage=str(tmp_path / "s"), trust_policy=str(tmp_path / "missing.toml")).validate()


def test_file_meta_sanity() -> None:
    assert FileMeta.from_bytes(b"x").hashes["sha256"] == hashlib.sha256(b"x").digest()


def test_root_store_merge_never_lowers(world: World) -> None:
    """Two workers (or replicas) saving after updates that finished out of order: the higher root
    version and each higher role version win."""
    store = RootStore(world.registry.driver)
    store.save(SERVER, "g", b"root v2", {"timestamp": 5, "targets": 2}, 2)
    store.save(SERVER, "g", b"root v1", {"timestamp": 3, "targets": 4, "snapshot": 1}, 1)
    assert store.load(SERVER, "g") == (b"root v2", {"timestamp": 5, "targets": 4, "snapshot": 1, "root": 2})
    world.registry.driver.write(next(k for k in _keys(world) if k.startswith("trustpolicy/")), b"{garbage")
    with pytest.raises(RootError):
        store.load(SERVER, "g")


def _keys(world: World) -> list[str]:
    return [k for k, _ in world.registry.driver.walk("trustpolicy")]


def test_trickling_trust_server_is_unreachable(world: World) -> None:
    """A server sending a byte now and then never holds the GUN's requests longer than ``timeout``."""
    world.set_policy(cache_seconds=0, timeout=0.5)
    _, body1, _ = world.reg.image(REPO, tag="v1")
    world.sign("v1", body1)
    assert world.get("v1").status_code == 200
    time.sleep(0.05)
    world.fake.trickle = True
    t0 = time.monotonic()
    denied(world.get("v1"), "unreachable", "not received within 0.5 s")
    assert time.monotonic() - t0 < 1.5


def test_refusals_are_counted_per_rule_in_the_metrics(world: World) -> None:
    world.set_policy()
    _d, body, _ = world.reg.image(REPO, tag="v1")
    world.reg.image(REPO, tag="v2")
    world.sign("v1", body)
    assert world.get("v1").status_code == 200
    denied(world.get("v2"))
    assert world.get("v2", method="HEAD").status_code == 403
    metrics = world.client.get("/metrics").text
    assert 'trustbox_registry_policy_refusals_total{rule="prod"} 2' in metrics
