"""``trustbox serve trust``: the Notary v1 trust server."""

from __future__ import annotations

from typing import Any

import click

from trustbox.cli.http_limits import apply_http_limits, http_limit_options
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
    "--body-timeout", envvar="TRUSTBOX_BODY_TIMEOUT", type=float, default=None,
    help="Seconds a request body may stall before the update is refused with 408 [60].",
)
@click.option("--max-targets-per-update", envvar="TRUSTBOX_MAX_TARGETS_PER_UPDATE", type=int, default=None,
              help="Most targets all documents of one update may list together [1000000].")
@click.option("--max-delegations-per-update", envvar="TRUSTBOX_MAX_DELEGATIONS_PER_UPDATE", type=int, default=None,
              help="Most delegated roles all documents of one update may list together [1000].")
@click.option("--pg-cache-current/--no-pg-cache-current", envvar="TRUSTBOX_PG_CACHE_CURRENT", default=None,
              help="On PostgreSQL, also cache current documents in memory (faster; other processes may "
                   "serve the previous version for a moment after a publish) [off].")
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
@click.option("--log-level", envvar="TRUSTBOX_LOG_LEVEL", default=None,
              help="Log level; info and debug also log one access line per request to stderr [error].")
@click.option("--signer", "signer_url", envvar="TRUSTBOX_SIGNER_URL", default=None,
              help="URL of a `trustbox serve signer` service (default: sign in-process).")
@click.option("--signer-token-file", envvar="TRUSTBOX_SIGNER_TOKEN_FILE", default=None,
              help="File with the signer service's bearer token (or TRUSTBOX_SIGNER_TOKEN).")
@click.option("--signer-ca", envvar="TRUSTBOX_SIGNER_CA", default=None, help="CA certificate of the signer service.")
@click.option("--notary-signer-config", envvar="TRUSTBOX_NOTARY_SIGNER_CONFIG", default=None,
              help="notary-signer's config file: sign with the keys in its database (passphrases from "
                   "NOTARY_SIGNER_<ALIAS>).")
@click.option("--auth-token-realm", envvar="TRUSTBOX_AUTH_TOKEN_REALM", default=None,
              help="Token auth: URL of the token server (e.g. https://auth.example/token).")
@click.option("--auth-token-service", envvar="TRUSTBOX_AUTH_TOKEN_SERVICE", default=None,
              help="Token auth: this server's service name (the tokens' audience).")
@click.option("--auth-token-issuer", envvar="TRUSTBOX_AUTH_TOKEN_ISSUER", default=None,
              help="Token auth: the issuer (iss) tokens must carry.")
@click.option("--auth-token-rootcertbundle", envvar="TRUSTBOX_AUTH_TOKEN_ROOTCERTBUNDLE", default=None,
              help="Token auth: PEM certificates of the token signing keys.")
@click.option("--htpasswd", envvar="TRUSTBOX_HTPASSWD", default=None,
              help="Basic auth with this bcrypt htpasswd file instead of tokens.")
@click.option("--auth-rules", envvar="TRUSTBOX_HTPASSWD_RULES", default=None,
              help="Access rules (TOML/JSON) for --htpasswd users (default: every user may do everything).")
@click.option("--ui-registry-url", envvar="TRUSTBOX_UI_REGISTRY_URL", default=None,
              help="Registry whose tags the web page (/_trustbox/) shows beside the trust data.")
@click.option("--ui-registry-ca", envvar="TRUSTBOX_UI_REGISTRY_CA", default=None,
              help="CA certificate for --ui-registry-url.")
@click.option("--ui-warn-days", envvar="TRUSTBOX_UI_WARN_DAYS", type=float, default=None,
              help="Web page: expiries within this many days are shown amber (default 30).")
@http_limit_options
def serve_trust(config_file: str | None, **options: Any) -> None:
    """Run the trust server (Notary v1 API, compatible with notary and docker trust)."""
    import os

    apply_http_limits(options)

    from trustbox.trustserver.server import serve

    values: dict[str, Any] = load_config_file(config_file) if config_file else {}
    passphrase = os.environ.get("TRUSTBOX_KEY_PASSPHRASE")
    if passphrase:
        values["key_passphrase"] = passphrase
    token = os.environ.get("TRUSTBOX_SIGNER_TOKEN")
    if token:
        values["signer_token"] = token
    config = ServerConfig(**values).with_overrides(**options)
    serve(config)


@click.command("signer")
@click.option("--listen", envvar="TRUSTBOX_SIGNER_LISTEN", default="127.0.0.1:7899", show_default=True,
              help="HOST:PORT to listen on.")
@click.option("--tls-cert", envvar="TRUSTBOX_SIGNER_TLS_CERT", default=None, help="TLS certificate (PEM).")
@click.option("--tls-key", envvar="TRUSTBOX_SIGNER_TLS_KEY", default=None, help="TLS private key (PEM).")
@click.option("--db", envvar="TRUSTBOX_SIGNER_DB", default="sqlite:///./trustbox-signer.db", show_default=True,
              help="Database URL for the keys.")
@click.option("--table-prefix", envvar="TRUSTBOX_SIGNER_TABLE_PREFIX", default="", help="Prefix for table names.")
@click.option("--key-passphrase-file", envvar="TRUSTBOX_KEY_PASSPHRASE_FILE", default=None,
              help="File holding the passphrase that encrypts the keys (or TRUSTBOX_KEY_PASSPHRASE).")
@click.option("--token-file", "signer_token_file", envvar="TRUSTBOX_SIGNER_TOKEN_FILE", default=None,
              help="File with the bearer token clients must send (or TRUSTBOX_SIGNER_TOKEN).")
@click.option("--insecure-dev-keys", envvar="TRUSTBOX_INSECURE_DEV_KEYS", is_flag=True, default=False,
              help="Allow a fixed, public key passphrase (tests only).")
def serve_signer(**options: Any) -> None:
    """Run the signing service the trust server can use instead of in-process keys."""
    import os

    from trustbox.trustserver.server import serve_signer as run

    values: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if os.environ.get("TRUSTBOX_KEY_PASSPHRASE"):
        values["key_passphrase"] = os.environ["TRUSTBOX_KEY_PASSPHRASE"]
    if os.environ.get("TRUSTBOX_SIGNER_TOKEN"):
        values["signer_token"] = os.environ["TRUSTBOX_SIGNER_TOKEN"]
    run(ServerConfig(**values))
