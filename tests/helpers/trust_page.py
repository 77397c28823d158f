"""A repository for the web page and metrics tests: signed tags, a delegation, a targets role
expiring in 10 days, and a target whose name is an XSS attempt."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.helpers.simulator import RepositorySimulator, target
from tests.trustserver.ts_helpers import new_repo, post
from trustbox.tuf.keys import PrivateKey

XSS_TAG = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
SOON_DAYS = 10


def manifest(tag: str) -> bytes:
    """A small OCI image manifest body, different per tag (its digest is what gets signed)."""
    return (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
        '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},'
        f'"layers":[],"annotations":{{"tag":"{tag}"}}}}'
    ).encode()


def publish_page_repo(client: Any, gun: str) -> tuple[RepositorySimulator, PrivateKey]:
    """Publish ``gun``: targets v1 (tag ``v1`` and the XSS name) expiring in 10 days, delegation
    ``targets/releases`` with tag ``v2``. Returns the simulator and the delegation key."""
    repo = new_repo(client, gun)
    dkey = PrivateKey.generate("ecdsa")
    parts = {
        "root": repo.make_root(),
        "targets": repo.make_targets(
            {"v1": target(manifest("v1")), XSS_TAG: target(b"xss")},
            delegations=[("targets/releases", dkey.public_key(), [""])],
            expires=timedelta(days=SOON_DAYS), version=2,
        ),
    }
    parts["targets/releases"] = repo.make_targets(
        {"v2": target(manifest("v2"))}, key=dkey, role="targets/releases", version=1
    )
    parts["snapshot"] = repo.make_snapshot(version=2)
    r = post(client, gun, parts)
    assert r.status_code == 200, r.text
    return repo, dkey
