"""Unit checks of trust server building blocks: multipart, keys at rest, storage probes, config."""

from __future__ import annotations

import pytest

from trustbox.errors import PassphraseError
from trustbox.trustserver.keys_at_rest import KeyCipher, derive_master_key
from trustbox.trustserver.upload import MalformedUpload, boundary_of, parse_multipart
from trustbox.tuf.keys import PrivateKey


def test_multipart_variants():
    body = (b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"files\"; filename=\"targets/releases\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n{\"a\":\r\n1}\r\n--XyZ\r\n"
            b"Content-Disposition: form-data; name=files; filename=root.json\r\n\r\n{}\r\n--XyZ--\r\nepilogue")
    parts = parse_multipart(body, b"XyZ")
    assert [(p.filename, p.data) for p in parts] == [("targets/releases", b'{"a":\r\n1}'), ("root.json", b"{}")]
    lf = body.replace(b"\r\n", b"\n")
    assert [p.filename for p in parse_multipart(lf, b"XyZ")] == ["targets/releases", "root.json"]
    assert boundary_of('multipart/form-data; boundary="a b;c"') == b"a b;c"
    for ct in ("text/plain", "multipart/form-data", "multipart/mixed; boundary=x"):
        with pytest.raises(MalformedUpload):
            boundary_of(ct)
    for bad in (b"", b"--XyZ\r\nno separator", body.replace(b"--XyZ--", b"--XyZ"), b"x--XyZ\r\n\r\n\r\n--XyZ--"):
        with pytest.raises(MalformedUpload):
            parse_multipart(bad, b"XyZ")


def test_keys_at_rest_roundtrip_and_binding():
    cipher = KeyCipher(derive_master_key("pass", b"0123456789abcdef"))
    key = PrivateKey.generate("ed25519")
    blob = cipher.seal_key(key, "gun/a", "timestamp")
    assert key.key.private_bytes_raw() not in blob  # type: ignore[union-attr]
    assert cipher.open_key(blob, "gun/a", "timestamp", key.keyid).keyid == key.keyid
    with pytest.raises(PassphraseError):
        cipher.open_key(blob, "gun/b", "timestamp", key.keyid)  # bound to its GUN
    other = KeyCipher(derive_master_key("wrong", b"0123456789abcdef"))
    with pytest.raises(PassphraseError):
        other.open_key(blob, "gun/a", "timestamp", key.keyid)
    with pytest.raises(PassphraseError):
        other.verify_check(cipher.make_check())


def test_stored_keys_are_encrypted(backend):
    from tests.trustserver.ts_env import make_app

    app = make_app(backend)
    try:
        pub = app.service.get_key("example.com/x", "timestamp")
        rec = app.service.storage.get_key("example.com/x", pub.keyid)
        assert rec is not None and rec.private_enc.startswith(b"TBK1")
        assert app.service.signer.public_key("example.com/x", pub.keyid) == pub
        assert app.service.signer.public_key("example.com/other", pub.keyid) is None
    finally:
        app.close()


def test_sqlite_change_probe_sees_every_commit(tmp_path):
    import sqlite3

    from trustbox.trustserver.storage import SQLiteChangeProbe

    db = str(tmp_path / "p.db")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x INTEGER)")
    probe = SQLiteChangeProbe(db)
    try:
        assert probe._mm is not None  # the fast path is in use
        assert not probe.changed()
        for i in range(200):  # rapid commits, including WAL restarts after checkpoints
            writer.execute("INSERT INTO t VALUES (?)", (i,))
            assert probe.changed(), i
            assert not probe.changed()
            if i % 50 == 49:
                writer.execute("PRAGMA wal_checkpoint(RESTART)")
                probe.changed()
        # a read does not count as a change
        writer.execute("SELECT count(*) FROM t").fetchone()
        assert not probe.changed()
    finally:
        probe.close()
        writer.close()


class _FakeRSGIScope:
    def __init__(self, method: str, path: str, query: str = "", headers: dict[str, str] | None = None) -> None:
        self.proto = "http"
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = headers or {}


class _FakeRSGIProtocol:
    def __init__(self, body: bytes = b"") -> None:
        self._chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
        self.responses: list[tuple[int, list[tuple[str, str]], bytes]] = []

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            raise StopAsyncIteration
        return self._chunks.pop(0)

    def response_bytes(self, status, headers, body):
        self.responses.append((status, headers, body))


def test_rsgi_interface(backend):
    import asyncio

    from tests.helpers.notary_upload import multipart
    from tests.helpers.simulator import RepositorySimulator
    from tests.trustserver.ts_env import make_app
    from tests.trustserver.ts_helpers import GUN, parse_key, tuf
    from trustbox.tuf.timefmt import utcnow

    app = make_app(backend)

    def call(method, path, body=b"", query="", headers=None):
        proto = _FakeRSGIProtocol(body)
        asyncio.run(app.__rsgi__(_FakeRSGIScope(method, path, query, headers), proto))
        assert len(proto.responses) == 1
        return proto.responses[0]

    try:
        app.__rsgi_init__(None)
        status, _, key = call("GET", tuf(GUN, "timestamp.key"))
        repo = RepositorySimulator(GUN, utcnow(), timestamp_key=parse_key(key))
        body, ct = multipart({"root": repo.make_root(), "targets": repo.make_targets(version=2), "snapshot": repo.make_snapshot(version=2)})
        status, _, out = call("POST", tuf(GUN, ""), body, headers={"content-type": ct, "content-length": str(len(body))})
        assert (status, out) == (200, b"")
        first = call("GET", tuf(GUN, "targets.json"))
        cached = call("GET", tuf(GUN, "targets.json"))
        assert first[0] == cached[0] == 200 and first[2] == cached[2] == repo.docs["targets"]
        assert dict(first[1])["cache-control"] == dict(cached[1])["cache-control"]
        status, headers, out = call("GET", "/v2/_trust/changefeed", query="records=x")
        assert status == 400 and dict(headers)["content-type"] == "application/json; charset=utf-8"
    finally:
        app.close()


def test_config_file_upstream_layout(tmp_path):
    import json as _json

    from trustbox.errors import ConfigError
    from trustbox.trustserver.config import ServerConfig, load_config_file

    f = tmp_path / "server.json"
    f.write_text(_json.dumps({
        "server": {"http_addr": "0.0.0.0:4443", "tls_cert_file": "c.pem", "tls_key_file": "k.pem"},
        "storage": {"backend": "postgres", "db_url": "postgresql://u@h/db"},
        "trust_service": {"type": "local", "key_algorithm": "ecdsa"},
        "caching": {"max_age": {"current_metadata": 0, "consistent_metadata": 60}},
        "repositories": {"gun_prefixes": ["docker.io/"]},
        "trustbox": {"max_upload_bytes": 65536, "table_prefix": "p_"},
    }))
    cfg = ServerConfig(**load_config_file(f)).validate()
    assert (cfg.listen, cfg.tls_cert, cfg.db, cfg.key_algorithm) == ("0.0.0.0:4443", "c.pem", "postgresql://u@h/db", "ecdsa")
    assert (cfg.current_max_age, cfg.consistent_max_age, cfg.gun_prefixes) == (0, 60, ("docker.io/",))
    assert cfg.with_overrides(listen="127.0.0.1:1", db=None).listen == "127.0.0.1:1"
    for bad in ({"key_algorithm": "dsa"}, {"listen": "nowhere"}, {"current_max_age": -1}, {"tls_cert": "c"},
                {"table_prefix": "x;drop"}):
        with pytest.raises(ConfigError):
            ServerConfig(**bad).validate()
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConfigError):
        load_config_file(tmp_path / "bad.json")


def test_no_cache_policy(backend):
    from tests.trustserver.ts_asgi import ASGIClient
    from tests.trustserver.ts_env import make_app
    from tests.trustserver.ts_helpers import GUN, publish_new, tuf

    app = make_app(backend, current_max_age=0)
    try:
        with ASGIClient(app) as c:
            publish_new(c)
            r = c.get(tuf(GUN, "targets.json"))
            assert r.headers["cache-control"] == "max-age=0, no-cache, no-store"
            assert r.headers["pragma"] == "no-cache"
            assert c.get(tuf(GUN, "2.targets.json")).headers["cache-control"] == "public, max-age=2592000, s-maxage=2592000"
    finally:
        app.close()


@pytest.mark.parametrize(
    ("when", "text"),
    [
        ((2026, 12, 1, 16, 52, 30), "Tue Dec 1 16:52:30 UTC 2026"),  # day not padded, as notary-server
        ((2026, 11, 25, 7, 5, 9), "Wed Nov 25 07:05:09 UTC 2026"),
    ],
)
def test_go_time_matches_notary_expiry_text(when, text):
    from datetime import UTC, datetime

    from trustbox.trustserver.validation import go_time

    assert go_time(datetime(*when, tzinfo=UTC)) == text
