"""Garbage collection, configuration, CLI wiring, basic auth, read-only and delete switches."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from click.testing import CliRunner

from trustbox.cli import cli
from trustbox.errors import ConfigError
from trustbox.registry.config import load_config
from trustbox.registry.gc import collect
from trustbox.registry.names import parse_digest

from .conftest import Reg, build_reg, error_code


def test_gc_removes_only_unreferenced(storage_spec: dict[str, Any]) -> None:
    reg = build_reg(storage_spec)
    keep_d, keep_body, keep_doc = reg.image("a", tag="keep", layers=2)
    gone_d, _, gone_doc = reg.image("a", tag="gone", layers=1)
    orphan = reg.push_blob("a", b"orphan layer")
    linked_only = reg.push_blob("b", b"linked, no manifest yet")
    assert reg.delete(f"/v2/a/blobs/{orphan}").status_code == 202
    assert reg.delete(f"/v2/a/manifests/{gone_d}").status_code == 202
    for layer in gone_doc["layers"]:
        assert reg.delete(f"/v2/a/blobs/{layer['digest']}").status_code == 202
    reg.delete(f"/v2/a/blobs/{gone_doc['config']['digest']}")

    young = collect(reg.driver, dry_run=False)  # default min-age protects fresh blobs
    assert young.removed == [] and young.young > 0

    dry = collect(reg.driver, dry_run=True, min_age=0)
    expected = {orphan, gone_d, gone_doc["layers"][0]["digest"], gone_doc["config"]["digest"]}
    assert set(dry.removed) == expected
    assert reg.driver.stat(reg.paths.blob_key(parse_digest(orphan))) is not None

    report = collect(reg.driver, min_age=0)
    assert set(report.removed) == expected
    for d in expected:
        assert reg.driver.stat(reg.paths.blob_key(parse_digest(d))) is None
    # everything still referenced is intact and pullable
    assert reg.get("/v2/a/manifests/keep").content == keep_body
    for layer in keep_doc["layers"]:
        assert reg.get(f"/v2/a/blobs/{layer['digest']}").status_code == 200
    assert reg.get(f"/v2/b/blobs/{linked_only}").status_code == 200


def test_gc_cli(tmp_path: Path) -> None:
    store = tmp_path / "store"
    reg = build_reg({"storage": str(store)})
    d = reg.push_blob("a", b"to be collected")
    reg.delete(f"/v2/a/blobs/{d}")
    runner = CliRunner()
    r = runner.invoke(cli, ["registry", "gc", "--storage", str(store), "--dry-run", "--min-age", "0"])
    assert r.exit_code == 0, r.output
    assert f"would remove blob {d}" in r.output
    r = runner.invoke(cli, ["registry", "gc", "--storage", str(store), "--min-age", "0"])
    assert f"removed blob {d}" in r.output
    assert not (store / reg.paths.blob_key(parse_digest(d))).exists()


def test_config_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "reg.toml"
    toml.write_text('listen = "0.0.0.0:6000"\nstorage = "/srv/a"\nverify-blobs = "first"\nworkers = 2\n')
    cfg = load_config(toml, {}, {})
    assert (cfg.listen, cfg.storage, cfg.verify_blobs, cfg.workers) == ("0.0.0.0:6000", "/srv/a", "first", 2)
    cfg = load_config(toml, {}, {"TRUSTBOX_STORAGE": "/srv/env", "TRUSTBOX_DELETE_ENABLED": "false"})
    assert cfg.storage == "/srv/env" and cfg.delete_enabled is False
    cfg = load_config(toml, {"storage": "/srv/cli"}, {"TRUSTBOX_STORAGE": "/srv/env"})
    assert cfg.storage == "/srv/cli"
    js = tmp_path / "reg.json"
    js.write_text(json.dumps({"registry": {"listen": "127.0.0.1:7000"}}))
    assert load_config(js, {}, {}).host_port() == ("127.0.0.1", 7000)


@pytest.mark.parametrize("content,overrides", [
    ('verify_blobs = "sometimes"', {}),
    ('bogus = 1', {}),
    ('listen = "nope"', {}),
    ('workers = "many"', {}),
    ("not toml [", {}),
    ("", {"tls_cert": "/nonexistent.pem", "tls_key": "/nonexistent.key"}),
    ("", {"tls_cert": "/etc/hostname"}),
])
def test_config_errors(tmp_path: Path, content: str, overrides: dict[str, Any]) -> None:
    f = tmp_path / "c.toml"
    f.write_text(content)
    with pytest.raises(ConfigError):
        load_config(f, overrides, {})


def test_cli_bad_option_is_one_line_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["serve", "registry", "--listen", "nowhere", "--storage", str(tmp_path)])
    assert r.exit_code != 0
    assert "invalid listen address" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["serve", "registry", "--storage", "ftp://x"])
    assert r.exit_code != 0 and "unknown storage scheme" in r.output


def _htpasswd(tmp_path: Path) -> Path:
    p = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
    p.write_text(f"alice:{hashed}\n")
    return p


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_htpasswd_auth(tmp_path: Path) -> None:
    reg = build_reg({"storage": str(tmp_path / "s")}, htpasswd=str(_htpasswd(tmp_path)))
    r = reg.get("/v2/")
    assert r.status_code == 401 and error_code(r) == "UNAUTHORIZED"
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert reg.get("/v2/", headers=_basic("alice", "wrong")).status_code == 401
    assert reg.get("/v2/", headers=_basic("bob", "s3cret")).status_code == 401
    assert reg.get("/v2/", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert reg.get("/v2/", headers={"Authorization": "Bearer x"}).status_code == 401
    assert reg.get("/v2/", headers=_basic("alice", "s3cret")).status_code == 200
    assert reg.get("/v2/", headers=_basic("alice", "s3cret")).status_code == 200  # cached path
    assert reg.head("/v2/a/blobs/sha256:" + "0" * 64).status_code == 401


def test_read_only_and_delete_disabled(tmp_path: Path) -> None:
    spec = {"storage": str(tmp_path / "s")}
    reg = build_reg(spec, delete_enabled=False)
    d = reg.push_blob("a", b"x")
    r = reg.delete(f"/v2/a/blobs/{d}")
    assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"
    ro = build_reg(spec, read_only=True)
    r = ro.post("/v2/a/blobs/uploads/")
    assert r.status_code == 403 and error_code(r) == "DENIED"
    assert ro.get(f"/v2/a/blobs/{d}").status_code == 200


def test_never_a_500_for_garbage(reg: Reg) -> None:
    d = reg.push_blob("a", os.urandom(10))
    loc = reg.post("/v2/a/blobs/uploads/").headers["Location"]
    probes = [
        ("GET", f"/v2/a/blobs/{d}", {"Range": "bytes=abc"}),
        ("GET", f"/v2/a/blobs/{d}", {"Range": "bytes=1-2,5-6"}),
        ("PATCH", loc, {"Content-Range": "99999999999999999999-1"}),
        ("PUT", loc + "?digest=%00", {}),
        ("POST", "/v2/a/blobs/uploads/?mount=garbage&from=???", {}),
        ("PUT", "/v2/a/manifests/t", {"Content-Type": "\u00e9"}),
        ("GET", "/v2/a/tags/list?n=99999999999999999999999", {}),
        ("GET", "/v2/a/referrers/" + "x" * 5000, {}),
        ("DELETE", "/v2/a/manifests/sha512:abc", {}),
        ("PUT", "/v2/a/blobs/uploads/?digest=sha256:" + "0" * 64, {"Content-Length": "-5"}),
    ]
    for method, url, headers in probes:
        r = reg.request(method, url, headers={k: v.encode("utf-8") for k, v in headers.items()})
        assert r.status_code < 500, (method, url, r.status_code, r.text)
        if r.status_code >= 400 and r.content:
            assert "errors" in r.json()
