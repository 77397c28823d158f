"""Regression tests for failures found by the official OCI distribution-spec conformance suite.

Each test names the suite's spec ("It ...") that failed against trustbox before the fix. The suite
itself is built locally from the upstream source (see docs/registry.md, "OCI conformance").
"""

from __future__ import annotations

import pytest

from .conftest import Reg, error_code

# the conformance suite's setup.go: nonexistentManifest = ".INVALID_MANIFEST_NAME"
SUITE_NONEXISTENT = ".INVALID_MANIFEST_NAME"


@pytest.mark.parametrize("ref", [SUITE_NONEXISTENT, "-dash-first", "x" * 129, "a+b"])
def test_get_head_manifest_with_a_reference_that_is_no_tag_is_404(reg: Reg, ref: str) -> None:
    """Pull / Push: "HEAD request to nonexistent manifest should return 404" and "GET nonexistent
    manifest should return 404" (was 400 TAG_INVALID)."""
    reg.image("myorg/myrepo", tag="tagtest0")
    r = reg.get(f"/v2/myorg/myrepo/manifests/{ref}")
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/json"
    assert error_code(r) in ("NOT_FOUND", "MANIFEST_UNKNOWN")
    h = reg.head(f"/v2/myorg/myrepo/manifests/{ref}")
    assert h.status_code == 404 and h.content == b""
    # and in a repository that does not exist at all
    assert reg.get(f"/v2/other/repo/manifests/{ref}").status_code == 404
    assert reg.head(f"/v2/other/repo/manifests/{ref}").status_code == 404


def test_delete_manifest_with_a_reference_that_is_no_tag_is_404(reg: Reg) -> None:
    reg.image("myorg/myrepo", tag="tagtest0")
    r = reg.delete(f"/v2/myorg/myrepo/manifests/{SUITE_NONEXISTENT}")
    assert r.status_code == 404, r.text
    assert error_code(r) in ("NOT_FOUND", "MANIFEST_UNKNOWN")
    assert reg.get("/v2/myorg/myrepo/manifests/tagtest0").status_code == 200


def test_put_manifest_with_a_reference_that_is_no_tag_stays_tag_invalid(reg: Reg) -> None:
    _, body, _ = reg.image("myorg/myrepo")
    r = reg.push_manifest("myorg/myrepo", SUITE_NONEXISTENT, body)
    assert r.status_code == 400 and error_code(r) == "TAG_INVALID"
    assert reg.get("/v2/myorg/myrepo/tags/list").json()["tags"] == []


def test_unknown_tag_and_digest_stay_manifest_unknown(reg: Reg) -> None:
    reg.image("myorg/myrepo", tag="tagtest0")
    r = reg.get("/v2/myorg/myrepo/manifests/nosuchtag")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = reg.get("/v2/myorg/myrepo/manifests/sha256:" + "0" * 64)
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
