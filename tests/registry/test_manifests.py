"""Manifest endpoints: every media type, validation, tags, referrers, listing, deletes."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from trustbox.errcode import go_json_line

from .conftest import DOCKER_LIST, DOCKER_MANIFEST, EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, Reg, error_code


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_put_get_by_tag_and_digest(reg: Reg, media_type: str) -> None:
    d, body, _ = reg.image("lib/app", layers=2, tag="v1", media_type=media_type)
    for ref in ("v1", d):
        r = reg.get(f"/v2/lib/app/manifests/{ref}", headers={"Accept": media_type})
        assert r.status_code == 200
        assert r.content == body
        assert r.headers["Content-Type"] == media_type
        assert r.headers["Docker-Content-Digest"] == d
        h = reg.head(f"/v2/lib/app/manifests/{ref}")
        assert h.status_code == 200 and h.content == b""
        assert h.headers["Content-Length"] == str(len(body))
        assert h.headers["Docker-Content-Digest"] == d
        assert h.headers["Content-Type"] == media_type


def test_put_response_headers(reg: Reg) -> None:
    cfg = reg.push_blob("a", b"{}")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": EMPTY_JSON, "digest": cfg, "size": 2}, "layers": []}
    r = reg.push_manifest("a", "t", doc)
    assert r.status_code == 201
    body = json.dumps(doc).encode()
    assert r.headers["Docker-Content-Digest"] == sha(body)
    assert r.headers["Location"] == f"/v2/a/manifests/{sha(body)}"
    assert "OCI-Subject" not in r.headers


def test_manifest_without_media_type_field_keeps_content_type(reg: Reg) -> None:
    cfg = reg.push_blob("a", b"{}")
    doc = {"schemaVersion": 2, "config": {"mediaType": EMPTY_JSON, "digest": cfg, "size": 2}, "layers": []}
    assert reg.push_manifest("a", "t", doc, OCI_MANIFEST).status_code == 201
    assert reg.get("/v2/a/manifests/t").headers["Content-Type"] == OCI_MANIFEST


@pytest.mark.parametrize("index_type,child_type", [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)])
def test_index_and_manifest_list(reg: Reg, index_type: str, child_type: str) -> None:
    children = [reg.image("multi", media_type=child_type) for _ in range(2)]
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": child_type, "digest": d, "size": len(b),
         "platform": {"architecture": arch, "os": "linux"}}
        for (d, b, _), arch in zip(children, ["amd64", "arm64"], strict=True)]}
    r = reg.push_manifest("multi", "latest", index)
    assert r.status_code == 201, r.text
    g = reg.get("/v2/multi/manifests/latest")
    assert g.headers["Content-Type"] == index_type
    assert json.loads(g.content) == index


def test_nested_and_empty_index(reg: Reg) -> None:
    d, b, _ = reg.image("n")
    inner = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(b)}]}
    r = reg.push_manifest("n", "inner", inner)
    assert r.status_code == 201
    outer = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_INDEX, "digest": r.headers["Docker-Content-Digest"],
                            "size": len(json.dumps(inner).encode())}]}
    assert reg.push_manifest("n", "outer", outer).status_code == 201
    empty = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert reg.push_manifest("n", "empty", empty).status_code == 201


def test_index_with_unknown_child(reg: Reg) -> None:
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(b"nope"), "size": 4}]}
    r = reg.push_manifest("x", "latest", index)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"]["digest"] == sha(b"nope")


def test_manifest_blob_unknown(reg: Reg) -> None:
    cfg = reg.push_blob("a", b"{}")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": EMPTY_JSON, "digest": cfg, "size": 2},
           "layers": [{"mediaType": "application/octet-stream", "digest": sha(b"missing"), "size": 7}]}
    r = reg.push_manifest("a", "t", doc)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    # a blob of another repository does not count
    doc["config"]["digest"] = reg.push_blob("other", b"[]")
    doc["layers"] = []
    r = reg.push_manifest("a", "t", doc)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert reg.get("/v2/a/manifests/t").status_code == 404


def test_descriptor_size_must_match(reg: Reg) -> None:
    cfg = reg.push_blob("a", b"{}")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": EMPTY_JSON, "digest": cfg, "size": 3}, "layers": []}
    r = reg.push_manifest("a", "t", doc)
    assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"


def test_non_distributable_layers_are_not_checked(reg: Reg) -> None:
    cfg = reg.push_blob("a", b"{}")
    foreign = sha(os.urandom(16))
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": EMPTY_JSON, "digest": cfg, "size": 2},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                       "digest": foreign, "size": 123456, "urls": ["https://example.com/x"]}]}
    assert reg.push_manifest("a", "nd", doc).status_code == 201


@pytest.mark.parametrize("body,ctype", [
    (b"not json", OCI_MANIFEST),
    (b"[]", OCI_MANIFEST),
    (b'{"schemaVersion": 1, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {}}', OCI_MANIFEST),
    (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}', OCI_MANIFEST),
    (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", '
     b'"config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}}', OCI_MANIFEST),
    (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", '
     b'"config": {"mediaType": "x", "digest": "sha256:' + b"0" * 64 + b'", "size": -1}}', OCI_MANIFEST),
    (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": {}}', OCI_INDEX),
    (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}', OCI_MANIFEST),
    (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "text/plain"),
    (b'{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}',
     "application/vnd.docker.distribution.manifest.v1+prettyjws"),
    (b"{}", "application/json"),
])
def test_invalid_manifests(reg: Reg, body: bytes, ctype: str) -> None:
    r = reg.push_manifest("a", "bad", body, ctype)
    assert r.status_code == 400, r.text
    assert error_code(r) == "MANIFEST_INVALID"


def test_manifest_digest_mismatch(reg: Reg) -> None:
    d, body, doc = reg.image("a")
    r = reg.push_manifest("a", d, body + b"  ", OCI_MANIFEST)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    r = reg.push_manifest("a", "sha256:baddigeststring", body, OCI_MANIFEST)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    r = reg.get("/v2/a/manifests/sha256:baddigeststring")
    assert r.status_code in (400, 404)


def test_sha512_manifest(reg: Reg) -> None:
    cfg = reg.push_blob("a", b"{}", alg="sha512")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": EMPTY_JSON, "digest": cfg, "size": 2}, "layers": []}
    body = json.dumps(doc).encode()
    d = sha(body, "sha512")
    r = reg.push_manifest("a", d, body)
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == d
    assert reg.get(f"/v2/a/manifests/{d}").content == body
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(body)}]}
    ib = json.dumps(index).encode()
    r = reg.push_manifest("a", sha(ib, "sha512"), ib)
    assert r.status_code == 201


def test_tag_query_parameter(reg: Reg) -> None:
    d, body, _ = reg.image("a")
    r = reg.c.put(f"/v2/a/manifests/{d}?tag=one&tag=two", content=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201
    assert {t.strip() for t in r.headers["OCI-Tag"].split(",")} == {"one", "two"}
    assert reg.get("/v2/a/manifests/two").content == body


def test_invalid_tag(reg: Reg) -> None:
    d, body, _ = reg.image("a")
    r = reg.push_manifest("a", ".hidden", body)
    assert r.status_code == 400 and error_code(r) == "TAG_INVALID"
    r = reg.push_manifest("a", "x" * 129, body)
    assert r.status_code == 400


def test_manifest_unknown(reg: Reg) -> None:
    r = reg.get("/v2/a/manifests/missing")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = reg.get("/v2/a/manifests/" + sha(b"random"))
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert reg.head("/v2/a/manifests/missing").status_code == 404


def test_manifest_too_large(reg: Reg) -> None:
    body = b'{"schemaVersion": 2, "annotations": {"a": "' + b"A" * (4 << 20) + b'"}}'
    r = reg.push_manifest("a", "big", body)
    assert r.status_code == 413 and error_code(r) == "SIZE_INVALID"


def test_large_manifest_under_limit(reg: Reg) -> None:
    annotations = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
    d, body, _ = reg.image("a", tag="large", extra={"annotations": annotations})
    assert reg.get("/v2/a/manifests/large").content == body


def test_delete_tag_and_manifest(reg: Reg) -> None:
    d, body, _ = reg.image("a", tag="v1")
    reg.c.put("/v2/a/manifests/v2", content=body, headers={"Content-Type": OCI_MANIFEST})
    r = reg.delete("/v2/a/manifests/v1")
    assert r.status_code == 202
    assert reg.get("/v2/a/manifests/v1").status_code == 404
    assert reg.get(f"/v2/a/manifests/{d}").status_code == 200
    r = reg.delete(f"/v2/a/manifests/{d}")
    assert r.status_code == 202
    assert reg.get(f"/v2/a/manifests/{d}").status_code == 404
    assert reg.get("/v2/a/manifests/v2").status_code == 404  # tags of a deleted manifest go too
    r = reg.delete(f"/v2/a/manifests/{d}")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert reg.delete("/v2/a/manifests/nosuchtag").status_code == 404


def _artifact(reg: Reg, repo: str, subject: tuple[str, bytes], artifact_type: str | None,
              annotations: dict[str, str] | None = None, index: bool = False) -> tuple[str, bytes, dict[str, Any]]:
    cfg = reg.push_blob(repo, b"{}")
    layer = reg.push_blob(repo, os.urandom(64))
    doc: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY_JSON, "digest": cfg, "size": 2},
        "layers": [{"mediaType": "application/vnd.example.sig", "digest": layer, "size": 64}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": len(subject[1])},
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
    if annotations:
        doc["annotations"] = annotations
    body = json.dumps(doc).encode()
    r = reg.push_manifest(repo, sha(body), body)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == subject[0]
    return sha(body), body, doc


def test_referrers(reg: Reg) -> None:
    sd, sb, _ = reg.image("r", tag="img")
    a1 = _artifact(reg, "r", (sd, sb), "application/vnd.example.sbom", {"k": "v"})
    a2 = _artifact(reg, "r", (sd, sb), "application/vnd.example.sig")
    a3 = _artifact(reg, "r", (sd, sb), None)  # artifactType falls back to the config media type
    r = reg.get(f"/v2/r/referrers/{sd}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    idx = r.json()
    assert idx["schemaVersion"] == 2 and idx["mediaType"] == OCI_INDEX
    by = {m["digest"]: m for m in idx["manifests"]}
    assert set(by) == {a1[0], a2[0], a3[0]}
    assert by[a1[0]] == {"mediaType": OCI_MANIFEST, "digest": a1[0], "size": len(a1[1]),
                         "artifactType": "application/vnd.example.sbom", "annotations": {"k": "v"}}
    assert by[a3[0]]["artifactType"] == EMPTY_JSON
    r = reg.get(f"/v2/r/referrers/{sd}?artifactType=application/vnd.example.sig")
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [a2[0]]
    assert "OCI-Filters-Applied" not in reg.get(f"/v2/r/referrers/{sd}").headers
    # deleting a referrer removes it from the list
    assert reg.delete(f"/v2/r/manifests/{a2[0]}").status_code == 202
    assert {m["digest"] for m in reg.get(f"/v2/r/referrers/{sd}").json()["manifests"]} == {a1[0], a3[0]}


def test_referrers_missing_subject_and_empty(reg: Reg) -> None:
    ghost = (sha(b"ghost"), b"ghost")
    a = _artifact(reg, "r", ghost, "application/vnd.example")
    assert [m["digest"] for m in reg.get(f"/v2/r/referrers/{ghost[0]}").json()["manifests"]] == [a[0]]
    r = reg.get(f"/v2/r/referrers/{sha(b'nothing')}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = reg.get("/v2/never/pushed/referrers/" + sha(b"x"))
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = reg.get("/v2/r/referrers/sha256:nope")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_index_with_subject(reg: Reg) -> None:
    sd, sb, _ = reg.image("r")
    d, b, _ = reg.image("r")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/vnd.example.list",
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(b)}],
             "subject": {"mediaType": OCI_MANIFEST, "digest": sd, "size": len(sb)}}
    r = reg.push_manifest("r", "idx", index)
    assert r.status_code == 201 and r.headers["OCI-Subject"] == sd
    [entry] = reg.get(f"/v2/r/referrers/{sd}").json()["manifests"]
    assert entry["mediaType"] == OCI_INDEX and entry["artifactType"] == "application/vnd.example.list"


def test_tag_list_and_pagination(reg: Reg) -> None:
    d, body, _ = reg.image("p")
    tags = sorted(f"t{i:02d}" for i in range(7))
    for t in tags:
        assert reg.push_manifest("p", t, body).status_code == 201
    r = reg.get("/v2/p/tags/list")
    assert r.json() == {"name": "p", "tags": tags}
    assert "Link" not in r.headers
    r = reg.get("/v2/p/tags/list?n=3")
    assert r.json()["tags"] == tags[:3]
    assert r.headers["Link"] == '</v2/p/tags/list?n=3&last=t02>; rel="next"'
    seen = []
    url = "/v2/p/tags/list?n=3"
    while url:
        r = reg.get(url)
        seen += r.json()["tags"]
        link = r.headers.get("Link")
        url = link[1:link.index(">")] if link else ""
    assert seen == tags
    assert reg.get("/v2/p/tags/list?last=t03").json()["tags"] == tags[4:]
    assert reg.get("/v2/p/tags/list?n=0").json()["tags"] == []
    r = reg.get("/v2/p/tags/list?n=x")
    assert r.status_code == 400 and error_code(r) == "PAGINATION_NUMBER_INVALID"
    assert reg.get("/v2/p/tags/list?n=-1").status_code == 400
    r = reg.get("/v2/unknown/tags/list")
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"


def test_catalog(reg: Reg) -> None:
    names = ["alpha", "beta/one", "beta/two", "gamma/x/y"]
    for n in names:
        reg.image(n, tag="latest")
    assert reg.get("/v2/_catalog").json() == {"repositories": names}
    r = reg.get("/v2/_catalog?n=2")
    assert r.json()["repositories"] == names[:2]
    assert r.headers["Link"] == '</v2/_catalog?n=2&last=beta%2Fone>; rel="next"'
    assert reg.get("/v2/_catalog?n=2&last=beta/one").json()["repositories"] == names[2:]


def test_names_and_routes(reg: Reg) -> None:
    for bad in ("UPPER", "a//b", "-a", "a_", "a/" + "b" * 300):
        r = reg.get(f"/v2/{bad}/tags/list")
        assert r.status_code == 400 and error_code(r) == "NAME_INVALID", bad
    # repository names may contain endpoint words
    d = reg.push_blob("x/blobs/manifests", b"data")
    assert reg.get(f"/v2/x/blobs/manifests/blobs/{d}").content == b"data"
    r = reg.get("/v2/a/unknown/endpoint")
    assert r.status_code == 404 and error_code(r) == "NOT_FOUND"
    r = reg.get("/other")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NOT_FOUND"
    r = reg.post("/v2/a/manifests/x")
    assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"
    r = reg.delete("/v2/")
    assert r.status_code == 405


def test_json_bodies_are_written_as_go_encodes_them(fsreg: Reg) -> None:
    """Errors, catalog, tag lists and referrers come out as registry:2's ``json.Encoder``: compact
    separators and a trailing newline (one encoder for every server: ``trustbox.errcode``)."""
    digest, _body, _doc = fsreg.image("team/app", tag="v1")
    answers = [
        fsreg.c.get("/v2/team/app/manifests/missing"),
        fsreg.c.get("/v2/_catalog"),
        fsreg.c.get("/v2/team/app/tags/list"),
        fsreg.c.get(f"/v2/team/app/referrers/{digest}"),
    ]
    for r in answers:
        assert r.content == go_json_line(json.loads(r.content)), r.content
    assert answers[0].status_code == 404 and answers[0].json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert answers[2].content == b'{"name":"team/app","tags":["v1"]}\n'
