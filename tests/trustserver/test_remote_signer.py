"""Signing through a separate signer service (in-process ASGI, and as real processes)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.trustserver.ts_asgi import ASGIClient, SyncASGITransport
from tests.trustserver.ts_env import Clock
from tests.trustserver.ts_helpers import GUN, post, publish_new, tuf
from trustbox.errors import NetworkError
from trustbox.trustserver.app import TrustServerApp
from trustbox.trustserver.config import ServerConfig
from trustbox.trustserver.remote_signer import RemoteSigner, SignerApp
from trustbox.trustserver.service import TrustService
from trustbox.trustserver.signer import LocalSigner
from trustbox.trustserver.storage import Storage
from trustbox.tuf.metadata import Metadata, Snapshot, Timestamp


@pytest.fixture
def signer_loop():
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)
    loop.close()


def test_trust_server_with_remote_signer(tmp_path: Path, signer_loop):
    signer_storage = Storage(f"sqlite:///{tmp_path}/signer.db")
    signer_storage.migrate()
    signer_app = SignerApp(LocalSigner(signer_storage, "signer-pass"), "s3cret-token")
    remote = RemoteSigner("http://signer", "s3cret-token", transport=SyncASGITransport(signer_app, signer_loop))
    trust_storage = Storage(f"sqlite:///{tmp_path}/trust.db")
    trust_storage.migrate()
    app = TrustServerApp(TrustService(ServerConfig(db=f"sqlite:///{tmp_path}/trust.db"), trust_storage, remote, Clock()))
    try:
        with ASGIClient(app) as c:
            repo = publish_new(c, server_snapshot=True)
            r = post(c, GUN, {"targets": repo.make_targets(version=3)})
            assert r.status_code == 200, r.text
            ts = Metadata.parse(c.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
            snap = Metadata.parse(c.get(tuf(GUN, "snapshot.json")).content, expect=Snapshot)
            assert ts.signed.version == 2 and snap.signed.version == 2
            # the keys live in the signer's database only
            assert trust_storage.latest_key(GUN, "timestamp") is None
            assert signer_storage.latest_key(GUN, "timestamp") is not None
            assert ts.signatures[0].keyid == repo.timestamp_pub.keyid
    finally:
        app.close()
        signer_storage.close()


def test_remote_signer_needs_the_token(tmp_path: Path, signer_loop):
    storage = Storage(f"sqlite:///{tmp_path}/signer.db")
    storage.migrate()
    signer_app = SignerApp(LocalSigner(storage, "signer-pass"), "right")
    wrong = RemoteSigner("http://signer", "wrong", transport=SyncASGITransport(signer_app, signer_loop))
    with pytest.raises(NetworkError, match="401"):
        wrong.create_key(GUN, "timestamp", "ed25519")
    right = RemoteSigner("http://signer", "right", transport=SyncASGITransport(signer_app, signer_loop))
    key = right.create_key(GUN, "timestamp", "ecdsa")
    assert right.public_key(GUN, key.keyid) == key
    assert right.public_key("other/gun", key.keyid) is None
    method, sig = right.sign(GUN, key.keyid, b"message")
    key.verify(method, sig, b"message")
    storage.close()


@pytest.mark.skipif(shutil.which("trustbox") is None, reason="trustbox not on PATH")
def test_signer_and_trust_processes(tmp_path: Path):
    from tests.trustserver.test_process import Server, free_port

    token_file = tmp_path / "token"
    token_file.write_text("process-token\n")
    sport = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    signer = subprocess.Popen(
        [shutil.which("trustbox") or "trustbox", "serve", "signer", "--listen", f"127.0.0.1:{sport}",
         "--db", f"sqlite:///{tmp_path}/signer.db", "--token-file", str(token_file)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    tport = free_port()
    trust = Server(["--listen", f"127.0.0.1:{tport}", "--db", f"sqlite:///{tmp_path}/trust.db",
                    "--signer", f"http://127.0.0.1:{sport}", "--signer-token-file", str(token_file)], {}, "http", tport)
    try:
        import time

        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{sport}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        trust.wait_ready()
        with trust.client() as c:
            publish_new(c)
            ts = Metadata.parse(c.get(tuf(GUN, "timestamp.json")).content, expect=Timestamp)
            assert ts.signed.version == 1
        assert not (tmp_path / "trust.db.key").exists()  # the trust server holds no keys
    finally:
        trust.stop()
        signer.terminate()
        signer.wait(15)


def _signer_answering(handler):
    import httpx

    from trustbox.trustserver.remote_signer import RemoteSigner

    return RemoteSigner("http://signer.test", "t", transport=httpx.MockTransport(handler))


def test_signer_answers_are_bounded_and_checked():
    import httpx
    import pytest

    from trustbox.errors import NetworkError

    sent = []

    def endless():
        while True:
            sent.append(1)
            yield b"x" * 65536

    answers = {
        "endless": lambda req: httpx.Response(200, content=endless()),
        "endless error": lambda req: httpx.Response(500, content=endless()),
        "not json": lambda req: httpx.Response(200, content=b"<html>"),
        "not an object": lambda req: httpx.Response(200, content=b"[1]"),
        "no fields": lambda req: httpx.Response(200, content=b"{}"),
        "bad base64": lambda req: httpx.Response(200, content=b'{"keytype":"ecdsa","public":"!!"}'),
    }
    for label, handler in answers.items():
        sent.clear()
        s = _signer_answering(handler)
        with pytest.raises(NetworkError):
            s.latest_key("example.com/a", "timestamp")
        with pytest.raises(NetworkError):
            s.sign("example.com/a", "k", b"msg")
        assert len(sent) <= 4, label  # at most the 64 KiB bound plus one piece per call
