"""The real tools against trustbox's servers with token auth from ``trustbox serve auth``:
the notary CLI against ``serve trust``, skopeo against ``serve registry``, and trustbox's own
login / push / trust sign / pull against the pair. Users (tests/auth/conftest.py): alice may
push and pull ``*team/*`` and ``*public/*``, bob may pull ``*team/*``, anyone may pull ``*public/*``."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import TokenServer
from tests.auth.test_interop import need, notary, skopeo, tiny_oci_layout
from tests.helpers.net import free_port, stop_process, wait_http

pytestmark = pytest.mark.interop

TRUST_SERVICE = "trustbox-trust"
REGISTRY_SERVICE = "trustbox-registry"


@dataclass
class Pair:
    """A token-protected trust server and registry sharing one token server."""

    trust_url: str
    registry: str
    ca: Path
    certs_dir: Path


def _token_options(ts: TokenServer, service: str) -> list[str]:
    return ["--auth-token-realm", ts.realm, "--auth-token-service", service, "--auth-token-issuer", ts.issuer,
            "--auth-token-rootcertbundle", str(ts.cert)]


@pytest.fixture(scope="module")
def pair(token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """``serve trust`` and ``serve registry`` over TLS, both with token auth (the CLI options)."""
    d = tmp_path_factory.mktemp("pair")
    tls = token_server.tls
    tport, rport = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    tb = [sys.executable, "-m", "trustbox", "serve"]
    cmds = {
        "trust": tb + ["trust", "--listen", f"127.0.0.1:{tport}", "--tls-cert", str(tls.server_cert), "--tls-key",
                       str(tls.server_key), "--db", f"sqlite:///{d / 'trust.db'}", "--insecure-dev-keys",
                       *_token_options(token_server, TRUST_SERVICE)],
        "registry": tb + ["registry", "--listen", f"127.0.0.1:{rport}", "--tls-cert", str(tls.server_cert),
                          "--tls-key", str(tls.server_key), "--storage", str(d / "registry"),
                          *_token_options(token_server, REGISTRY_SERVICE)],
    }
    procs = []
    try:
        for name, cmd in cmds.items():
            with open(d / f"{name}.log", "wb") as out:
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              env=env))
        wait_http(f"https://127.0.0.1:{tport}/_notary_server/health", procs[0], d / "trust.log", ca=tls.ca_cert)
        wait_http(f"https://127.0.0.1:{rport}/v2/", procs[1], d / "registry.log", ca=tls.ca_cert, ok=(401,))
        certs = d / "certs"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(tls.ca_cert.read_bytes())
        yield Pair(f"https://127.0.0.1:{tport}", f"127.0.0.1:{rport}", tls.ca_cert, certs)
    finally:
        for p in procs:
            stop_process(p)


def test_processes_refuse_like_upstream(pair: Pair, token_server: TokenServer) -> None:
    """The served app (granian, ASGI path when auth is on) sends notary's and registry:2's challenges."""
    with httpx.Client(verify=ssl.create_default_context(cafile=str(pair.ca))) as http:
        r = http.get(f"{pair.trust_url}/v2/example.test/team/app/_trust/tuf/root.json")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == (
            f'Bearer realm="{token_server.realm}",service="{TRUST_SERVICE}",scope="repository:example.test/team/app:pull"')
        assert r.content == (b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":'
                             b'[{"Type":"repository","Class":"","Name":"example.test/team/app","Action":"pull"}]}]}\n')
        assert http.get(f"{pair.trust_url}/_notary_server/health").status_code == 200
        r = http.get(f"https://{pair.registry}/v2/")
        assert r.status_code == 401 and r.headers["docker-distribution-api-version"] == "registry/2.0"
        assert r.headers["www-authenticate"] == f'Bearer realm="{token_server.realm}",service="{REGISTRY_SERVICE}"'
        # a token for bob (pull only) does not let him push to the registry
        tok = http.get(token_server.realm, params={"service": REGISTRY_SERVICE, "scope": "repository:team/app:pull,push"},
                       auth=("bob", "bob-pw")).json()["token"]
        r = http.post(f"https://{pair.registry}/v2/team/app/blobs/uploads/", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].endswith('scope="repository:team/app:pull,push",error="insufficient_scope"')


def _refused(out: str) -> bool:
    return "unauthorized" in out or "not authorized" in out


def test_notary_cli_with_tokens(pair: Pair, tmp_path: Path) -> None:
    need("notary")
    public, team = "example.test/public/app", "example.test/team/app"
    for gun in (public, team):
        rc, out = notary(pair.trust_url, pair.ca, tmp_path / "alice", "init", gun, "-p", user="alice", password="alice-pw")
        assert rc == 0, out
        assert "Enter username" in out  # notary met our challenge and asked for credentials
    rc, out = notary(pair.trust_url, pair.ca, tmp_path / "alice", "add", team, "v1", __file__, "-p",
                     user="alice", password="alice-pw")
    assert rc == 0, out
    # notary reads anonymously: anyone may pull public/*, nobody anonymous may read team/*
    rc, out = notary(pair.trust_url, pair.ca, tmp_path / "anon", "list", public, user="-", password="-")
    assert rc == 0 and "No targets present" in out, out
    rc, out = notary(pair.trust_url, pair.ca, tmp_path / "anon", "list", team, user="-", password="-")
    assert rc != 0 and _refused(out), out
    # bob may only pull: publishing is refused; a wrong password gets no token at all
    rc, out = notary(pair.trust_url, pair.ca, tmp_path / "bob", "init", "example.test/team/bob", "-p",
                     user="bob", password="bob-pw")
    assert rc != 0 and _refused(out), out
    rc, out = notary(pair.trust_url, pair.ca, tmp_path / "eve", "init", "example.test/team/eve", "-p",
                     user="alice", password="wrong")
    assert rc != 0, out
    # deleting needs "*": alice lacks it, root has it
    rc, out = notary(pair.trust_url, pair.ca, tmp_path / "alice", "delete", public, "--remote", user="alice", password="alice-pw")
    assert rc != 0 and _refused(out), out
    rc, out = notary(pair.trust_url, pair.ca, tmp_path / "root", "delete", public, "--remote", user="root", password="root-pw")
    assert rc == 0, out


def test_skopeo_with_tokens(pair: Pair, tmp_path: Path) -> None:
    need("skopeo")
    layout = tmp_path / "layout"
    tiny_oci_layout(layout)
    src, dest = f"oci:{layout}:v1", f"docker://{pair.registry}/team/app:v1"
    certs = ["--dest-cert-dir", str(pair.certs_dir)]
    assert skopeo(tmp_path, "copy", "--dest-no-creds", *certs, src, dest).returncode != 0
    bob = skopeo(tmp_path, "copy", "--dest-creds", "bob:bob-pw", *certs, src, dest)
    assert bob.returncode != 0 and ("denied" in bob.stderr.lower() or "unauthorized" in bob.stderr.lower()), bob.stderr
    assert skopeo(tmp_path, "copy", "--dest-creds", "alice:nope", *certs, src, dest).returncode != 0
    ok = skopeo(tmp_path, "copy", "--dest-creds", "alice:alice-pw", *certs, src, dest)
    assert ok.returncode == 0, ok.stderr
    got = skopeo(tmp_path, "inspect", "--creds", "bob:bob-pw", "--cert-dir", str(pair.certs_dir), dest)
    assert got.returncode == 0 and json.loads(got.stdout)["Layers"], got.stderr
    assert skopeo(tmp_path, "inspect", "--no-creds", "--cert-dir", str(pair.certs_dir), dest).returncode != 0


def test_trustbox_login_push_sign_pull(pair: Pair, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "DOCKER_", "NOTARY_"))}
    env.update(HOME=str(tmp_path), DOCKER_CONFIG=str(tmp_path / "docker"), DOCKER_CONTENT_TRUST="1",
               DOCKER_CONTENT_TRUST_SERVER=pair.trust_url, TRUSTBOX_CA_CERT=str(pair.ca),
               DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE="root passphrase 123",
               DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE="repo passphrase 123")

    def tb(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "trustbox", *args], input=stdin, capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)

    tb("sandbox", "sample-image", "sample")
    image = f"{pair.registry}/team/app:v1"
    # anonymous: the registry refuses the push, the trust server the signature
    r = tb("push", "--disable-content-trust", "oci:./sample:latest", image)
    assert r.returncode != 0 and "denied access" in r.stderr, r.stderr
    r = tb("login", pair.registry, "-u", "alice", "--password-stdin", stdin="alice-pw\n")
    assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
    r = tb("push", "--disable-content-trust", "oci:./sample:latest", image)
    assert r.returncode == 0, r.stderr
    r = tb("trust", "sign", image)
    assert r.returncode == 0 and "Successfully signed" in r.stdout, r.stdout + r.stderr
    r = tb("pull", image, "oci:./pulled")
    assert r.returncode == 0 and "Pull (1 of 1)" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "pulled" / "index.json").exists()
    # bob (pull only) may pull with trust, not sign
    assert tb("login", pair.registry, "-u", "bob", "--password-stdin", stdin="bob-pw\n").returncode == 0
    r = tb("pull", image, "oci:./pulled-bob")
    assert r.returncode == 0, r.stdout + r.stderr
    r = tb("trust", "revoke", "-y", image)
    assert r.returncode != 0 and "401" in r.stderr, r.stderr
    # logged out: team/* is private, so even the trusted pull is refused
    assert tb("logout", pair.registry).returncode == 0
    r = tb("pull", image, "oci:./pulled-anon")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "pulled-anon").exists()
