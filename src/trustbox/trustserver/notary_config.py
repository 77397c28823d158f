"""notary-server 0.7's (and notary-signer's) configuration files, read as they read them.

:func:`notary_server_fields` turns a notary-server ``server.json`` into
:class:`~trustbox.trustserver.config.ServerConfig` field values; every key notary-server reads is
either honoured or refused with a message naming it (never ignored), and so is any key it does not
know. ``NOTARY_SERVER_<SECTION>_<KEY>`` environment variables override the file as viper's
``AutomaticEnv`` makes them do; paths of TLS files are relative to the file, as notary-server takes them.

:func:`notary_signer_storage` reads notary-signer's config for what trustbox needs to use its key
database in place: ``storage.backend``, ``storage.db_url`` and ``storage.default_alias``
(``NOTARY_SIGNER_*`` overrides too).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trustbox.errors import ConfigError
from trustbox.trustserver.dburl import notary_db_url

#: notary-server's keys, section by section (``None``: a nested section)
SERVER_KEYS: dict[str, tuple[str, ...]] = {
    "server": ("http_addr", "tls_cert_file", "tls_key_file", "client_ca_file"),
    "storage": ("backend", "db_url", "tls_ca_file", "client_cert_file", "client_key_file", "database",
                "username", "password"),
    "trust_service": ("type", "key_algorithm", "hostname", "port", "tls_ca_file", "tls_client_cert",
                      "tls_client_key"),
    "logging": ("level",),
    "caching": ("max_age",),
    "repositories": ("gun_prefixes",),
    "auth": ("type", "options"),
    "reporting": ("bugsnag",),
}
#: logrus levels onto trustbox's
LOG_LEVELS = {"panic": "critical", "fatal": "critical", "error": "error", "warn": "warning",
              "warning": "warning", "info": "info", "debug": "debug", "trace": "debug"}
MAX_AGE_LIMIT = 31536000


def is_notary_layout(raw: Mapping[str, Any]) -> bool:
    """Whether a config file is notary-server's (it names a storage backend or a trust service)."""
    storage = raw.get("storage")
    return (isinstance(storage, dict) and "backend" in storage) or "trust_service" in raw


def _env(prefix: str, *path: str) -> str | None:
    value = os.environ.get(prefix + "_".join(p.upper() for p in path))
    return value if value else None


def _get(raw: Mapping[str, Any], prefix: str, *path: str) -> Any:
    env = _env(prefix, *path)
    if env is not None:
        return env
    cur: Any = raw
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def _str(raw: Mapping[str, Any], prefix: str, *path: str) -> str:
    v = _get(raw, prefix, *path)
    if v is None:
        return ""
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ConfigError(f"{'.'.join(path)} must be a string")
    return str(v)


def _relative(base: Path, value: str) -> str:
    if not value or os.path.isabs(value):
        return value
    return os.path.normpath(os.path.join(base, value))


def _check_keys(raw: Mapping[str, Any], allowed_top: set[str]) -> None:
    for section, body in raw.items():
        if section not in allowed_top:
            raise ConfigError(f"config option {section!r} is not one notary-server or trustbox knows; remove it")
        if section == "trustbox" or section not in SERVER_KEYS:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"config section {section!r} must be an object")
        for key in body:
            if key not in SERVER_KEYS[section]:
                raise ConfigError(f"config option {section}.{key} is not one notary-server reads; remove it")


def _max_age(raw: Mapping[str, Any], name: str) -> int | None:
    v = _get(raw, "NOTARY_SERVER_", "caching", "max_age", name)
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ConfigError(f"caching.max_age.{name} must be a number of seconds")
    try:
        seconds = int(v)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= MAX_AGE_LIMIT:
        raise ConfigError(f"caching.max_age.{name}: must specify a cache-control max-age between 0 and {MAX_AGE_LIMIT}")
    return seconds


def _gun_prefixes(raw: Mapping[str, Any]) -> tuple[str, ...] | None:
    v = _get(raw, "NOTARY_SERVER_", "repositories", "gun_prefixes")
    if v is None:
        return None
    if isinstance(v, str):  # from the environment: space separated, as viper splits it
        v = v.split()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError("repositories.gun_prefixes must be a list of strings")
    for prefix in v:
        p = posixpath.normpath(prefix.strip())
        if p + "/" != prefix or p.startswith("/") or p.startswith(".."):
            raise ConfigError(f"repositories.gun_prefixes: invalid GUN prefix {prefix}")
    return tuple(v)


def notary_server_fields(raw: Mapping[str, Any], config_path: Path) -> dict[str, Any]:
    """ServerConfig field values for a notary-server 0.7 config (``raw``: the parsed file).

    Raises ConfigError naming the first option trustbox cannot honour or does not know.
    """
    _check_keys(raw, set(SERVER_KEYS) | {"trustbox"})
    base = config_path.parent
    env = "NOTARY_SERVER_"
    out: dict[str, Any] = {}

    addr = _str(raw, env, "server", "http_addr")
    if not addr:
        raise ConfigError("server.http_addr: http listen address required for server")
    out["listen"] = addr
    cert = _relative(base, _str(raw, env, "server", "tls_cert_file"))
    key = _relative(base, _str(raw, env, "server", "tls_key_file"))
    if _str(raw, env, "server", "client_ca_file"):
        raise ConfigError("server.client_ca_file (TLS client certificates) is not supported by trustbox",
                          hint="authenticate clients with the auth section instead")
    if bool(cert) != bool(key):
        raise ConfigError("server.tls_cert_file / server.tls_key_file: either include both a cert and key file, "
                          "or no TLS information at all to disable TLS")
    if cert:
        out["tls_cert"], out["tls_key"] = cert, key

    level = _str(raw, env, "logging", "level")
    if level:
        if level.lower() not in LOG_LEVELS:
            raise ConfigError(f"logging.level: not a valid log level: {level!r}")
        out["log_level"] = LOG_LEVELS[level.lower()]

    prefixes = _gun_prefixes(raw)
    if prefixes is not None:
        out["gun_prefixes"] = prefixes

    bugsnag = _get(raw, env, "reporting", "bugsnag")
    if bugsnag:
        raise ConfigError("reporting.bugsnag is not supported by trustbox (it reports nowhere); remove it")

    out.update(_trust_service(raw))

    backend = _str(raw, env, "storage", "backend")
    if backend == "rethinkdb":
        raise ConfigError("storage.backend rethinkdb is not supported by trustbox (use mysql, postgres or sqlite3)")
    for extra in ("tls_ca_file", "client_cert_file", "client_key_file", "database", "username", "password"):
        if _get(raw, env, "storage", extra):
            raise ConfigError(f"storage.{extra} is a rethinkdb option; trustbox supports mysql, postgres, sqlite3, memory")
    if not backend:
        raise ConfigError("storage.backend: must be one of memory, mysql, postgres, sqlite3")
    out["db"] = notary_db_url(backend, _str(raw, env, "storage", "db_url"))
    if backend == "postgres":
        out["db"] = _str(raw, env, "storage", "db_url")
    out["notary_schema"] = backend != "memory"

    for name in ("current_metadata", "consistent_metadata"):
        seconds = _max_age(raw, name)
        if seconds is not None:
            out["current_max_age" if name == "current_metadata" else "consistent_max_age"] = seconds
    max_age = _get(raw, env, "caching", "max_age")
    if isinstance(max_age, dict):
        for key in max_age:
            if key not in ("current_metadata", "consistent_metadata"):
                raise ConfigError(f"config option caching.max_age.{key} is not one notary-server reads; remove it")
    return out


def _trust_service(raw: Mapping[str, Any]) -> dict[str, Any]:
    env = "NOTARY_SERVER_"
    kind = _str(raw, env, "trust_service", "type")
    out: dict[str, Any] = {}
    if kind == "local":
        # notary-server keeps local keys in memory and always makes ed25519 ones; trustbox keeps them
        # encrypted in its database and honours key_algorithm
        algorithm = _str(raw, env, "trust_service", "key_algorithm")
        if algorithm:
            out["key_algorithm"] = algorithm
        return out
    if kind != "remote":
        raise ConfigError('trust_service.type: must specify either a "local" or "remote" type for trust_service')
    algorithm = _str(raw, env, "trust_service", "key_algorithm")
    if algorithm not in ("ed25519", "ecdsa", "rsa"):
        raise ConfigError(f"trust_service.key_algorithm: invalid key algorithm configured: {algorithm}")
    out["key_algorithm"] = algorithm
    out["notary_remote_trust"] = True
    return out


def notary_signer_storage(path: str | Path) -> tuple[str, str]:
    """The SQLAlchemy URL of notary-signer's key database and its default alias, from its config.

    Raises ConfigError for an unreadable file or a storage trustbox cannot use in place.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read notary-signer config {p}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ConfigError(f"notary-signer config {p} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"notary-signer config {p} must hold an object")
    env = "NOTARY_SIGNER_"
    backend = _str(raw, env, "storage", "backend")
    if backend in ("memory", "rethinkdb") or backend not in ("mysql", "postgres", "sqlite3"):
        raise ConfigError(f"notary-signer storage.backend {backend or '(none)'}: trustbox can use only a "
                          "mysql, postgres or sqlite3 key database in place")
    url = notary_db_url(backend, _str(raw, env, "storage", "db_url"))
    alias = _str(raw, env, "storage", "default_alias") or os.environ.get(env + "DEFAULT_ALIAS", "")
    if not alias:
        raise ConfigError("notary-signer config: must provide a default alias for the key DB (storage.default_alias)")
    return url, alias
