"""Registry credentials as the docker CLI keeps them in ``$DOCKER_CONFIG/config.json``.

Reading honours ``credHelpers`` (per registry) and ``credsStore`` (default helper) by running
``docker-credential-<helper> get``; otherwise ``auths.<registry>.auth`` = base64("user:password")
(or ``username``/``password`` fields). Writing goes to the helper when one is configured, else to
``auths`` with every other key preserved, in a 0600 file replaced atomically.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trustbox.auth.htpasswd import atomic_write
from trustbox.errors import ConfigError

DOCKER_HUB = "https://index.docker.io/v1/"
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB})
HELPER_TIMEOUT = 30


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``."""
    env = os.environ if environ is None else environ
    value = env.get("DOCKER_CONFIG", "")
    return Path(value) if value else Path.home() / ".docker"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``<config dir>/config.json``."""
    return config_dir(environ) / "config.json"


def registry_key(registry: str) -> str:
    """The key docker files a registry under: ``host[:port]``, or Docker Hub's v1 URL."""
    value = registry.strip()
    if value in _HUB_NAMES:
        return DOCKER_HUB
    for prefix in ("https://", "http://"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    host = value.split("/", 1)[0]
    if host in _HUB_NAMES:
        return DOCKER_HUB
    if not host:
        raise ConfigError(f"invalid registry address {registry!r}")
    return host


def _key_matches(key: str, wanted: str) -> bool:
    try:
        return registry_key(key) == wanted
    except ConfigError:
        return False


def load_config(path: Path) -> dict[str, Any]:
    """The parsed config file, ``{}`` if it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return data


def save_config(path: Path, data: Mapping[str, Any]) -> None:
    """Write the config as docker does (tab-indented JSON), 0600, atomically."""
    atomic_write(path, json.dumps(data, indent="\t").encode("utf-8"), 0o600)


def helper_for(config: Mapping[str, Any], key: str) -> str | None:
    """The credential helper for a registry: ``credHelpers[key]``, else ``credsStore``."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for k, v in helpers.items():
            if isinstance(v, str) and v and _key_matches(k, key):
                return v
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _run_helper(helper: str, verb: str, data: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{helper}"
    if shutil.which(program) is None:
        raise ConfigError(f"credential helper {program} not found in PATH")
    try:
        return subprocess.run(
            [program, verb], input=data, capture_output=True, text=True, timeout=HELPER_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"credential helper {program} failed: {exc}") from None


def helper_get(helper: str, server: str) -> tuple[str, str] | None:
    """Ask ``docker-credential-<helper> get``; None when it has nothing for ``server``."""
    proc = _run_helper(helper, "get", server)
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        raise ConfigError(f"credential helper {helper} failed: {proc.stdout.strip() or proc.stderr.strip()}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise ConfigError(f"credential helper {helper} returned invalid JSON") from None
    user, secret = (data.get("Username"), data.get("Secret")) if isinstance(data, dict) else (None, None)
    if not isinstance(user, str) or not isinstance(secret, str) or not secret or user == "<token>":
        return None
    return user, secret


def helper_store(helper: str, server: str, user: str, password: str) -> None:
    """``docker-credential-<helper> store``."""
    payload = json.dumps({"ServerURL": server, "Username": user, "Secret": password})
    proc = _run_helper(helper, "store", payload)
    if proc.returncode != 0:
        raise ConfigError(f"credential helper {helper} could not store credentials: {proc.stdout.strip() or proc.stderr.strip()}")


def helper_erase(helper: str, server: str) -> None:
    """``docker-credential-<helper> erase``."""
    proc = _run_helper(helper, "erase", server)
    if proc.returncode != 0 and "credentials not found" not in (proc.stdout + proc.stderr).lower():
        raise ConfigError(f"credential helper {helper} could not erase credentials: {proc.stdout.strip() or proc.stderr.strip()}")


def _decode_entry(entry: object) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep and user else None
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(secret, str):
        return name, secret
    return None


def credentials_for(registry_host: str, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """``(user, password)`` docker stored for a registry (helper first, then ``auths``), or None."""
    key = registry_key(registry_host)
    path = config_path(environ)
    config = load_config(path)
    helper = helper_for(config, key)
    if helper is not None:
        found = helper_get(helper, key)
        if found is not None:
            return found
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    if key in auths:
        found = _decode_entry(auths[key])
        if found is not None:
            return found
    for k, entry in auths.items():
        if _key_matches(k, key):
            found = _decode_entry(entry)
            if found is not None:
                return found
    return None


def store_credentials(registry_host: str, user: str, password: str, environ: Mapping[str, str] | None = None) -> Path:
    """Remember credentials as ``docker login`` does; return the config file path."""
    key = registry_key(registry_host)
    path = config_path(environ)
    config = load_config(path)
    helper = helper_for(config, key)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    if helper is not None:
        helper_store(helper, key, user, password)
        auths[key] = {}
    else:
        auths[key] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode("ascii")}
    config["auths"] = auths
    save_config(path, config)
    return path


def erase_credentials(registry_host: str, environ: Mapping[str, str] | None = None) -> bool:
    """Forget credentials for a registry (``docker logout``); True if any were stored."""
    key = registry_key(registry_host)
    path = config_path(environ)
    config = load_config(path)
    helper = helper_for(config, key)
    found = False
    if helper is not None:
        found = helper_get(helper, key) is not None
        helper_erase(helper, key)
    auths = config.get("auths")
    if isinstance(auths, dict):
        for k in [k for k in auths if _key_matches(k, key)]:
            del auths[k]
            found = True
        if found:
            save_config(path, config)
    return found
