"""Schema-driven fuzzing of both HTTP APIs with schemathesis, against the real server processes.

The OpenAPI descriptions in docs/openapi/ drive the generation (valid and invalid requests);
every response must be non-5xx, have a documented status code, and every 4xx (except HEAD and
the trust server's upstream-compatible bare 405) must carry the project's JSON error body.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error, status_code_conformance  # noqa: E402

from tests.reliability.crashlib import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TRUST_SCHEMA = schemathesis.openapi.from_path(ROOT / "docs/openapi/trust.yaml")
REGISTRY_SCHEMA = schemathesis.openapi.from_path(ROOT / "docs/openapi/registry.yaml")
EXAMPLES = int(os.environ.get("TRUSTBOX_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


def _header(response: Any, name: str) -> str:
    value = response.headers.get(name.lower(), response.headers.get(name, ""))
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


def _json_error_body(response: Any, case: Any, bare_405_ok: bool) -> None:
    status = response.status_code
    if not 400 <= status < 500 or case.method.upper() == "HEAD":
        return
    if bare_405_ok and status == 405:
        return  # notary-server (gorilla/mux) answers unknown methods with an empty 405
    ctype = _header(response, "content-type")
    assert ctype.startswith("application/json"), f"{status} without a JSON error body: {ctype!r}"
    body = json.loads(response.content)
    entries = body.get("errors") if isinstance(body, dict) else None
    assert isinstance(entries, list) and entries, f"{status} body is not an error envelope: {body!r}"
    for e in entries:
        assert isinstance(e.get("code"), str) and isinstance(e.get("message"), str), body


@schemathesis.check
def trust_json_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    _json_error_body(response, case, bare_405_ok=True)
    return None


@schemathesis.check
def registry_json_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    _json_error_body(response, case, bare_405_ok=False)
    return None


def _serve(args: list[str], env: dict[str, str], ready: str) -> Iterator[str]:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")} | env
    log = tempfile.TemporaryFile()  # not a pipe: nobody reads it while the server runs (access lines)
    proc = subprocess.Popen([sys.executable, "-m", "trustbox", "serve", *args, "--listen", f"127.0.0.1:{port}"],
                            env=full_env, stdout=subprocess.DEVNULL, stderr=log,
                            start_new_session=True)

    def logged() -> bytes:
        log.seek(0)
        return log.read()

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {logged().decode(errors='replace')}")
        try:
            if httpx.get(url + ready, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("server did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        err = logged()
        log.close()
        # an unhandled exception would be logged even if the answer hid it
        assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def trust_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("trust-fuzz")
    yield from _serve(["trust", "--db", f"sqlite:///{d}/trust.db", "--log-level", "error"],
                      {"TRUSTBOX_KEY_PASSPHRASE": "schemathesis fuzzing passphrase"}, "/_notary_server/health")


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("registry-fuzz")
    yield from _serve(["registry", "--storage", str(d / "store"), "--log-level", "error"], {}, "/v2/")


@TRUST_SCHEMA.parametrize()
@SETTINGS
def test_trust_api(case: Any, trust_url: str) -> None:
    response = case.call(base_url=trust_url, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance, trust_json_error_body])


@REGISTRY_SCHEMA.parametrize()
@SETTINGS
def test_registry_api(case: Any, registry_url: str) -> None:
    response = case.call(base_url=registry_url, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             registry_json_error_body])
