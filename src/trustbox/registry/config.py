"""Registry configuration: defaults < config file (TOML or JSON) < environment < command line."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trustbox.errors import ConfigError
from trustbox.registry.blobs import VerifyPolicy
from trustbox.registry.distconfig import read_distribution_config
from trustbox.registry.layout import LAYOUT_CHOICES
from trustbox.registry.storage import S3Options, StorageDriver, open_storage

ENV_PREFIX = "TRUSTBOX_"


@dataclass
class RegistryConfig:
    """Everything ``trustbox serve registry`` can be told."""

    listen: str = "127.0.0.1:5000"
    storage: str = "./registry-data"
    layout: str = "auto"  # storage layout: auto (what the storage holds), trustbox, registry2
    tls_cert: str | None = None
    tls_key: str | None = None
    verify_blobs: str = VerifyPolicy.FIRST.value
    htpasswd: str | None = None
    htpasswd_realm: str = "trustbox-registry"
    auth_token_realm: str | None = None
    auth_token_service: str | None = None
    auth_token_issuer: str | None = None
    auth_token_rootcertbundle: str | None = None
    delete_enabled: bool = True
    read_only: bool = False
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    spool_dir: str | None = None
    workers: int = 1
    max_manifest_size: int = 4 << 20
    max_json_depth: int = 64
    max_upload_sessions: int = 1000  # open upload sessions per user (per repository without auth)
    upload_idle_timeout: int = 3600  # seconds without a chunk after which an upload session expires
    body_timeout: int = 60
    log_level: str = "info"
    trust_policy: str | None = None  # trust policy file (docs/registry.md, "Trust policy")
    # --- what a registry:2 configuration can also say (registry/distconfig.py) ---------------
    storage_max_threads: int = 0  # storage.filesystem.maxthreads (0: the default thread pool)
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_session_token: str | None = None
    s3_path_style: bool | None = None  # None: boto3's choice
    s3_verify_tls: bool = True
    s3_chunk_size: int | None = None  # multipart part size
    s3_sse: str | None = None  # AES256 or aws:kms
    s3_sse_kms_key_id: str | None = None
    s3_storage_class: str | None = None
    s3_object_acl: str | None = None
    http_host: str | None = None  # external base URL for Location headers and event URLs
    http_prefix: str = ""  # path prefix the API is served under ("/registry")
    relative_urls: bool = True  # Location headers as paths (trustbox) or absolute URLs (registry:2)
    http_headers: dict[str, list[str]] = field(default_factory=dict)  # added to every API response
    http1_only: bool = False
    tls_min_version: str | None = None  # "1.2" or "1.3"
    notifications: list[dict[str, Any]] = field(default_factory=list)  # webhook endpoints
    notify_include_references: bool = False
    notify_queue_size: int = 10000  # events held per endpoint while it is unreachable
    log_formatter: str = "text"
    log_fields: dict[str, str] = field(default_factory=dict)
    access_log: bool = True
    manifest_urls_checked: bool = False  # check layer URLs against allow/deny (registry:2's validation)
    manifest_urls_allow: list[str] = field(default_factory=list)
    manifest_urls_deny: list[str] = field(default_factory=list)
    health_interval: float = 0.0  # storage health check period in seconds (0: off)
    health_threshold: int = 0
    catalog_max_entries: int = 0  # largest catalog page (0: unlimited)

    def host_port(self) -> tuple[str, int]:
        """Split ``listen`` into host and port."""
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"invalid listen address {self.listen!r}", hint="use HOST:PORT, e.g. 127.0.0.1:5000")
        return host.strip("[]") or "0.0.0.0", int(port)

    def validate(self) -> RegistryConfig:
        """Check values; raise ConfigError with a hint on anything wrong."""
        self.host_port()
        try:
            VerifyPolicy(self.verify_blobs)
        except ValueError:
            raise ConfigError(
                f"invalid verify_blobs {self.verify_blobs!r}", hint="use always, first or never"
            ) from None
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("TLS needs both a certificate and a key", hint="give --tls-cert and --tls-key")
        for f in (self.tls_cert, self.tls_key, self.htpasswd, self.auth_token_rootcertbundle, self.trust_policy):
            if f and not Path(f).is_file():
                raise ConfigError(f"file not found: {f}")
        self.auth_section()
        if self.layout not in LAYOUT_CHOICES:
            raise ConfigError(f"invalid layout {self.layout!r}", hint="use auto, trustbox or registry2")
        if self.http_prefix and not self.http_prefix.startswith("/"):
            raise ConfigError(f"http prefix {self.http_prefix!r} must start with /")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        for name in ("max_manifest_size", "max_json_depth", "max_upload_sessions", "upload_idle_timeout",
                     "body_timeout"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        return self

    def auth_section(self) -> dict[str, Any] | None:
        """registry:2's ``auth`` section (``token`` or ``htpasswd``) for ``authorizer_from_config``, or None."""
        token = {
            "realm": self.auth_token_realm,
            "service": self.auth_token_service,
            "issuer": self.auth_token_issuer,
            "rootcertbundle": self.auth_token_rootcertbundle,
        }
        if any(token.values()):
            if self.htpasswd:
                raise ConfigError("give either token auth or htpasswd, not both")
            missing = [k for k, v in token.items() if not v]
            if missing:
                raise ConfigError(f"token auth needs {', '.join('--auth-token-' + k for k in missing)}")
            return {"token": token}
        if self.htpasswd:
            return {"htpasswd": {"realm": self.htpasswd_realm, "path": self.htpasswd}}
        return None

    def open_driver(self) -> StorageDriver:
        """The storage driver this configuration names (S3 with its options).

        Raises:
            ConfigError: an unknown scheme or an S3 URL without a bucket.
        """
        return open_storage(
            self.storage,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
            spool_dir=Path(self.spool_dir) if self.spool_dir else None,
            s3_options=S3Options(
                access_key=self.s3_access_key, secret_key=self.s3_secret_key, session_token=self.s3_session_token,
                path_style=self.s3_path_style, verify_tls=self.s3_verify_tls, chunk_size=self.s3_chunk_size,
                sse=self.s3_sse, sse_kms_key_id=self.s3_sse_kms_key_id, storage_class=self.s3_storage_class,
                object_acl=self.s3_object_acl,
            ),
        )

    def to_json(self) -> str:
        """Serialised form (handed to worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RegistryConfig:
        """Inverse of to_json."""
        return cls(**json.loads(text))


def _coerce(name: str, value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind in (int, "int"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if kind == "any":
        if not isinstance(value, (dict, list)):
            raise ConfigError(f"{name}: expected a table or list, got {value!r}")
        return value
    return str(value)


def _kind(type_text: str) -> str:
    """How a field's value is coerced, from its annotation."""
    if type_text.startswith(("dict", "list")):
        return "any"
    for base in ("bool", "int", "float"):
        if base in type_text:
            return base
    return "str"


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON config file; keys as in RegistryConfig (``-`` or ``_``)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"invalid config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a table/object")
    if isinstance(data.get("registry"), dict):
        data = data["registry"]
    out = {str(k).replace("-", "_"): v for k, v in data.items() if k != "auth"}
    out.update(_auth_fields(data.get("auth"), path))
    return out


def _auth_fields(auth: Any, path: Path) -> dict[str, Any]:
    """Flat options from registry:2's ``auth: {token: {...}}`` or ``auth: {htpasswd: {realm, path}}``."""
    if not auth:
        return {}
    if not isinstance(auth, dict) or len(auth) != 1 or not isinstance(next(iter(auth.values())), dict):
        raise ConfigError(f"{path}: auth must hold exactly one of token, htpasswd")
    kind, options = next(iter(auth.items()))
    allowed = {"token": ("realm", "service", "issuer", "rootcertbundle"), "htpasswd": ("realm", "path")}.get(kind)
    if allowed is None:
        raise ConfigError(f"{path}: unsupported auth {kind!r} (use token or htpasswd)")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{path}: unknown {kind} auth option {unknown[0]!r}")
    if kind == "token":
        return {f"auth_token_{k}": v for k, v in options.items()}
    return {{"path": "htpasswd", "realm": "htpasswd_realm"}[k]: v for k, v in options.items()}


def is_distribution_config(path: Path) -> bool:
    """True for a registry:2 configuration file (YAML: ``.yml`` / ``.yaml``)."""
    return path.suffix.lower() in (".yml", ".yaml")


def load_config(config_file: Path | None, overrides: dict[str, Any], env: dict[str, str]) -> RegistryConfig:
    """Merge defaults, the config file, ``TRUSTBOX_*`` variables and explicit overrides.

    The config file is trustbox's (TOML or JSON) or registry:2's ``config.yml`` (YAML, read
    with its ``REGISTRY_*`` environment overrides by :mod:`trustbox.registry.distconfig`).

    Raises:
        ConfigError: an unreadable file, an unknown or invalid option, or a registry:2
            option trustbox cannot honour.
    """
    known = {f.name: str(f.type) for f in fields(RegistryConfig)}
    merged: dict[str, Any] = {}
    if config_file is not None:
        if is_distribution_config(config_file):
            values = read_distribution_config(config_file, env)
        else:
            values = read_config_file(config_file)
        for k, v in values.items():
            if k not in known:
                raise ConfigError(f"unknown option {k!r} in {config_file}")
            merged[k] = v
    for k in known:
        ev = env.get(ENV_PREFIX + k.upper())
        if ev is not None and ev != "" and _kind(known[k]) != "any":
            merged[k] = ev
    for k, v in overrides.items():
        if v is not None:
            merged[k] = v
    typed = {k: _coerce(k, v, _kind(known[k])) for k, v in merged.items()}
    return RegistryConfig(**typed).validate()
