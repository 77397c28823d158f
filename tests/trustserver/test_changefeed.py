"""Changefeed: shape, paging semantics (incl. negatives), GUN filter, deletions, bad parameters."""

from __future__ import annotations

import hashlib
import json
import re

from tests.trustserver.ts_helpers import GUN, error, post, publish_new, tuf

OTHER = "example.com/other/repo"
CREATED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def feed(client, query: str, gun: str | None = None):
    path = f"/v2/{gun}/_trust/changefeed" if gun else "/v2/_trust/changefeed"
    r = client.get(f"{path}?{query}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    return json.loads(r.content), r.content


def setup_changes(client):
    repo = publish_new(client)  # change 1: GUN ts v1
    publish_new(client, OTHER)  # change 2: OTHER ts v1
    for v in (3, 4):  # changes 3, 4: GUN ts v2, v3
        assert post(client, GUN, {"targets": repo.make_targets(version=v), "snapshot": repo.make_snapshot(version=v)}).status_code == 200
    return repo


def test_shape_and_order(client):
    setup_changes(client)
    body, raw = feed(client, "change_id=0&records=10")
    assert list(body) == ["count", "records"]
    assert body["count"] == 4
    ids = [int(r["ID"]) for r in body["records"]]
    assert ids == sorted(ids) and len(set(ids)) == 4
    first = body["records"][0]
    assert list(first) == ["ID", "CreatedAt", "GUN", "Version", "SHA256", "Category"]
    assert isinstance(first["ID"], str) and CREATED.match(first["CreatedAt"])
    assert first["GUN"] == GUN and first["Version"] == 1 and first["Category"] == "update"
    ts1 = client.get(tuf(GUN, "1.timestamp.json")).content
    assert first["SHA256"] == hashlib.sha256(ts1).hexdigest()
    assert raw.startswith(b'{"count":4,"records":[{"ID":"')


def test_paging_forward_and_backward(client):
    setup_changes(client)
    all_ids = [r["ID"] for r in feed(client, "records=100")[0]["records"]]
    assert [r["ID"] for r in feed(client, f"change_id={all_ids[0]}&records=2")[0]["records"]] == all_ids[1:3]
    # newest end, backwards
    assert [r["ID"] for r in feed(client, "change_id=-1&records=-2")[0]["records"]] == all_ids[-2:]
    # a negative change_id alone also means "from the newest end"
    assert [r["ID"] for r in feed(client, "change_id=-1&records=2")[0]["records"]] == all_ids[-2:]
    # before a given change (exclusive), oldest first
    assert [r["ID"] for r in feed(client, f"change_id={all_ids[3]}&records=-2")[0]["records"]] == all_ids[1:3]
    # records=0 means the default page size
    assert feed(client, "records=0")[0]["count"] == 4
    # past the end
    assert feed(client, f"change_id={all_ids[-1]}&records=5")[1] == b'{"count":0,"records":null}'
    # empty because of the GUN filter: [] (upstream's filtered page)
    assert feed(client, "records=5", "example.com/none")[1] == b'{"count":0,"records":[]}'


def test_per_gun_filter_and_deletion(client):
    setup_changes(client)
    body, _ = feed(client, "records=10", GUN)
    assert [r["Version"] for r in body["records"]] == [1, 2, 3]
    assert {r["GUN"] for r in body["records"]} == {GUN}
    assert client.delete(tuf(OTHER, "")).status_code == 200
    body, _ = feed(client, "change_id=-1&records=-1")
    last = body["records"][0]
    assert (last["GUN"], last["Category"], last["Version"], last["SHA256"]) == (OTHER, "deletion", 0, "")
    # deleting an unknown GUN records nothing
    assert client.delete(tuf("example.com/never", "")).status_code == 200
    assert feed(client, "change_id=-1&records=-1")[0]["records"][0]["ID"] == last["ID"]


def test_empty_store(client):
    assert feed(client, "records=10")[1] == b'{"count":0,"records":null}'
    assert feed(client, "change_id=-1&records=-10", GUN)[1] == b'{"count":0,"records":null}'


def test_bad_parameters(client):
    r = client.get("/v2/_trust/changefeed?records=abc")
    assert (r.status_code, r.content) == (400, (
        b'{"errors":[{"code":"INVALID_PARAMETERS","message":"The parameters provided are not valid.",'
        b'"detail":"invalid records parameter: strconv.ParseInt: parsing \\"abc\\": invalid syntax"}]}\n'
    ))
    r = client.get("/v2/_trust/changefeed")
    assert error(r)["detail"] == 'invalid records parameter: strconv.ParseInt: parsing "": invalid syntax'
    r = client.get(f"/v2/{GUN}/_trust/changefeed?records=99999999999")
    assert error(r)["detail"].endswith(": value out of range")
    r = client.get("/v2/_trust/changefeed?records=5&change_id=xyz")
    assert r.status_code == 400 and error(r) == {
        "code": "INVALID_PARAMETERS", "message": "The parameters provided are not valid.", "detail": {}
    }
    r = client.get("/v2/_trust/changefeed?records=1.5")
    assert error(r)["code"] == "INVALID_PARAMETERS"
