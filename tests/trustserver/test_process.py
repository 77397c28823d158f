"""The real ``trustbox serve trust`` process: TLS + SQLite with the notary CLI, three processes on
one PostgreSQL, configuration through environment variables, refusing bad key passphrases."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.simulator import target
from tests.trustserver.ts_env import postgres_url
from tests.trustserver.ts_helpers import GUN, error, post, publish_new, tuf
from tests.trustserver.ts_tls import make_tls
from trustbox.tuf.metadata import Metadata, Timestamp

NOTARY = shutil.which("notary")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One ``trustbox serve trust`` process."""

    def __init__(self, args: list[str], env: dict[str, str], scheme: str, port: int, ca: Path | None = None) -> None:
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.ca = ca
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")} | env
        self.proc = subprocess.Popen(
            [shutil.which("trustbox") or "trustbox", "serve", "trust", *args],
            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

    def client(self) -> httpx.Client:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(self.ca)) if self.ca else False
        return httpx.Client(base_url=self.url, verify=verify, timeout=30)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                    raise AssertionError(f"server exited with {self.proc.returncode}: {out}")
                try:
                    if c.get("/_notary_server/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise AssertionError("server did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_tls(tmp_path / "tls")


@pytest.fixture
def sqlite_server(tmp_path: Path, tls) -> Iterator[Server]:
    ca, cert, key = tls
    port = free_port()
    s = Server(["--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key),
                "--db", f"sqlite:///{tmp_path}/trust.db"], {}, "https", port, ca)
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def test_tls_sqlite_server_roundtrip(sqlite_server: Server, tmp_path: Path):
    with sqlite_server.client() as c:
        assert c.get("/v2/").content == b"{}"
        repo = publish_new(c)
        for role in ("root", "targets", "snapshot"):
            assert c.get(tuf(GUN, f"{role}.json")).content == repo.docs[role]
        r = c.get(tuf(GUN, "timestamp.json"))
        assert r.headers["last-modified"].endswith(" UTC")
        assert r.headers["cache-control"] == "public, max-age=300, s-maxage=300, must-revalidate"
        assert error(c.get(tuf(GUN, "nope.json")))["code"] == "METADATA_NOT_FOUND"
    # the key passphrase was generated next to the database, private
    key_file = tmp_path / "trust.db.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o077) == 0


def test_tls_speaks_http1_only_like_notary_server(sqlite_server: Server, tls):
    """notary-server 0.7 offers no h2 in ALPN; the notary and docker clients then use HTTP/1.1."""
    ctx = ssl.create_default_context(cafile=str(tls[0]))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", sqlite_server.port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as conn:
        assert conn.selected_alpn_protocol() != "h2"
        assert conn.version() in ("TLSv1.2", "TLSv1.3")


def test_clients_verify_the_trust_servers_certificate(sqlite_server: Server, tmp_path: Path):
    """The network-attacker row of THREAT_MODEL.md: trustbox's client talks to a trust server only
    over TLS it can verify; a server whose certificate no trusted CA signed is refused outright."""
    from trustbox.client.trust.repository import TrustClient
    from trustbox.errors import TrustboxError

    with sqlite_server.client() as c:
        publish_new(c)
    other_ca = make_tls(tmp_path / "other-tls")[0]
    url = f"https://localhost:{sqlite_server.port}"
    for ca_files in ([], [other_ca]):  # system CAs only / a CA that did not sign the server's cert
        with TrustClient(GUN, url, tmp_path / f"trust-{len(ca_files)}", ca_files=ca_files) as tc:
            with pytest.raises(TrustboxError, match="(?i)certificate|tls|ssl"):
                tc.update()
    assert not any((tmp_path / "trust-0").rglob("*.json"))  # nothing fetched, nothing cached
    with TrustClient(GUN, url, tmp_path / "trust-ok", ca_files=[sqlite_server.ca]) as tc:  # type: ignore[list-item]
        tc.update()
        assert tc.collection.root is not None


def test_one_worker_is_one_process(sqlite_server: Server):
    """``--workers 1`` (the default) serves from the started process itself: no worker child."""
    pid = sqlite_server.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert children == []
    with sqlite_server.client() as c:
        assert c.get("/v2/").status_code == 200
    sqlite_server.proc.terminate()
    assert sqlite_server.proc.wait(15) == 0


@pytest.mark.interop
@pytest.mark.skipif(NOTARY is None, reason="notary CLI not installed")
def test_notary_cli_against_server(sqlite_server: Server, tmp_path: Path, tls):
    ca = tls[0]
    env = {**os.environ, "NOTARY_ROOT_PASSPHRASE": "root-pass-123", "NOTARY_TARGETS_PASSPHRASE": "targets-pass-123",
           "NOTARY_SNAPSHOT_PASSPHRASE": "snapshot-pass-123"}
    base = [NOTARY, "-d", str(tmp_path / "trust"), "-s", f"https://localhost:{sqlite_server.port}", "--tlscacert", str(ca)]
    gun = "localhost:5000/demo/cli"
    payload = tmp_path / "payload.txt"
    payload.write_bytes(b"hello trustbox\n")

    def notary(*args: str, stdin: str | None = None) -> str:
        p = subprocess.run([*base, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout

    notary("init", gun)
    notary("add", gun, "v1", str(payload))
    notary("publish", gun)
    assert "v1" in notary("list", gun)
    notary("key", "rotate", gun, "snapshot", "-r")
    notary("add", gun, "v2", str(payload))
    notary("publish", gun)  # snapshot now made by the server
    out = notary("list", gun)
    assert "v1" in out and "v2" in out
    notary("key", "rotate", gun, "root", stdin="yes\n")
    notary("remove", gun, "v1")
    notary("publish", gun)
    out = notary("list", gun)
    assert "v2" in out and "v1" not in out
    notary("delete", gun, "--remote")
    p = subprocess.run([*base, "list", gun], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "does not have trust data" in (p.stdout + p.stderr)


def test_refuses_wrong_passphrase(tmp_path: Path):
    db = f"sqlite:///{tmp_path}/t.db"
    port = free_port()
    first = Server(["--listen", f"127.0.0.1:{port}", "--db", db], {"TRUSTBOX_KEY_PASSPHRASE": "one"}, "http", port)
    try:
        first.wait_ready()
    finally:
        first.stop()
    p = subprocess.run([shutil.which("trustbox") or "trustbox", "serve", "trust", "--listen", f"127.0.0.1:{port}",
                        "--db", db], env={**os.environ, "TRUSTBOX_KEY_PASSPHRASE": "two"},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "passphrase" in p.stderr and "Traceback" not in p.stderr


def test_postgres_requires_a_passphrase():
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable")
    p = subprocess.run([shutil.which("trustbox") or "trustbox", "serve", "trust", "--listen", "127.0.0.1:1",
                        "--db", url, "--table-prefix", "tbt_nopass_"],
                       env={k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "no key passphrase" in p.stderr
    from trustbox.trustserver.storage import Storage

    s = Storage(url, "tbt_nopass_")
    s.drop_all()
    s.close()


def test_three_processes_on_one_postgres(tmp_path: Path):
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable")
    prefix = f"tbt_p{os.getpid()}_"
    servers = []
    try:
        for _ in range(3):
            port = free_port()
            env = {"TRUSTBOX_LISTEN": f"127.0.0.1:{port}", "TRUSTBOX_DB": url, "TRUSTBOX_TABLE_PREFIX": prefix,
                   "TRUSTBOX_KEY_PASSPHRASE": "pg-pass"}
            servers.append(Server([], env, "http", port))
        for s in servers:
            s.wait_ready()
        clients = [s.client() for s in servers]
        a, b, c = clients
        # keys made on one replica are usable on the others
        repo = publish_new(a)
        for cl in clients:
            assert cl.get(tuf(GUN, "targets.json")).content == repo.docs["targets"]
            cl.get(tuf(GUN, "timestamp.json"))  # warm every cache
        for version in range(3, 7):
            writer = clients[version % 3]
            r = post(writer, GUN, {"targets": repo.make_targets({f"t{version}": target(b"x")}, version=version),
                                   "snapshot": repo.make_snapshot(version=version)})
            assert r.status_code == 200, r.text
            for cl in clients:  # visible everywhere right after the POST returned
                ts = Metadata.parse(cl.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
                assert ts.signed.version == version - 1
                assert cl.get(tuf(GUN, "targets.json")).content == repo.docs["targets"]
        # concurrent writers on different processes: exactly one wins each round
        for version in (7, 8, 9):
            bodies = []
            for name in ("x", "y", "z"):
                repo.make_targets({name: target(name.encode())}, version=version)
                bodies.append({"targets": repo.docs["targets"], "snapshot": repo.make_snapshot(version=version)})
            results: list = [None] * 3

            def run(i: int, results=results, bodies=bodies) -> None:
                results[i] = post(clients[i], GUN, bodies[i])

            threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            codes = sorted(r.status_code for r in results)
            assert codes == [200, 400, 400], [r.text for r in results]
            assert all(error(r)["code"] == "VERSION" for r in results if r.status_code == 400)
            winner = next(i for i, r in enumerate(results) if r.status_code == 200)
            repo.docs["targets"] = bodies[winner]["targets"]
            for cl in clients:
                assert cl.get(tuf(GUN, "targets.json")).content == repo.docs["targets"]
        feed = a.get("/v2/_trust/changefeed?records=100").json()
        versions = [rec["Version"] for rec in feed["records"]]
        assert versions == list(range(1, len(versions) + 1))
        for cl in clients:
            cl.close()
    finally:
        for s in servers:
            s.stop()
        from trustbox.trustserver.storage import Storage

        st = Storage(url, prefix)
        st.drop_all()
        st.close()
