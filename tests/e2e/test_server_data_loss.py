"""Signing to a trust server that lost the repository the client has cached (issue 15, item 1).

The tutorial's state after ``trustbox sandbox down -v`` + ``up``: the trust dir still holds the
first run's metadata, the new trust server has none. Against notary-server 0.7 and ``trustbox
serve trust``: ``trust sign`` and a signing push fail loudly (docker 28's reason in the message)
and nothing reaches the server; reads use the cache with notary's warning, and ``verify
--require-fresh`` refuses.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import Stack, missing, start_stack, trust_server
from tests.e2e.test_tutorial import tb
from trustbox.client.images.sample import write_sample_image
from trustbox.client.trust.updater import CACHED_TIMESTAMP_WARNING

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("variant", ["upstream", "trustbox"])
def test_a_trust_server_on_fresh_storage_is_not_reported_as_signed(variant: str, tmp_path: Path) -> None:
    why = missing(variant)
    if why:
        pytest.skip(why)
    image = tmp_path / "trusttest"
    write_sample_image(image, "latest", message=f"data loss on {variant}")
    dc = tmp_path / "docker-config"
    with start_stack(variant, tmp_path / "stack") as stack:
        repo = f"{stack.registry.host}/test/trusttest"
        env = stack.env(dc, DOCKER_CONTENT_TRUST="1")
        r = tb(env, "push", f"oci:{image}:latest", f"{repo}:latest")
        assert r.returncode == 0, r.stdout + r.stderr
        r = tb(env, "verify", f"{repo}:latest")
        assert r.returncode == 0, r.stdout + r.stderr

        with trust_server(variant, tmp_path / "new-trust") as (url, ca):
            env = Stack(variant, url, ca, stack.registry, stack.workdir).env(dc, DOCKER_CONTENT_TRUST="1")
            host = url.split("//", 1)[1]
            lost = f"{host} does not have trust data for {repo} but the local cache does"

            r = tb(env, "trust", "sign", f"{repo}:latest")
            assert r.returncode == 1
            assert "Successfully signed" not in r.stdout
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: ") and lost in lines[0]
            assert ("Metadata hierarchy is incomplete: no snapshot was included in update and server does not hold "
                    "current snapshot key") in lines[0]

            r = tb(env, "push", f"oci:{image}:latest", f"{repo}:latest")
            assert r.returncode != 0
            assert "Successfully signed" not in r.stdout and lost in r.stderr

            with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as http:
                assert http.get(f"{url}/v2/{repo}/_trust/tuf/root.json").status_code == 404

            r = tb(env, "verify", f"{repo}:latest")
            assert r.returncode == 0, r.stdout + r.stderr
            assert r.stderr == CACHED_TIMESTAMP_WARNING + "\n"
            r = tb(env, "verify", "--json", f"{repo}:latest")
            assert r.returncode == 0 and json.loads(r.stdout)["from_cache"] is True
            r = tb(env, "verify", "--require-fresh", f"{repo}:latest")
            assert r.returncode == 1
            assert r.stderr.strip().splitlines()[-1].startswith("Not verified: the trust server did not serve current")
