"""The web page in a real browser: headless Chromium (Debian ``chromium``) driven by Playwright,
against real ``trustbox serve trust`` (htpasswd auth, --ui-registry-url) and ``trustbox serve
registry`` processes. Saves a screenshot under the test's tmp dir and ``test-artifacts/``."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest

from tests.helpers.net import free_port, stop_process, wait_http
from tests.helpers.trust_page import SOON_DAYS, XSS_TAG, manifest, publish_page_repo

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
AMBER = "rgb(255, 228, 168)"
RED = "rgb(248, 208, 208)"
GREEN = "rgb(216, 240, 216)"

if not os.path.exists(CHROMIUM):
    pytest.skip("chromium (Debian package chromium) is not installed", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright (pip install playwright) is missing")


def _start(args: list[str], log: Any) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    return subprocess.Popen([sys.executable, "-m", "trustbox", "serve", *args], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    """A registry with tags v1, v2 and ``unsigned``; a trust server with auth whose repository signs v1
    (targets, expiring in 10 days), v2 (delegation targets/releases) and an XSS-named target."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "htpasswd").write_text(f"alice:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n")
        reg_port, trust_port = free_port(), free_port()
        reg_url, trust_url = f"http://127.0.0.1:{reg_port}", f"http://127.0.0.1:{trust_port}"
        with open(tmp / "registry.log", "wb") as reg_log, open(tmp / "trust.log", "wb") as trust_log:
            reg = _start(["registry", "--listen", f"127.0.0.1:{reg_port}", "--storage", str(tmp / "reg")], reg_log)
            trust = _start(["trust", "--listen", f"127.0.0.1:{trust_port}", "--db", f"sqlite:///{tmp}/t.db",
                            "--insecure-dev-keys", "--htpasswd", str(tmp / "htpasswd"),
                            "--ui-registry-url", reg_url], trust_log)
            try:
                wait_http(f"{reg_url}/v2/", reg, tmp / "registry.log")
                wait_http(f"{trust_url}/_notary_server/health", trust, tmp / "trust.log")
                with httpx.Client(base_url=reg_url) as rc:
                    cfg = b"{}"
                    r = rc.post(f"/v2/team/app/blobs/uploads/?digest=sha256:{hashlib.sha256(cfg).hexdigest()}",
                                content=cfg)
                    assert r.status_code == 201, r.text
                    for tag in ("v1", "v2", "unsigned"):
                        r = rc.put(f"/v2/team/app/manifests/{tag}", content=manifest(tag),
                                   headers={"content-type": "application/vnd.oci.image.manifest.v1+json"})
                        assert r.status_code == 201, r.text
                gun = f"127.0.0.1:{reg_port}/team/app"
                with httpx.Client(base_url=trust_url, auth=("alice", "pw"), timeout=30) as tc:
                    publish_page_repo(tc, gun)
                yield {"trust": trust_url, "registry": reg_url, "gun": gun, "tmp": tmp}
            finally:
                stop_process(trust, group=True)
                stop_process(reg, group=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the Debian package (no browser download)."""
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _cell_background(page: Any, selector: str) -> str:
    return str(page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor"))


def test_repository_page_in_chromium(stack: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    context = browser.new_context(http_credentials={"username": "alice", "password": "pw"},
                                  viewport={"width": 1400, "height": 900})
    dialogs: list[str] = []
    page = context.new_page()
    page.on("dialog", lambda dlg: (dialogs.append(dlg.message), dlg.dismiss()))
    gun = stack["gun"]
    response = page.goto(f"{stack['trust']}/_trustbox/repo/{gun}")
    assert response is not None and response.status == 200
    assert page.title() == f"{gun} - trustbox"
    # expiry colours as the browser renders them: targets (10 days) amber, root green
    assert _cell_background(page, 'tr[data-role="targets"] td[data-expiry]') == AMBER
    assert _cell_background(page, 'tr[data-role="root"] td[data-expiry]') == GREEN
    assert "server-managed" in page.inner_text('tr[data-role="timestamp"]')
    assert _cell_background(page, 'tr[data-role="targets/releases"] td[data-expiry]') == GREEN
    targets_text = page.inner_text('tr[data-role="targets"]')
    assert f"in {SOON_DAYS - 1} days" in targets_text or f"in {SOON_DAYS} days" in targets_text
    # signed / unsigned: the registry's view next to the trust data's
    def status(tag: str) -> str:
        return str(page.inner_text(f'tr[data-tag="{tag}"] td:last-child'))

    assert status("v1") == "signed" and status("v2") == "signed"
    assert status("unsigned") == "unsigned"
    v1_digest = "sha256:" + hashlib.sha256(manifest("v1")).hexdigest()
    assert page.inner_text('tr[data-tag="v1"]').count(v1_digest) == 2  # trust data and registry agree
    assert "targets/releases" in page.inner_text('tr[data-tag="v2"]')
    # the XSS-named target is shown as text and runs nothing
    assert XSS_TAG in page.inner_text("#tags")
    assert page.eval_on_selector_all("#tags script, #tags img", "els => els.length") == 0
    assert dialogs == []
    # delegation key shown with its role
    assert re.search(r"[0-9a-f]{64} \(ecdsa\)", page.inner_text('tr[data-role="targets/releases"]'))
    shot = tmp_path / "trust-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    kept = ARTIFACTS / "trust-page.png"
    shutil.copyfile(shot, kept)
    print(f"\nscreenshot: {shot} (copied to {kept})")
    # the index links to the repository
    page.goto(f"{stack['trust']}/_trustbox/")
    page.click(f"text={gun}")
    assert page.url.endswith(f"/_trustbox/repo/{gun}") and page.inner_text("h1") == gun
    context.close()


def test_error_pages_and_auth_in_chromium(stack: dict[str, Any], browser: Any) -> None:
    context = browser.new_context(http_credentials={"username": "alice", "password": "pw"})
    page = context.new_page()
    r = page.goto(f"{stack['trust']}/_trustbox/repo/127.0.0.1/nobody/here")
    assert r is not None and r.status == 404
    assert page.inner_text("h1") == "404 Not found"
    r = page.goto(f"{stack['trust']}/_trustbox/repo/bad%20name%3Cb%3E")
    assert r is not None and r.status == 400 and page.inner_text("h1") == "400 Bad request"
    assert page.eval_on_selector_all("b", "els => els.length") == 0
    context.close()
    # without credentials: the Basic challenge (Chromium would prompt; its request API shows the answer)
    anonymous = browser.new_context()
    r = anonymous.request.get(f"{stack['trust']}/_trustbox/repo/{stack['gun']}")
    assert r.status == 401 and r.headers["www-authenticate"].lower().startswith("basic")
    anonymous.close()


def test_metrics_show_the_expiring_role(stack: dict[str, Any]) -> None:
    text = httpx.get(f"{stack['trust']}/metrics").text  # no credentials: open like notary-server's
    m = re.search(r'^trustbox_trust_earliest_expiry_seconds\{role="targets"\} (\S+)$', text, re.M)
    assert m is not None, text
    assert (SOON_DAYS - 1) * 86400 < float(m.group(1)) <= SOON_DAYS * 86400
    assert re.search(r"^trustbox_trust_repositories 1$", text, re.M)
    reg = httpx.get(f"{stack['registry']}/metrics").text
    assert re.search(r'^trustbox_registry_http_requests_total\{route="manifests",method="HEAD",code="200"\} [1-9]',
                     reg, re.M), reg
