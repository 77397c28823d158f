"""Root and signer keys on a PKCS#11 token (SoftHSM2) in real use: ``trust key rotate ... root
--key pkcs11:...`` makes the new root key on the token and cross-signs; a signer's key made on the
token signs tags (``trust key generate --pkcs11``, ``trust sign``); later root changes, a targets
rotation and ``trust refresh`` sign with the token keys; ``notary list`` (following the root chain
from its cached v1) and docker CLI 28 (``docker trust inspect``) accept every step. A wrong PIN and
a missing token are one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.stack import Stack
from tests.helpers import softhsm
from tests.helpers.opsenv import DOCKER, NOTARY, base_env, docker, have, notary, tb
from trustbox.client.images.sample import write_sample_image

pytestmark = pytest.mark.interop

ROOT_URI = "pkcs11:token=ops;object=root"
ALICE_URI = "pkcs11:token=ops;object=alice"


def _status(env: dict[str, str], repo: str) -> dict:
    r = tb(env, "trust", "status", "--json", "--no-registry", repo)
    assert r.returncode == 0, r.stdout + r.stderr
    (doc,) = json.loads(r.stdout)
    return {x["role"]: x for x in doc["roles"]}


def test_token_root_and_signer(stack: Stack, tmp_path: Path) -> None:
    why = softhsm.missing()
    if why:
        pytest.skip(why)
    for tool in (DOCKER, NOTARY):
        if not have(tool):
            pytest.skip(f"{tool} not installed")
    conf = softhsm.make_store(tmp_path / "softhsm")
    softhsm.init_token(conf, "ops")
    hsm = {"SOFTHSM2_CONF": str(conf), "TRUSTBOX_PKCS11_PIN": softhsm.USER_PIN}
    cfg = tmp_path / "admin" / "docker-config"
    env = {**base_env(stack.trust_url, stack.ca, cfg), **hsm}
    ncfg = tmp_path / "notary" / "docker-config"
    nenv = base_env(stack.trust_url, stack.ca, ncfg)
    repo = f"{stack.registry.host}/ops/hardware"
    image = tmp_path / "image"
    top = write_sample_image(image, "latest", message="ops hardware")
    digest_hex = top.digest.split(":")[1]
    r = tb(env, "push", "--disable-content-trust", f"oci:{image}:latest", f"{repo}:v1")
    assert r.returncode == 0, r.stderr
    r = tb(env, "trust", "sign", f"{repo}:v1")
    assert r.returncode == 0, r.stdout + r.stderr
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)
    assert r.returncode == 0, r.stderr
    v1 = _status(env, repo)

    # a missing token and a wrong PIN: one line each, nothing published
    r = tb(env, "trust", "key", "rotate", repo, "root", "--key", "pkcs11:token=absent;object=root")
    assert r.returncode == 1
    assert r.stderr == f"Error: failed to rotate the root key of {repo}: no PKCS#11 token labelled 'absent' is present\n"
    r = tb(env, "trust", "key", "rotate", repo, "root", "--key", ROOT_URI, TRUSTBOX_PKCS11_PIN="0000")
    assert r.returncode == 1
    assert r.stderr == f"Error: failed to rotate the root key of {repo}: incorrect PIN for PKCS#11 token 'ops'\n"
    assert _status(env, repo)["root"]["version"] == v1["root"]["version"]

    # the root moves to the token (cross-signed by the file key and the token key)
    r = tb(env, "trust", "key", "rotate", repo, "root", "--key", ROOT_URI)
    assert r.returncode == 0, r.stdout + r.stderr
    v2 = _status(env, repo)
    assert v2["root"]["version"] == v1["root"]["version"] + 1
    assert v2["root"]["local_keys"] == v2["root"]["keys"] != v1["root"]["keys"]
    assert not list((cfg / "trust" / "private").glob(f"{v2['root']['keys'][0]}*"))
    token_records = list((cfg / "trust" / "pkcs11").glob("*.json"))
    assert len(token_records) == 1 and "object=root" in token_records[0].read_text()

    # a signer whose key is on the token signs v1
    r = tb(env, "trust", "key", "generate", "alice", "--dir", str(tmp_path), "--pkcs11", ALICE_URI)
    assert r.returncode == 0, r.stdout + r.stderr
    r = tb(env, "trust", "signer", "add", "--key", str(tmp_path / "alice.pub"), "alice", repo)
    assert r.returncode == 0, r.stdout + r.stderr
    r = tb(env, "trust", "sign", f"{repo}:v1")
    assert r.returncode == 0, r.stdout + r.stderr

    # a targets rotation (root signed by the token key alone), then a refresh of everything
    r = tb(env, "trust", "key", "rotate", repo, "targets")
    assert r.returncode == 0, r.stdout + r.stderr
    r = tb(env, "trust", "refresh", repo, "--within", "4000")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == f"{repo}: re-signed root, targets, targets/alice, targets/releases"
    final = _status(env, repo)
    assert final["root"]["version"] == v2["root"]["version"] + 2
    assert final["root"]["signed_by"] == v2["root"]["keys"]
    assert final["targets/alice"]["signed_by"] == final["targets/alice"]["local_keys"]

    # notary follows the chain from its cached root v1; docker reads signer alice
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo)
    assert r.returncode == 0 and digest_hex in r.stdout, r.stderr
    r = notary(nenv, stack.trust_url, stack.ca, "list", repo, "-r", "targets/alice")
    assert r.returncode == 0 and digest_hex in r.stdout, r.stdout + r.stderr
    for dcfg in (ncfg, tmp_path / "fresh" / "docker-config"):
        r = docker(base_env(stack.trust_url, stack.ca, dcfg), "trust", "inspect", f"{repo}:v1")
        assert r.returncode == 0, r.stderr
        (info,) = json.loads(r.stdout)
        assert info["SignedTags"] == [{"SignedTag": "v1", "Digest": digest_hex, "Signers": ["alice"]}]
        assert info["AdministrativeKeys"][0]["Keys"] == [{"ID": final["root"]["keys"][0]}]
