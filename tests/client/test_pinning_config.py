"""Trust pinning from a notary-style config file named by $TRUSTBOX_TRUST_PINNING."""

from __future__ import annotations

import json

import pytest

from tests.client.conftest import SERVER
from tests.client.fakeserver import FakeNotary
from tests.helpers.simulator import GUN, NOW, RepositorySimulator
from trustbox.client.dockerenv import trust_pinning
from trustbox.client.trust.repository import trust_client_for
from trustbox.errors import ConfigError, RootError


def _client(fake: FakeNotary, tmp_path, pinning_file):
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "DOCKER_CONTENT_TRUST_SERVER": SERVER,
           "TRUSTBOX_TRUST_PINNING": str(pinning_file)}
    return trust_client_for(f"{GUN}:v1", environ=env, http=fake.client(), now=NOW)


def test_pinned_certificate_ids_from_file(repo: RepositorySimulator, fake: FakeNotary, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"trust_pinning": {"certs": {GUN: ["00" * 32]}}}))
    with pytest.raises(RootError, match="pinned certificates"):
        _client(fake, tmp_path, bad).update()
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"certs": {GUN: [repo.certs[0].keyid]}}))
    _client(fake, tmp_path, good).update()


def test_disable_tofu_and_relative_ca_paths(tmp_path) -> None:
    f = tmp_path / "conf" / "notary.json"
    f.parent.mkdir()
    f.write_text(json.dumps({"trust_pinning": {"ca": {"registry.example.test/": "ca.pem"}, "disable_tofu": True}}))
    p = trust_pinning({"TRUSTBOX_TRUST_PINNING": str(f)})
    assert p is not None and p.disable_tofu and p.ca["registry.example.test/"] == f.parent / "ca.pem"
    assert trust_pinning({}) is None


@pytest.mark.parametrize("content", ["not json", '{"certs": {"g": "abc"}}', '{"disable_tofu": "yes"}', "[]"])
def test_bad_pinning_file_is_a_config_error(tmp_path, content) -> None:
    f = tmp_path / "p.json"
    f.write_text(content)
    with pytest.raises(ConfigError):
        trust_pinning({"TRUSTBOX_TRUST_PINNING": str(f)})
