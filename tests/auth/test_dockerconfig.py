"""Docker config credentials: auths, credHelpers/credsStore, atomic 0600 writes; challenge parsing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from trustbox.client.dockerenv import (
    DOCKER_HUB,
    credentials_for,
    erase_credentials,
    registry_key,
    store_credentials,
)
from trustbox.client.transport import parse_challenges
from trustbox.errors import ConfigError
from trustbox.oci.reference import is_loopback

HELPER = """#!/bin/sh
store="$(dirname "$0")/store.json"
case "$1" in
  get) read server; if [ "$server" = "reg.example:5000" ]; then
         echo '{"ServerURL":"reg.example:5000","Username":"helper-user","Secret":"helper-secret"}'
       else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > "$store" ;;
  erase) read server; echo "$server" > "$(dirname "$0")/erased" ;;
esac
"""


def test_registry_key() -> None:
    assert registry_key("https://Reg.example:5000/v2/") == "Reg.example:5000"
    assert registry_key("docker.io") == DOCKER_HUB == registry_key("index.docker.io")
    with pytest.raises(ConfigError):
        registry_key("https://")


def test_store_and_read_plain(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "cfg")}
    assert credentials_for("reg.example", env) is None
    path = store_credentials("https://reg.example", "u", "p:w", env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"auths": {"reg.example": {"auth": "dTpwOnc="}}}
    assert credentials_for("reg.example", env) == ("u", "p:w")
    path.write_text(json.dumps({"auths": {"https://reg2.example/v1/": {"username": "a", "password": "b"}}}))
    assert credentials_for("reg2.example", env) == ("a", "b")
    assert erase_credentials("reg2.example", env) and credentials_for("reg2.example", env) is None
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        credentials_for("reg.example", env)


def test_credential_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-fake"
    helper.write_text(HELPER)
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    env = {"DOCKER_CONFIG": str(cfg)}
    (cfg / "config.json").write_text(json.dumps({"credHelpers": {"reg.example:5000": "fake"}, "auths": {}}))
    assert credentials_for("reg.example:5000", env) == ("helper-user", "helper-secret")
    assert credentials_for("other.example", env) is None
    store_credentials("reg.example:5000", "new", "secret", env)
    assert json.loads((bindir / "store.json").read_text()) == {
        "ServerURL": "reg.example:5000", "Username": "new", "Secret": "secret"}
    assert "secret" not in (cfg / "config.json").read_text()
    (cfg / "config.json").write_text(json.dumps({"credsStore": "missing-helper"}))
    with pytest.raises(ConfigError, match="not found"):
        credentials_for("reg.example:5000", env)


def test_parse_challenges_and_loopback() -> None:
    got = parse_challenges(['Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"',
                            'Basic realm="r\\"q"'])
    assert got == [("bearer", {"realm": "https://a/token", "service": "reg", "scope": "repository:x:pull,push"}),
                   ("basic", {"realm": 'r"q'})]
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.2:443") and is_loopback("[::1]:5000")
    assert not is_loopback("reg.example:5000") and not is_loopback("10.0.0.1")
