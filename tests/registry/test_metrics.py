"""The registry's Prometheus metrics: requests by route and status, bytes, quarantine, sessions,
policy refusals; /metrics open while the API needs auth."""

from __future__ import annotations

import os
import re
from pathlib import Path

import bcrypt

from trustbox.registry.metrics import RegistryMetrics, route_of
from trustbox.registry.names import parse_digest

from .conftest import Reg, build_reg


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value (fails when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search("^" + re.escape(name + (f"{{{want}}}" if labels else "")) + r" (\S+)$", text, re.M)
    assert m is not None, f"{name}{labels} not in:\n{text}"
    return float(m.group(1))


def test_requests_bytes_latency_sessions_quarantine(fsreg: Reg) -> None:
    data = os.urandom(5000)
    d = fsreg.push_blob("team/app", data)
    assert fsreg.get(f"/v2/team/app/blobs/{d}").content == data
    fsreg.get("/v2/team/app/manifests/nope")
    r = fsreg.post("/v2/team/app/blobs/uploads/")
    assert r.status_code == 202
    text = fsreg.get("/metrics").text
    assert metric(text, "trustbox_registry_http_requests_total", route="blobs", method="GET", code="200") == 1
    assert metric(text, "trustbox_registry_http_requests_total", route="manifests", method="GET", code="404") == 1
    assert metric(text, "trustbox_registry_http_requests_total", route="blobs/uploads", method="POST", code="201") == 1
    assert metric(text, "trustbox_registry_http_request_bytes_total", route="blobs/uploads") == 5000
    assert metric(text, "trustbox_registry_http_response_bytes_total", route="blobs") == 5000
    assert metric(text, "trustbox_registry_http_request_duration_seconds_count", route="blobs") == 1
    assert metric(text, "trustbox_registry_upload_sessions") == 1
    assert metric(text, "trustbox_registry_blobs_quarantined_total") == 0
    assert "# TYPE trustbox_registry_policy_refusals_total counter" in text
    assert "team/app" not in text  # repository names are never labels
    # a blob that fails verification on read is quarantined and counted
    fsreg.driver.write(fsreg.paths.blob_key(parse_digest(d)), data[:-1] + bytes([data[-1] ^ 1]))
    assert fsreg.get(f"/v2/team/app/blobs/{d}").status_code == 404
    text = fsreg.get("/metrics").text
    assert metric(text, "trustbox_registry_blobs_quarantined_total") == 1
    upload = r.headers["location"]
    assert fsreg.delete(upload).status_code == 204
    assert metric(fsreg.get("/metrics").text, "trustbox_registry_upload_sessions") == 0


def test_policy_refusals_counter(fsreg: Reg) -> None:
    m: RegistryMetrics = fsreg.c.app.state.registry.metrics
    m.declare_rules(["signed-prod"])
    assert metric(fsreg.get("/metrics").text, "trustbox_registry_policy_refusals_total", rule="signed-prod") == 0
    m.policy_refused("signed-prod")
    m.policy_refused('odd "rule"\\')
    text = fsreg.get("/metrics").text
    assert metric(text, "trustbox_registry_policy_refusals_total", rule="signed-prod") == 1
    assert metric(text, "trustbox_registry_policy_refusals_total", rule='odd \\"rule\\"\\\\') == 1


def test_route_labels() -> None:
    assert route_of("/v2/") == "base" and route_of("/v2/_catalog") == "catalog"
    assert route_of("/v2/a/b/tags/list") == "tags/list" and route_of("/v2/a/blobs/uploads/x") == "blobs/uploads"
    assert route_of("/v2/a/referrers/sha256:ab") == "referrers" and route_of("/other") == "other"


def test_metrics_open_while_api_needs_auth(tmp_path: Path) -> None:
    (tmp_path / "htpasswd").write_text(f"u:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n")
    reg = build_reg({"storage": str(tmp_path / "store")},
                    htpasswd=str(tmp_path / "htpasswd"))
    assert reg.get("/v2/").status_code == 401
    r = reg.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric(r.text, "trustbox_registry_http_requests_total", route="base", method="GET", code="401") == 1
    assert reg.head("/metrics").content == b""
