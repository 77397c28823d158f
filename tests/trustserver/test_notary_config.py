"""notary-server 0.7's server.json (and notary-signer's config) read as they read them: every
section honoured, anything trustbox cannot honour refused by name; Go MySQL DSNs; the JWE
notary-signer keeps keys in; notary-signer's key table as a signer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trustbox.errors import ConfigError, FormatError, PassphraseError
from trustbox.trustserver import jwe
from trustbox.trustserver.config import ServerConfig, load_config_file
from trustbox.trustserver.dburl import go_mysql_dsn_to_url, normalize_db_url, notary_db_url
from trustbox.trustserver.notary_config import notary_signer_storage
from trustbox.trustserver.notary_signer import NotarySignerKeys, load_private, private_bytes
from trustbox.tuf.keys import PrivateKey

FULL = {
    "server": {"http_addr": ":4443", "tls_cert_file": "./notary-server.crt", "tls_key_file": "./notary-server.key"},
    "trust_service": {"type": "remote", "hostname": "notarysigner", "port": "7899", "tls_ca_file": "./root-ca.crt",
                      "key_algorithm": "ecdsa", "tls_client_cert": "./c.crt", "tls_client_key": "./c.key"},
    "logging": {"level": "debug"},
    "storage": {"backend": "mysql", "db_url": "server:pw@tcp(mysql:3306)/notaryserver?parseTime=True"},
    "auth": {"type": "token", "options": {"realm": "https://auth.example/token", "service": "notary",
                                          "issuer": "auth.example", "rootcertbundle": "/certs/root.pem"}},
    "caching": {"max_age": {"current_metadata": 60, "consistent_metadata": "3600"}},
    "repositories": {"gun_prefixes": ["docker.io/", "example.com/"]},
}


def _load(tmp_path: Path, raw: dict[str, Any], name: str = "server.json") -> dict[str, Any]:
    f = tmp_path / name
    f.write_text(json.dumps(raw))
    return load_config_file(f)


def _refused(tmp_path: Path, raw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, raw)


def _with(section: str, **values: Any) -> dict[str, Any]:
    raw = json.loads(json.dumps(FULL))
    raw[section] = {**raw.get(section, {}), **values}
    return raw


def test_every_section_of_notary_server_config(tmp_path: Path) -> None:
    values = _load(tmp_path, FULL)
    cfg = ServerConfig(**values, notary_signer_config="/etc/notary/signer.json").validate()
    assert cfg.listen == ":4443"
    assert cfg.tls_cert == str(tmp_path / "notary-server.crt") and cfg.tls_key == str(tmp_path / "notary-server.key")
    assert cfg.db == "mysql+pymysql://server:pw@mysql:3306/notaryserver" and cfg.notary_schema
    assert cfg.key_algorithm == "ecdsa" and cfg.notary_remote_trust
    assert cfg.log_level == "debug"
    assert (cfg.current_max_age, cfg.consistent_max_age) == (60, 3600)
    assert cfg.gun_prefixes == ("docker.io/", "example.com/")
    assert cfg.auth_section() == {"type": "token", "options": FULL["auth"]["options"]}  # type: ignore[index]


def test_storage_backends(tmp_path: Path) -> None:
    pg = _load(tmp_path, _with("storage", backend="postgres", db_url="postgres://server@pg:5432/notary?sslmode=disable"))
    assert pg["db"] == "postgres://server@pg:5432/notary?sslmode=disable" and pg["notary_schema"]
    assert normalize_db_url(pg["db"]).startswith("postgresql+psycopg://")
    lite = _load(tmp_path, _with("storage", backend="sqlite3", db_url="/tmp/notary-server.db"))
    assert lite["db"] == "sqlite:////tmp/notary-server.db" and lite["notary_schema"]
    mem = _load(tmp_path, {**_with("storage", backend="memory"), "storage": {"backend": "memory"}})
    assert mem["db"] == "sqlite://" and not mem["notary_schema"]
    _refused(tmp_path, _with("storage", backend="rethinkdb"), "rethinkdb is not supported")
    _refused(tmp_path, _with("storage", backend="oracle"), "oracle is not a supported storage backend")
    _refused(tmp_path, _with("storage", backend="mysql", db_url=""), "non-empty database source")
    _refused(tmp_path, _with("storage", username="u"), "storage.username is a rethinkdb option")


def test_trust_service(tmp_path: Path) -> None:
    local = _load(tmp_path, _with("trust_service", type="local", key_algorithm="ed25519"))
    assert local["key_algorithm"] == "ed25519" and "notary_remote_trust" not in local
    _refused(tmp_path, _with("trust_service", type="hsm"), 'either a "local" or "remote"')
    _refused(tmp_path, _with("trust_service", key_algorithm="dsa"), "invalid key algorithm configured: dsa")
    remote = _load(tmp_path, FULL)
    with pytest.raises(ConfigError, match="remote: trustbox does not speak notary-signer's gRPC API") as info:
        ServerConfig(**remote).validate()
    assert info.value.hint is not None and "--notary-signer-config" in info.value.hint
    with pytest.raises(ConfigError, match="rsa"):
        ServerConfig(**{**remote, "key_algorithm": "rsa"}, notary_signer_config="s.json").validate()


def test_refusals_name_the_option(tmp_path: Path) -> None:
    _refused(tmp_path, _with("server", client_ca_file="ca.pem"), r"server\.client_ca_file")
    _refused(tmp_path, _with("server", tls_key_file=""), "either include both a cert and key file")
    _refused(tmp_path, _with("server", http_addr=""), "http listen address required")
    _refused(tmp_path, _with("server", debug=True), r"server\.debug is not one notary-server reads")
    _refused(tmp_path, {**FULL, "metrics": {}}, "'metrics' is not one notary-server or trustbox knows")
    _refused(tmp_path, _with("logging", level="loud"), r"logging\.level")
    _refused(tmp_path, _with("caching", max_age={"current_metadata": 31536001}), r"caching\.max_age\.current_metadata")
    _refused(tmp_path, _with("caching", max_age={"current_metadata": "soon"}), "max-age between 0 and 31536000")
    _refused(tmp_path, _with("caching", max_age={"everything": 1}), r"caching\.max_age\.everything")
    _refused(tmp_path, _with("repositories", gun_prefixes=["docker.io"]), "invalid GUN prefix docker.io")
    _refused(tmp_path, _with("repositories", gun_prefixes=["../x/"]), "invalid GUN prefix")
    _refused(tmp_path, _with("reporting", bugsnag={"api_key": "k"}), r"reporting\.bugsnag")
    _refused(tmp_path, _with("auth", type="oauth"), "unsupported auth type 'oauth'")
    _refused(tmp_path, _with("auth", options={"realm": "r", "autoredirect": "true"}), "autoredirect")
    _refused(tmp_path, {**FULL, "trustbox": {"nonsense": 1}}, r"trustbox\.nonsense is unknown")
    _refused(tmp_path, _with("storage", db_url="server@tcp(mysql:3306)/db?tls=true"), "'tls' is not supported")


def test_environment_overrides_as_viper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_SERVER_STORAGE_DB_URL", "root@tcp(127.0.0.1:3306)/other?parseTime=true")
    monkeypatch.setenv("NOTARY_SERVER_LOGGING_LEVEL", "warn")
    monkeypatch.setenv("NOTARY_SERVER_CACHING_MAX_AGE_CURRENT_METADATA", "7")
    values = _load(tmp_path, FULL)
    assert values["db"] == "mysql+pymysql://root@127.0.0.1:3306/other"
    assert values["log_level"] == "warning" and values["current_max_age"] == 7


def test_trustbox_section_and_legacy_layout_keep_working(tmp_path: Path) -> None:
    values = _load(tmp_path, {**FULL, "trustbox": {"max_upload_bytes": 65536, "notary_signer_config": "signer.json",
                                                   "workers": 2}})
    cfg = ServerConfig(**values).validate()
    assert cfg.max_upload_bytes == 65536 and cfg.workers == 2
    assert cfg.notary_signer_config == str(tmp_path / "signer.json")
    legacy = _load(tmp_path, {"storage": {"db_url": "sqlite:///x.db"}, "server": {"http_addr": "127.0.0.1:1"},
                              "trustbox": {"insecure_dev_keys": True}})
    cfg = ServerConfig(**legacy).validate()
    assert cfg.db == "sqlite:///x.db" and not cfg.notary_schema and cfg.tls_cert is None


@pytest.mark.parametrize(("dsn", "url"), [
    ("server@tcp(mysql:3306)/notaryserver?parseTime=True", "mysql+pymysql://server@mysql:3306/notaryserver"),
    ("u:p%40ss@tcp(10.0.0.1:3307)/db", "mysql+pymysql://u:p%2540ss@10.0.0.1:3307/db"),
    ("root@tcp(127.0.0.1)/db?charset=utf8mb4,utf8&loc=UTC", "mysql+pymysql://root@127.0.0.1/db?charset=utf8mb4"),
    ("root@/db", "mysql+pymysql://root@127.0.0.1:3306/db"),
    ("u@unix(/run/mysqld/mysqld.sock)/db", "mysql+pymysql://u@localhost/db?unix_socket=/run/mysqld/mysqld.sock"),
])
def test_go_mysql_dsn(dsn: str, url: str) -> None:
    assert go_mysql_dsn_to_url(dsn) == url
    assert notary_db_url("mysql", dsn) == url


@pytest.mark.parametrize(("dsn", "match"), [
    ("root@tcp(h:1)/db?loc=Local", "loc=Local"),
    ("root@tcp(h:1)/db?allowOldPasswords=1", "allowOldPasswords"),
    ("root@pipe(x)/db", "network 'pipe'"),
    ("not a dsn", "not a MySQL DSN"),
])
def test_go_mysql_dsn_refusals(dsn: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        go_mysql_dsn_to_url(dsn)


def test_trustbox_db_urls() -> None:
    assert normalize_db_url("mysql://root@127.0.0.1:3306/test") == "mysql+pymysql://root@127.0.0.1:3306/test"
    assert normalize_db_url("mariadb://root@h/test") == "mysql+pymysql://root@h/test"
    assert normalize_db_url("root@tcp(h:3306)/test") == "mysql+pymysql://root@h:3306/test"
    assert normalize_db_url("sqlite:///x.db") == "sqlite:///x.db"


def test_notary_signer_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "signer.json"
    f.write_text(json.dumps({"server": {"grpc_addr": ":7899"}, "storage": {
        "backend": "mysql", "db_url": "signer@tcp(mysql:3306)/notarysigner?parseTime=True", "default_alias": "pw1"}}))
    assert notary_signer_storage(f) == ("mysql+pymysql://signer@mysql:3306/notarysigner", "pw1")
    monkeypatch.setenv("NOTARY_SIGNER_STORAGE_DEFAULT_ALIAS", "pw2")
    assert notary_signer_storage(f)[1] == "pw2"
    f.write_text(json.dumps({"storage": {"backend": "memory"}}))
    with pytest.raises(ConfigError, match="memory"):
        notary_signer_storage(f)
    f.write_text(json.dumps({"storage": {"backend": "postgres", "db_url": "postgres://s@h/d"}}))
    monkeypatch.delenv("NOTARY_SIGNER_STORAGE_DEFAULT_ALIAS")
    with pytest.raises(ConfigError, match="default alias"):
        notary_signer_storage(f)


def test_jwe_round_trip_and_failures() -> None:
    token = jwe.encrypt(b"secret key bytes", "passphrase")
    header = json.loads(jwe._unb64(token.split(".")[0], "h"))
    assert header["alg"] == "PBES2-HS256+A128KW" and header["enc"] == "A256GCM" and header["p2c"] == jwe.P2C
    assert jwe.decrypt(token, "passphrase") == b"secret key bytes"
    with pytest.raises(PassphraseError):
        jwe.decrypt(token, "wrong")
    parts = token.split(".")
    tampered = ".".join([*parts[:3], jwe._b64(b"\x00" * len(jwe._unb64(parts[3], "c"))), parts[4]])
    with pytest.raises(PassphraseError):
        jwe.decrypt(tampered, "passphrase")
    with pytest.raises(FormatError, match="five"):
        jwe.decrypt("a.b.c", "passphrase")
    other = jwe._b64(json.dumps({"alg": "dir", "enc": "A256GCM"}).encode())
    with pytest.raises(FormatError, match="not supported"):
        jwe.decrypt(".".join([other, *parts[1:]]), "passphrase")


def test_rfc7517_pbes2_key_unwrap_vector() -> None:
    """RFC 7517 appendix C: a JWK wrapped with PBES2-HS256+A128KW / A128CBC-HS256 is refused by its
    enc (notary-signer only uses A256GCM); its key unwrap is still checked against the RFC."""
    from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

    salt = bytes([217, 96, 147, 112, 150, 117, 70, 247, 127, 8, 155, 137, 174, 42, 80, 215])
    kek = jwe._kek("Thus from my lips, by yours, my sin is purged.", salt, 4096)
    wrapped = jwe._unb64("TrqXOwuNUfDV9VPTNbyGvEJ9JMjefAVn-TR1uIxR9p6hsRQh9Tk7BA", "k")
    cek = aes_key_unwrap(kek, wrapped)
    assert list(cek) == [111, 27, 25, 52, 66, 29, 20, 78, 92, 176, 56, 240, 65, 208, 82, 112, 161, 131, 36, 55,
                         202, 236, 185, 172, 129, 23, 153, 194, 195, 48, 253, 182]


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa"])
def test_notary_private_bytes(algorithm: str) -> None:
    key = PrivateKey.generate(algorithm)
    raw = private_bytes(key)
    if algorithm == "ed25519":
        assert len(raw) == 64 and raw[32:] == key.public_key().public
    assert load_private(algorithm, raw).keyid == key.keyid


def test_notary_signer_keys_as_signer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_SIGNER_ALIAS1", "alias-one-pass")
    url = f"sqlite:///{tmp_path / 'signer.db'}"
    keys = NotarySignerKeys(url, "alias1")
    try:
        pub = keys.create_key("example.com/app", "timestamp", "ecdsa")
        assert keys.create_key("example.com/app", "timestamp", "ecdsa") == pub  # unused: handed out again
        assert keys.latest_key("example.com/app", "timestamp") == pub
        assert keys.public_key("example.com/app", pub.keyid) == pub
        assert keys.public_key("example.com/other", pub.keyid) is None
        method, sig = keys.sign("example.com/app", pub.keyid, b"message")
        pub.verify(method, sig, b"message")
        assert keys.create_key("example.com/app", "timestamp", "ecdsa") != pub  # used now: a new key
        row = keys.engine.connect().execute(keys.t.select().where(keys.t.c.key_id == pub.keyid)).one()
        assert row.passphrase_alias == "alias1" and row.last_used is not None
        assert row.keywrap_alg == "PBES2-HS256+A128KW" and row.encryption_alg == "A256GCM"
        assert jwe.decrypt(bytes(row.private).decode(), "alias-one-pass")
    finally:
        keys.close()
    fresh = NotarySignerKeys(url, "alias1")  # a new process: decrypts from the table
    try:
        fresh.sign("example.com/app", pub.keyid, b"again")
        monkeypatch.setenv("NOTARY_SIGNER_ALIAS1", "changed")
        other = NotarySignerKeys(url, "alias1")
        with pytest.raises(Exception, match="does not decrypt"):
            other.sign("example.com/app", pub.keyid, b"x")
        other.close()
    finally:
        fresh.close()
    monkeypatch.delenv("NOTARY_SIGNER_ALIAS1")
    with pytest.raises(ConfigError, match="NOTARY_SIGNER_ALIAS1"):
        NotarySignerKeys(url, "alias1")
