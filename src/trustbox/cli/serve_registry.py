"""``trustbox serve registry``: the OCI distribution registry."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from trustbox.cli.http_limits import apply_http_limits, http_limit_options
from trustbox.registry.config import load_config


@click.command("registry")
@click.option("--listen", envvar="TRUSTBOX_LISTEN", help="HOST:PORT to listen on [127.0.0.1:5000].")
@click.option("--tls-cert", envvar="TRUSTBOX_TLS_CERT", type=click.Path(dir_okay=False), help="PEM certificate (enables HTTPS).")
@click.option("--tls-key", envvar="TRUSTBOX_TLS_KEY", type=click.Path(dir_okay=False), help="PEM private key.")
@click.option("--storage", envvar="TRUSTBOX_STORAGE", help="Directory, or s3://BUCKET/PREFIX [./registry-data].")
@click.option("--config", "config_file", envvar="TRUSTBOX_CONFIG", type=click.Path(dir_okay=False, exists=True),
              help="TOML (.toml) or JSON (.json) file with any of these options, or registry:2's config.yml "
                   "(.yml/.yaml, with its REGISTRY_* environment overrides).")
@click.option("--layout", envvar="TRUSTBOX_LAYOUT", type=click.Choice(["auto", "trustbox", "registry2"]),
              help="Storage layout: registry2 (registry:2's docker/registry/v2 tree, served in place), trustbox, "
                   "or auto: what the storage holds [auto; registry2 with a config.yml].")
@click.option("--verify-blobs", envvar="TRUSTBOX_VERIFY_BLOBS", type=click.Choice(["always", "first", "never"]),
              help="Re-hash stored blobs on read: always, first (again whenever the stored object changes), never [first].")
@click.option("--htpasswd", envvar="TRUSTBOX_HTPASSWD", type=click.Path(dir_okay=False),
              help="htpasswd file (bcrypt) enabling basic auth.")
@click.option("--auth-token-realm", envvar="TRUSTBOX_AUTH_TOKEN_REALM",
              help="Token auth: URL of the token server (e.g. https://auth.example/token).")
@click.option("--auth-token-service", envvar="TRUSTBOX_AUTH_TOKEN_SERVICE",
              help="Token auth: this registry's service name (the tokens' audience).")
@click.option("--auth-token-issuer", envvar="TRUSTBOX_AUTH_TOKEN_ISSUER", help="Token auth: the issuer (iss) tokens must carry.")
@click.option("--auth-token-rootcertbundle", envvar="TRUSTBOX_AUTH_TOKEN_ROOTCERTBUNDLE", type=click.Path(dir_okay=False),
              help="Token auth: PEM certificates of the token signing keys.")
@click.option("--workers", envvar="TRUSTBOX_WORKERS", type=int, help="Worker processes [1].")
@click.option("--upload-idle-timeout", envvar="TRUSTBOX_UPLOAD_IDLE_TIMEOUT", type=int,
              help="Seconds without a chunk after which an upload session expires [3600].")
@click.option("--max-upload-sessions", envvar="TRUSTBOX_MAX_UPLOAD_SESSIONS", type=int,
              help="Open upload sessions per user (per repository without auth) [1000].")
@click.option("--read-only/--read-write", "read_only", default=None, envvar="TRUSTBOX_READ_ONLY",
              help="Refuse every write with DENIED.")
@click.option("--delete/--no-delete", "delete_enabled", default=None, envvar="TRUSTBOX_DELETE_ENABLED",
              help="Allow DELETE of blobs, manifests and tags [on].")
@click.option("--s3-endpoint-url", envvar="TRUSTBOX_S3_ENDPOINT_URL", help="S3 endpoint (MinIO, moto...).")
@click.option("--server", type=click.Choice(["granian", "uvicorn"]), default="granian", show_default=True,
              envvar="TRUSTBOX_SERVER", help="ASGI server.")
@click.option("--trust-policy", envvar="TRUSTBOX_TRUST_POLICY", type=click.Path(dir_okay=False),
              help="Trust policy file (TOML/JSON): refuse manifests of protected repositories that are not "
                   "signed (content trust and/or sigstore attachments).")
@click.option("--log-level", envvar="TRUSTBOX_LOG_LEVEL", type=click.Choice(["debug", "info", "warning", "error"]),
              help="Log level; info and debug also log one access line per request to stderr [info].")
@http_limit_options
def serve_registry(config_file: str | None, server: str, **options: Any) -> None:
    """Serve the OCI distribution API v1.1 (a registry:2 replacement that verifies every digest)."""
    apply_http_limits(options)
    from trustbox.accesslog import access_log_enabled
    from trustbox.registry.app import CONFIG_ENV
    from trustbox.serving import run_asgi

    config = load_config(Path(config_file) if config_file else None, options, dict(os.environ))
    configure_logging(config.log_level, config.log_formatter, config.log_fields)
    # Validate storage now so a bad path or bucket fails here, with a clear message.
    from trustbox.registry.app import create_app

    create_app(config)
    os.environ[CONFIG_ENV] = config.to_json()
    host, port = config.host_port()
    scheme = "https" if config.tls_cert else "http"
    click.echo(f"trustbox registry on {scheme}://{host}:{port} (storage {config.storage})", err=True)
    run_asgi(
        app_from_env, host, port, config.tls_cert, config.tls_key, config.workers,
        factory=True, server=server, log_level="warning" if config.log_level == "info" else config.log_level,
        access_log=config.access_log and access_log_enabled(config.log_level),
        in_process=True,  # one worker: served by this process (no supervisor + worker pair)
        tls_min_version=config.tls_min_version,
        http_version="1" if config.http1_only else "auto",
    )


def app_from_env() -> Any:
    """Worker app factory: the registry app, with blob files sent in 1 MiB pieces
    (see :mod:`trustbox.filesend`)."""
    from trustbox.filesend import FileSendMiddleware
    from trustbox.registry.app import create_app_from_env

    return FileSendMiddleware(create_app_from_env())


class _JSONFormatter(logging.Formatter):
    """registry:2's ``json`` / ``logstash`` log formatters: one JSON object per line."""

    def __init__(self, fields: dict[str, str], logstash: bool) -> None:
        super().__init__()
        self.fields = fields
        self.logstash = logstash

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        doc: dict[str, Any] = {**self.fields, "level": record.levelname.lower(), "msg": record.getMessage(),
                               "logger": record.name}
        if self.logstash:
            doc.update({"@timestamp": stamp, "@version": "1"})
        else:
            doc["time"] = stamp
        return json.dumps(doc)


def configure_logging(level: str, formatter: str = "text", fields: dict[str, str] | None = None) -> None:
    """Log at ``level`` in registry:2's ``text`` (with ``fields`` as ``key=value``), ``json`` or
    ``logstash`` format."""
    handler = logging.StreamHandler()
    extra = " ".join(f"{k}={v}" for k, v in sorted((fields or {}).items()))
    if formatter in ("json", "logstash"):
        handler.setFormatter(_JSONFormatter(dict(fields or {}), formatter == "logstash"))
    else:
        fmt = "%(asctime)s %(name)s %(levelname)s %(message)s" + (f" {extra}" if extra else "")
        handler.setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler])
