"""The read-only web page (/_trustbox/) and the trust server's Prometheus metrics, through ASGI."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path

import bcrypt
import pytest

from tests.helpers.simulator import target
from tests.helpers.trust_page import SOON_DAYS, XSS_TAG, manifest, publish_page_repo
from tests.trustserver.ts_asgi import ASGIClient, raw_call
from tests.trustserver.ts_env import Clock, make_app
from tests.trustserver.ts_helpers import GUN, post, publish_new
from trustbox.promtext import escape_label, format_value
from trustbox.trustserver.inventory import InventoryCache, read_inventory, summarise
from trustbox.trustserver.server import with_auth
from trustbox.trustserver.webpage import expiry_class, registry_name

DAY = 86400


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text`` (fails when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name + (f"{{{want}}}" if labels else "")) + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    assert m is not None, f"{name}{labels} not in metrics:\n{text}"
    return float(m.group(1))


def row(html: str, attr: str, value: str) -> str:
    """The ``<tr data-attr="value">`` row of a page."""
    m = re.search(rf'<tr data-{attr}="{re.escape(value)}">(.*?)</tr>', html)
    assert m is not None, f"no row {attr}={value!r} in page"
    return m.group(1)


def test_repository_page_roles_tags_delegation_and_warning(client):
    _repo, dkey = publish_page_repo(client, GUN)
    r = client.get(f"/_trustbox/repo/{GUN}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = r.text
    targets = row(page, "role", "targets")
    assert 'class="soon"' in targets
    assert f"in {SOON_DAYS - 1} days" in targets or f"in {SOON_DAYS} days" in targets
    assert 'class="ok"' in row(page, "role", "root")
    assert 'class="managed"' in row(page, "role", "timestamp")  # the server's key: re-signed when due
    releases = row(page, "role", "targets/releases")
    assert dkey.public_key().keyid in releases and 'class="ok"' in releases
    v1 = row(page, "tag", "v1")
    assert target(manifest("v1")).hashes["sha256"].hex() in v1 and ">targets<" in v1
    v2 = row(page, "tag", "v2")
    assert target(manifest("v2")).hashes["sha256"].hex() in v2 and "targets/releases" in v2
    assert "No registry configured" in page


def test_expired_role_is_red(client, clock: Clock):
    publish_page_repo(client, GUN)
    clock.offset = timedelta(days=SOON_DAYS + 1)
    page = client.get(f"/_trustbox/repo/{GUN}").text
    assert 'class="expired"' in row(page, "role", "targets")
    assert "(expired)" in row(page, "role", "targets")


def test_tag_name_xss_is_escaped(client):
    publish_page_repo(client, GUN)
    page = client.get(f"/_trustbox/repo/{GUN}").text
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert XSS_TAG not in page


def test_index_lists_repositories(client):
    publish_page_repo(client, GUN)
    publish_new(client, "example.com/other")
    page = client.get("/_trustbox/").text
    assert f'href="/_trustbox/repo/{GUN}"' in page and "example.com/other" in page
    assert "2 repositories" in page
    assert client.get("/_trustbox").status_code == 200


@pytest.mark.parametrize(
    "path,status",
    [
        ("/_trustbox/repo/example.com/unknown", 404),
        ("/_trustbox/repo/", 404),
        ("/_trustbox/nothing-here", 404),
        ("/_trustbox/repo/example.com/%2e%2e/x", 400),
        ("/_trustbox/repo/a b<c>", 400),
        ("/_trustbox/repo/example.com//x", 400),
        ("/_trustbox/repo/" + "a" * 300, 400),
        ("/_trustbox/repo/" + "a/" * 600, 400),
    ],
)
def test_bad_input_gets_html_error_page(client, path, status):
    publish_page_repo(client, GUN)
    r = client.get(path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert f"<h1>{status} " in r.text and "Traceback" not in r.text
    assert "<script" not in r.text


@pytest.mark.parametrize("path", ["/_trustbox/repo/example.com/../../etc/passwd", "/_trustbox/repo/../x",
                                  "/_trustbox/repo/./x", "/_trustbox/repo/x\n<b>", "/_trustbox/repo/x\x00y"])
def test_traversal_and_control_characters_unnormalised(app, path):
    status, headers, body = raw_call(app, "GET", path)
    assert status == 400 and headers[b"content-type"] == b"text/html; charset=utf-8"
    assert b"<b>" not in body and b"\x00" not in body


def test_metrics_expiry_updates_rejections_signatures(client):
    publish_page_repo(client, GUN)
    text = client.get("/metrics").text
    assert metric(text, "trustbox_trust_repositories") == 1
    soon = metric(text, "trustbox_trust_earliest_expiry_seconds", role="targets")
    assert (SOON_DAYS - 1) * DAY < soon <= SOON_DAYS * DAY
    assert metric(text, "trustbox_trust_earliest_expiry_seconds", role="delegation") > 1000 * DAY
    assert metric(text, "trustbox_trust_earliest_expiry_seconds", role="root") > 3000 * DAY
    assert metric(text, "trustbox_trust_updates_total") == 1
    assert metric(text, "trustbox_trust_signatures_total", role="timestamp") >= 1
    # a refused update: counted by its error code
    r = post(client, GUN, {"targets": b"{not json"})
    assert r.status_code == 400
    code = r.json()["errors"][0]["code"]
    text = client.get("/metrics").text
    assert metric(text, "trustbox_trust_update_rejections_total", reason=code) == 1
    assert metric(text, "trustbox_trust_updates_total") == 1
    assert metric(text, "trustbox_http_requests_total", handler="UpdateTUF", code="200") == 1


def test_metrics_page_is_valid_exposition(client):
    publish_page_repo(client, GUN)
    client.get(f"/v2/{GUN}/_trust/tuf/timestamp.json")
    text = client.get("/metrics").text
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+Inf]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert metric(text, "trustbox_http_request_duration_seconds_count", handler="GetRole") >= 1


def test_inventory_cache_rereads_after_writes_but_not_more_often(tmp_path: Path):
    now = [0.0]
    app = make_app({"db": f"sqlite:///{tmp_path}/t.db"})
    try:
        cache = InventoryCache(app.service.storage, min_age=5, max_age=60, clock=lambda: now[0])
        with ASGIClient(app) as c:
            assert cache.get().repos == []
            publish_new(c)
            cache.invalidate()
            assert cache.get().repos == []  # within min_age: the cached scan
            now[0] = 6
            assert [r.gun for r in cache.get().repos] == [GUN]
            publish_new(c, "example.com/b")
            now[0] = 30
            assert len(cache.get().repos) == 1  # no write seen by this cache, not yet max_age
            now[0] = 67
            assert len(cache.get().repos) == 2
    finally:
        app.close()


def test_rescan_reuses_unchanged_repositories(tmp_path: Path):
    app = make_app({"db": f"sqlite:///{tmp_path}/t.db"})
    try:
        with ASGIClient(app) as c:
            repo = publish_new(c)
            publish_new(c, "example.com/b")
            first, prev = read_inventory(app.service.storage)
            post(c, GUN, {"targets": repo.make_targets({"v9": target(b"nine")}, version=3),
                          "snapshot": repo.make_snapshot(version=3)})
            second, _ = read_inventory(app.service.storage, previous=prev)
        b1, a1 = first.repos
        b2, a2 = second.repos
        assert b2 is b1  # unchanged: not read or parsed again
        assert a2 is not a1 and "v9" in [t.name for t in a2.targets] and "v9" not in [t.name for t in a1.targets]
    finally:
        app.close()


def test_summarise_lists_unreadable_documents():
    repo = summarise("g", {"root": b"not json", "targets": b"{}"})
    assert len(repo.problems) == 2 and repo.roles == {}


def test_helpers():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert expiry_class(now, now, timedelta(days=30)) == "expired"
    assert expiry_class(now + timedelta(days=29), now, timedelta(days=30)) == "soon"
    assert expiry_class(now + timedelta(days=31), now, timedelta(days=30)) == "ok"
    assert registry_name("reg.example:5000/team/app", "https://reg.example:5000") == "team/app"
    assert registry_name("team/app", "https://reg.example:5000") == "team/app"
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert format_value(3) == "3" and format_value(float("inf")) == "+Inf" and format_value(0.5) == "0.5"


# -- auth: the page needs pull on its repository; /metrics stays open like notary-server's ----------


def test_page_behind_auth(tmp_path: Path):
    (tmp_path / "htpasswd").write_text(
        "".join(f"{u}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n" for u in ("alice", "bob"))
    )
    (tmp_path / "rules.toml").write_text(
        '[[rule]]\nsubject = "alice"\nrepository = "*"\nactions = ["*"]\n'
        '[[rule]]\nsubject = "alice"\ntype = "registry"\nrepository = "catalog"\nactions = ["*"]\n'
        '[[rule]]\nsubject = "bob"\nrepository = "example.com/other"\nactions = ["pull"]\n'
    )
    app = make_app({"db": f"sqlite:///{tmp_path}/t.db"}, htpasswd=str(tmp_path / "htpasswd"),
                   auth_rules=str(tmp_path / "rules.toml"))
    try:
        def basic(user: str) -> dict[str, str]:
            return {"Authorization": "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()}

        with ASGIClient(with_auth(app, app.config)) as c:
            c.headers.update(basic("alice"))
            publish_page_repo(c, GUN)
            del c.headers["Authorization"]
            page = f"/_trustbox/repo/{GUN}"
            r = c.get(page)
            assert r.status_code == 401 and "basic" in r.headers["www-authenticate"].lower()
            assert c.get(page, headers=basic("alice")).status_code == 200
            assert c.get(page, headers=basic("bob")).status_code == 403
            assert c.get("/_trustbox/", headers=basic("bob")).status_code == 403
            assert c.get("/_trustbox/", headers=basic("alice")).status_code == 200
            assert c.get("/metrics").status_code == 200
    finally:
        app.close()
