"""``trustbox serve trust``: the Notary v1 trust server."""

from __future__ import annotations

from typing import Any

import click

from trustbox.trustserver.config import (
    DEFAULT_DB,
    DEFAULT_MAX_UPLOAD,
    KEY_ALGORITHMS,
    ServerConfig,
    load_config_file,
)


@click.command("trust")
@click.option("--listen", envvar="TRUSTBOX_LISTEN", default=None, help="HOST:PORT to listen on [127.0.0.1:4443].")
@click.option("--tls-cert", envvar="TRUSTBOX_TLS_CERT", default=None, help="TLS certificate (PEM); plain HTTP without.")
@click.option("--tls-key", envvar="TRUSTBOX_TLS_KEY", default=None, help="TLS private key (PEM).")
@click.option("--db", envvar="TRUSTBOX_DB", default=None, help=f"Database URL [{DEFAULT_DB}]; postgresql://... too.")
@click.option("--table-prefix", envvar="TRUSTBOX_TABLE_PREFIX", default=None, help="Prefix for table names.")
@click.option("--config", "config_file", envvar="TRUSTBOX_CONFIG", default=None, help="JSON or TOML config file.")
@click.option(
    "--max-upload-bytes", envvar="TRUSTBOX_MAX_UPLOAD_BYTES", type=int, default=None,
    help=f"Largest accepted update body [{DEFAULT_MAX_UPLOAD}].",
)
@click.option(
    "--key-passphrase-file", envvar="TRUSTBOX_KEY_PASSPHRASE_FILE", default=None,
    help="File holding the passphrase that encrypts server-held keys.",
)
@click.option(
    "--key-algorithm", envvar="TRUSTBOX_KEY_ALGORITHM", type=click.Choice(KEY_ALGORITHMS), default=None,
    help="Algorithm of new server keys [ed25519].",
)
@click.option(
    "--insecure-dev-keys", envvar="TRUSTBOX_INSECURE_DEV_KEYS", is_flag=True, default=None,
    help="Allow a fixed, public key passphrase (tests only).",
)
@click.option("--workers", envvar="TRUSTBOX_WORKERS", type=int, default=None, help="Server processes [1].")
@click.option("--log-level", envvar="TRUSTBOX_LOG_LEVEL", default=None, help="Log level [error].")
def serve_trust(config_file: str | None, **options: Any) -> None:
    """Run the trust server (Notary v1 API, compatible with notary and docker trust)."""
    import os

    from trustbox.trustserver.server import serve

    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    passphrase = os.environ.get("TRUSTBOX_KEY_PASSPHRASE")
    if passphrase:
        values["key_passphrase"] = passphrase
    config = ServerConfig(**values).with_overrides(**options)
    serve(config)


def register(cli: click.Group, serve: click.Group) -> None:
    """Attach ``serve trust`` to the ``serve`` group."""
    serve.add_command(serve_trust)
