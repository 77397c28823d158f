"""Trust server configuration: defaults, an optional JSON/TOML file, then explicit overrides.

A notary-server 0.7 ``server.json`` (one naming ``storage.backend`` or ``trust_service``) is read as
notary-server reads it, strictly (:mod:`trustbox.trustserver.notary_config`): its SQL backends
select notary's own table layout (``notary_schema``), so trustbox takes over the database in place.
Otherwise the file may use upstream's layout for the keys trustbox understands
(``server.http_addr``, ``server.tls_cert_file``, ``server.tls_key_file``, ``storage.db_url``,
``trust_service.key_algorithm``, ``caching.max_age.current_metadata`` /
``consistent_metadata``, ``repositories.gun_prefixes``, ``auth``) plus a ``trustbox`` section
(``max_upload_bytes``, ``key_passphrase``, ``key_passphrase_file``, ``insecure_dev_keys``).
``auth`` is notary's ``{"type": "token", "options": {"realm", "service", "issuer",
"rootcertbundle"}}``, or trustbox's ``{"type": "htpasswd", "options": {"path"[, "realm", "rules"]}}``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from trustbox.errors import ConfigError
from trustbox.trustserver.notary_config import is_notary_layout, notary_server_fields

DEFAULT_DB = "sqlite:///./trustbox-trust.db"
#: notary-server reads update bodies without a cap; this default takes a 100,000-target repository
#: (a 19 MB targets.json, ~170,000 targets fit) while bounding what one upload holds in memory
DEFAULT_MAX_UPLOAD = 32 * 1024 * 1024
DEFAULT_MAX_TARGETS = 1_000_000
#: the keys of the ``trustbox`` section of a config file
TRUSTBOX_KEYS = (
    "listen", "tls_cert", "tls_key", "db", "table_prefix", "max_upload_bytes", "body_timeout",
    "max_targets_per_update", "max_delegations_per_update", "pg_cache_current", "key_algorithm",
    "key_passphrase", "key_passphrase_file", "insecure_dev_keys", "workers", "gun_prefixes",
    "signer_url", "signer_token", "signer_token_file", "signer_ca", "auth_token_realm",
    "auth_token_service", "auth_token_issuer", "auth_token_rootcertbundle", "htpasswd",
    "htpasswd_realm", "auth_rules", "notary_schema", "notary_signer_config", "log_level",
    "ui_warn_days", "ui_registry_url", "ui_registry_ca",
)
MAX_CACHE_AGE = 31536000
KEY_ALGORITHMS = ("ed25519", "ecdsa", "rsa")


@dataclass(frozen=True)
class ServerConfig:
    """Everything the trust server needs to run."""

    listen: str = "127.0.0.1:4443"
    tls_cert: str | None = None
    tls_key: str | None = None
    db: str = DEFAULT_DB
    table_prefix: str = ""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    body_timeout: float = 60.0
    max_targets_per_update: int = DEFAULT_MAX_TARGETS
    max_delegations_per_update: int = 1_000
    pg_cache_current: bool = False
    key_algorithm: str = "ed25519"
    current_max_age: int = 300
    consistent_max_age: int = 2592000
    gun_prefixes: tuple[str, ...] = ()
    key_passphrase: str | None = field(default=None, repr=False)
    key_passphrase_file: str | None = None
    insecure_dev_keys: bool = False
    workers: int = 1
    log_level: str = "error"
    signer_url: str | None = None
    signer_token: str | None = field(default=None, repr=False)
    signer_token_file: str | None = None
    signer_ca: str | None = None
    auth_token_realm: str | None = None
    auth_token_service: str | None = None
    auth_token_issuer: str | None = None
    auth_token_rootcertbundle: str | None = None
    htpasswd: str | None = None
    htpasswd_realm: str = "trustbox-notary"
    auth_rules: str | None = None
    #: the web page (/_trustbox/): warning window for expiries, optional registry to show tags from
    ui_warn_days: float = 30.0
    ui_registry_url: str | None = None
    ui_registry_ca: str | None = None
    #: documents in notary-server's own ``tuf_files``/``changefeed`` tables (taking over its database)
    notary_schema: bool = False
    #: notary-signer's config file: sign with the keys in its database (its passphrase aliases)
    notary_signer_config: str | None = None
    #: the config file asked for notary-server's ``trust_service.type = remote`` (notary-signer)
    notary_remote_trust: bool = False

    def auth_section(self) -> dict[str, Any] | None:
        """The ``auth`` section for :func:`trustbox.auth.middleware.authorizer_from_config`, or None (off)."""
        token = {
            "realm": self.auth_token_realm,
            "service": self.auth_token_service,
            "issuer": self.auth_token_issuer,
            "rootcertbundle": self.auth_token_rootcertbundle,
        }
        if any(token.values()):
            if self.htpasswd:
                raise ConfigError("give either token auth or --htpasswd, not both")
            missing = [k for k, v in token.items() if not v]
            if missing:
                raise ConfigError(f"token auth needs {', '.join('--auth-token-' + k for k in missing)}")
            return {"type": "token", "options": token}
        if self.htpasswd:
            options = {"realm": self.htpasswd_realm, "path": self.htpasswd}
            if self.auth_rules:
                options["rules"] = self.auth_rules
            return {"type": "htpasswd", "options": options}
        if self.auth_rules:
            raise ConfigError("--auth-rules needs --htpasswd")
        return None

    def signer_token_value(self) -> str:
        """The bearer token for the signer service (from the file, else the value)."""
        if self.signer_token_file:
            try:
                token = Path(self.signer_token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read signer token file {self.signer_token_file}: {exc.strerror}") from exc
        else:
            token = self.signer_token or ""
        if not token:
            raise ConfigError("the signer service needs a token", hint="give --signer-token-file or TRUSTBOX_SIGNER_TOKEN")
        return token

    def validate(self) -> ServerConfig:
        """Raise ConfigError on values that cannot work; return self."""
        if self.key_algorithm not in KEY_ALGORITHMS:
            raise ConfigError(f"key algorithm must be one of {', '.join(KEY_ALGORITHMS)}, not {self.key_algorithm!r}")
        for name in ("current_max_age", "consistent_max_age"):
            v = getattr(self, name)
            if not 0 <= v <= MAX_CACHE_AGE:
                raise ConfigError(f"{name} must be between 0 and {MAX_CACHE_AGE} seconds")
        if self.max_upload_bytes < 1024:
            raise ConfigError("max upload size must be at least 1024 bytes")
        if self.max_targets_per_update < 1 or self.max_delegations_per_update < 1:
            raise ConfigError("max targets and max delegations per update must be at least 1")
        if isinstance(self.body_timeout, bool) or not isinstance(self.body_timeout, (int, float)) or not 0 < self.body_timeout <= 3600:
            raise ConfigError("body timeout must be between 0 and 3600 seconds")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key must be given together")
        if self.table_prefix and not all(c.isalnum() or c == "_" for c in self.table_prefix):
            raise ConfigError("table prefix may only contain letters, digits and '_'")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.notary_signer_config and self.signer_url:
            raise ConfigError("give either a notary-signer config or a trustbox signer service, not both")
        if self.notary_remote_trust and not (self.notary_signer_config or self.signer_url):
            raise ConfigError(
                "trust_service.type remote: trustbox does not speak notary-signer's gRPC API",
                hint="give --notary-signer-config (or trustbox.notary_signer_config) with notary-signer's config "
                     "file: trustbox then signs in-process with the keys in notary-signer's database",
            )
        if self.notary_signer_config and self.key_algorithm == "rsa":
            raise ConfigError("trust_service.key_algorithm rsa: notary-signer keys are ed25519 or ecdsa")
        split_listen(self.listen)
        self.auth_section()
        return self

    def with_overrides(self, **values: Any) -> ServerConfig:
        """A copy with every non-None value of ``values`` applied."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) into host and port."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen address must be HOST:PORT, got {listen!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _dig(d: dict[str, Any], *path: str) -> Any:
    cur: Any = d
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML config file into ServerConfig field values."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text.decode()) if p.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {p} is not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {p} must hold an object")
    out: dict[str, Any] = {}
    if is_notary_layout(raw):
        out.update(notary_server_fields(raw, p))
    else:
        mapping: list[tuple[str, tuple[str, ...]]] = [
            ("listen", ("server", "http_addr")),
            ("tls_cert", ("server", "tls_cert_file")),
            ("tls_key", ("server", "tls_key_file")),
            ("db", ("storage", "db_url")),
            ("key_algorithm", ("trust_service", "key_algorithm")),
            ("current_max_age", ("caching", "max_age", "current_metadata")),
            ("consistent_max_age", ("caching", "max_age", "consistent_metadata")),
            ("gun_prefixes", ("repositories", "gun_prefixes")),
            ("log_level", ("logging", "level")),
        ]
        for name, path_ in mapping:
            v = _dig(raw, *path_)
            if v is not None:
                out[name] = v
    tb = raw.get("trustbox") or {}
    if not isinstance(tb, dict):
        raise ConfigError("the trustbox section must be an object")
    for name in tb:
        if name not in TRUSTBOX_KEYS:
            raise ConfigError(f"config option trustbox.{name} is unknown")
        out[name] = tb[name]
    out.update(_auth_fields(raw.get("auth")))
    if "gun_prefixes" in out:
        gp = out["gun_prefixes"]
        if not isinstance(gp, (list, tuple)) or not all(isinstance(x, str) for x in gp):
            raise ConfigError("repositories.gun_prefixes must be a list of strings")
        out["gun_prefixes"] = tuple(gp)
    if "notary_signer_config" in out and isinstance(out["notary_signer_config"], str):
        out["notary_signer_config"] = str(p.parent / out["notary_signer_config"])
    for name in ("current_max_age", "consistent_max_age", "max_upload_bytes", "workers",
                 "max_targets_per_update", "max_delegations_per_update"):
        if name in out and (isinstance(out[name], bool) or not isinstance(out[name], int)):
            raise ConfigError(f"{name} must be an integer")
    return out


def _auth_fields(auth: Any) -> dict[str, Any]:
    """ServerConfig fields from notary's ``auth`` section (``type`` + ``options``)."""
    if auth is None or auth == {}:
        return {}
    if not isinstance(auth, dict):
        raise ConfigError("auth must be an object with type and options")
    kind = auth.get("type")
    options = auth.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise ConfigError("auth.options must map names to strings")
    if kind in (None, "", "none"):
        return {}
    if kind == "token":
        unknown = set(options) - {"realm", "service", "issuer", "rootcertbundle"}
        if unknown:
            raise ConfigError(f"unknown token auth option {sorted(unknown)[0]!r}")
        return {f"auth_token_{k}": v for k, v in options.items()}
    if kind == "htpasswd":
        unknown = set(options) - {"realm", "path", "rules"}
        if unknown:
            raise ConfigError(f"unknown htpasswd auth option {sorted(unknown)[0]!r}")
        names = {"path": "htpasswd", "realm": "htpasswd_realm", "rules": "auth_rules"}
        return {names[k]: v for k, v in options.items()}
    raise ConfigError(f"unsupported auth type {kind!r} (use token, htpasswd or none)")
