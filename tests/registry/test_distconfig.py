"""registry:2's config.yml and REGISTRY_* overrides read into trustbox's registry configuration."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from trustbox.cli import cli
from trustbox.errors import ConfigError
from trustbox.registry.config import load_config
from trustbox.registry.distconfig import apply_environment, go_duration

from .conftest import build_reg

# Debian's /etc/docker/registry/config.yml (docker-registry 2.8), htpasswd path made a file
DEBIAN = """\
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: basic-realm
    path: {htpasswd}
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("")
    path = tmp_path / "config.yml"
    path.write_text(text.format(root=tmp_path / "data", htpasswd=htpasswd))
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Any:
    return load_config(write(tmp_path, text), {}, env or {})


def test_debian_default_config(tmp_path: Path) -> None:
    c = load(tmp_path, DEBIAN)
    assert c.layout == "registry2"
    assert c.storage == str(tmp_path / "data")
    assert c.listen == "0.0.0.0:5000"
    assert c.delete_enabled is True
    assert c.http_headers == {"X-Content-Type-Options": ["nosniff"]}
    assert c.htpasswd == str(tmp_path / "htpasswd") and c.htpasswd_realm == "basic-realm"
    assert c.log_fields == {"service": "registry"} and c.log_level == "info"
    assert (c.health_interval, c.health_threshold) == (10.0, 3)
    assert c.relative_urls is False  # registry:2 answers absolute Location URLs
    assert c.upload_idle_timeout == 168 * 3600  # uploadpurging's default age
    assert c.catalog_max_entries == 1000


def test_registry2_defaults_differ_from_trustbox(tmp_path: Path) -> None:
    c = load(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n")
    assert c.delete_enabled is False  # registry:2 refuses deletes unless storage.delete.enabled
    assert c.listen == "0.0.0.0:5000"


def test_environment_overrides_as_distribution_applies_them(tmp_path: Path) -> None:
    env = {
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "elsewhere"),
        "REGISTRY_HTTP_ADDR": "127.0.0.1:6000",
        "REGISTRY_STORAGE_DELETE_ENABLED": "false",
        "REGISTRY_LOG_LEVEL": "debug",
        "REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES": "true",
        "REGISTRY_HTTP_RELATIVEURLS": "true",
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "2h",
        "REGISTRY_HTTP_HEADERS": "{X-Frame-Options: [DENY]}",
        "UNRELATED": "x",
    }
    c = load(tmp_path, DEBIAN, env)
    assert c.storage == str(tmp_path / "elsewhere")
    assert c.listen == "127.0.0.1:6000"
    assert c.delete_enabled is False
    assert c.log_level == "debug"
    assert c.notify_include_references is True
    assert c.relative_urls is True
    assert c.upload_idle_timeout == 7200
    assert c.http_headers == {"X-Frame-Options": ["DENY"]}


def test_environment_map_keys_match_case_insensitively_and_new_ones_are_lowercased() -> None:
    doc: dict[str, Any] = {"storage": {"S3": {"Bucket": "a"}}}
    apply_environment(doc, {"REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE_S3_REGIONENDPOINT": "h:1"})
    assert doc["storage"]["S3"] == {"Bucket": "a", "bucket": "b", "regionendpoint": "h:1"}


def test_environment_replaces_a_whole_section_and_yaml_types_the_value() -> None:
    doc: dict[str, Any] = {"storage": {"filesystem": {"rootdirectory": "/a"}}}
    apply_environment(doc, {"REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_SECURE": "false",
                            "REGISTRY_STORAGE_S3_CHUNKSIZE": "10485760"})
    assert doc["storage"] == {"s3": {"secure": False, "chunksize": 10485760}}


def test_unknown_environment_variable_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    doc: dict[str, Any] = {}
    with caplog.at_level(logging.WARNING):
        apply_environment(doc, {"REGISTRY_NOSUCH_THING": "1", "REGISTRY_HTTP_NOSUCH": "1"})
    assert doc == {"http": {}}
    assert "REGISTRY_NOSUCH_THING" in caplog.text and "REGISTRY_HTTP_NOSUCH" in caplog.text


def test_a_second_storage_driver_from_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one storage driver.*filesystem, s3"):
        load(tmp_path, DEBIAN, {"REGISTRY_STORAGE_S3_BUCKET": "b"})


def test_s3_parameters(tmp_path: Path) -> None:
    text = ("version: 0.1\nstorage:\n  s3:\n    accesskey: AK\n    secretkey: SK\n    region: us-east-1\n"
            "    regionendpoint: 127.0.0.1:7480\n    secure: false\n    bucket: reg\n    rootdirectory: /r2/root\n"
            "    v4auth: true\n    chunksize: 10485760\n    encrypt: true\n  redirect:\n    disable: true\n")
    c = load(tmp_path, text)
    assert c.storage == "s3://reg/r2/root"
    assert c.s3_endpoint_url == "http://127.0.0.1:7480" and c.s3_path_style is True
    assert (c.s3_access_key, c.s3_secret_key, c.s3_region) == ("AK", "SK", "us-east-1")
    assert c.s3_chunk_size == 10 << 20 and c.s3_sse == "AES256"


@pytest.mark.parametrize(("snippet", "named"), [
    ("storage:\n  azure:\n    accountname: a\n", "storage.azure"),
    ("storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    v4auth: false\n", "storage.s3.v4auth"),
    ("storage:\n  s3:\n    bucket: b\n    region: us-east-1\n    bogus: 1\n", "storage.s3.bogus"),
    ("middleware:\n  storage:\n    - name: cloudfront\n", "middleware"),
    ("http:\n  debug:\n    addr: :5001\n", "http.debug"),
    ("http:\n  tls:\n    certificate: c\n    key: k\n    clientcas: [ca.pem]\n", "http.tls.clientcas"),
    ("http:\n  net: unix\n", "http.net"),
    ("auth:\n  silly:\n    realm: r\n    service: s\n", "auth.silly"),
    ("validation:\n  disabled: true\n", "validation.disabled"),
    ("validation:\n  enabled: false\n  disabled: true\n", "validation.disabled"),
    ("log:\n  hooks:\n    - type: mail\n", "log.hooks"),
    ("proxy:\n  remoteurl: https://registry-1.docker.io\n", "proxy"),
    ("compatibility:\n  schema1:\n    enabled: true\n", "compatibility.schema1.enabled"),
    ("redis:\n  addr: localhost:6379\n", "redis"),
    ("health:\n  tcp:\n    - addr: db:5432\n", "health.tcp"),
])
def test_options_trustbox_cannot_honour_are_refused_by_name(tmp_path: Path, snippet: str, named: str) -> None:
    base = "version: 0.1\n"
    if not snippet.startswith("storage"):
        base += "storage:\n  filesystem:\n    rootdirectory: {root}\n"
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load(tmp_path, base + snippet)


def test_wrong_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported version"):
        load(tmp_path, "version: 0.2\nstorage:\n  filesystem: {{}}\n")


def test_cli_reports_a_refused_option_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, DEBIAN + "middleware:\n  registry:\n    - name: redirect\n")
    r = CliRunner().invoke(cli, ["serve", "registry", "--config", str(path)])
    assert r.exit_code != 0
    assert "registry:2 option middleware is not supported by trustbox" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10.0), ("1h30m", 5400.0), ("300ms", 0.3), ("1.5h", 5400.0), ("0", 0.0), ("2m3.5s", 123.5),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text, "x") == pytest.approx(seconds)


def test_go_duration_integers_are_nanoseconds_and_junk_is_refused() -> None:
    assert go_duration(2_000_000_000, "x") == 2.0
    for bad in ("10", "s", "1x", "1h 2m", True):
        with pytest.raises(ConfigError, match="x"):
            go_duration(bad, "x")


def test_notification_endpoints_get_distribution_defaults(tmp_path: Path) -> None:
    text = ("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
            "notifications:\n  events:\n    includereferences: true\n  endpoints:\n"
            "    - name: a\n      url: http://hooks.example/a\n      headers:\n        Authorization: [Bearer x]\n"
            "      ignoredmediatypes: [application/octet-stream]\n      ignore:\n        actions: [pull]\n"
            "    - name: off\n      url: http://hooks.example/b\n      disabled: true\n")
    c = load(tmp_path, text)
    assert c.notify_include_references is True
    assert c.notifications == [{
        "name": "a", "url": "http://hooks.example/a", "headers": {"Authorization": ["Bearer x"]},
        "timeout": 1.0, "threshold": 10, "backoff": 1.0,
        "ignored_media_types": ["application/octet-stream"], "ignored_actions": ["pull"],
    }]


def test_gc_reads_registry2_config(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n"
                           "    enabled: true\n")
    reg = build_reg({"storage": str(tmp_path / "data"), "layout": "registry2", "delete_enabled": True})
    d = reg.push_blob("a", b"collect me")
    assert reg.delete(f"/v2/a/blobs/{d}").status_code == 202
    r = CliRunner().invoke(cli, ["registry", "gc", "--config", str(path), "--min-age", "0"])
    assert r.exit_code == 0, r.output
    assert f"removed blob {d}" in r.output
    hexd = d.split(":")[1]
    assert not (tmp_path / "data/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data").exists()


def test_validation_enabled_false_alone_keeps_validation_as_registry2(tmp_path: Path) -> None:
    c = load(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
                       "validation:\n  enabled: false\n  manifests:\n    urls:\n      allow: ['^https://']\n")
    assert c.manifest_urls_checked is True and c.manifest_urls_allow == ["^https://"]
    c = load(tmp_path, "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
                       "validation:\n  enabled: true\n  disabled: true\n")
    assert c.manifest_urls_checked is True


def test_header_values_keep_their_text(tmp_path: Path) -> None:
    text = ("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
            "http:\n  headers:\n    X-A: [yes, 1.0, 'no']\n"
            "notifications:\n  endpoints:\n    - name: e\n      url: http://h/\n      headers:\n        X-B: [on]\n")
    c = load(tmp_path, text, {"REGISTRY_HTTP_HEADERS_X-C": "[true, 010]"})
    assert c.http_headers == {"X-A": ["yes", "1.0", "no"], "x-c": ["true", "010"]}
    assert c.notifications[0]["headers"] == {"X-B": ["on"]}


def test_http_section(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    text = ("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"
            f"http:\n  addr: '[::1]:5443'\n  host: https://registry.example/\n  prefix: /reg/\n"
            f"  tls:\n    certificate: {tmp_path / 'c.pem'}\n    key: {tmp_path / 'k.pem'}\n    minimumtls: tls1.3\n"
            "  http2:\n    disabled: true\n  draintimeout: 60s\n  secret: s\n")
    c = load(tmp_path, text)
    assert c.host_port() == ("::1", 5443)
    assert (c.http_host, c.http_prefix) == ("https://registry.example", "/reg")
    assert (c.tls_cert, c.tls_key, c.tls_min_version) == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), "1.3")
    assert c.http1_only is True
    with pytest.raises(ConfigError, match=r"http\.tls\.minimumtls: tls1\.1"):
        load(tmp_path, text.replace("tls1.3", "tls1.1"))
