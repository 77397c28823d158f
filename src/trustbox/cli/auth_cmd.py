"""``trustbox serve auth``, ``trustbox auth ...``, ``trustbox login`` / ``logout``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from trustbox.cli.report import one_line_errors
from trustbox.errors import ConfigError, TrustboxError

F = TypeVar("F", bound=Callable[..., Any])


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen wants HOST:PORT, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _read_password(password_stdin: bool, confirm: bool) -> str:
    if password_stdin:
        data = sys.stdin.readline()
        password = data.rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=confirm, err=True)
    if not password:
        raise ConfigError("password must not be empty")
    return password


# --- trustbox auth ------------------------------------------------------------------------------


@click.group("auth")
def auth_group() -> None:
    """Token server keys, htpasswd files and access checks."""


@auth_group.group("htpasswd")
def htpasswd_group() -> None:
    """Manage bcrypt htpasswd files."""


@htpasswd_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("user")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--cost", type=click.IntRange(4, 16), default=10, show_default=True, help="bcrypt cost.")
@one_line_errors
def htpasswd_add(file: Path, user: str, password_stdin: bool, cost: int) -> None:
    """Add USER to FILE (or change the password), prompting for the password."""
    from trustbox.auth.htpasswd import add_user, validate_user

    try:
        validate_user(user)
    except TrustboxError as exc:
        raise ConfigError(exc.message) from None
    password = _read_password(password_stdin, confirm=True)
    replaced = add_user(file, user, password, cost)
    click.echo(f"{'Updated' if replaced else 'Added'} {user} in {file}")


@auth_group.command("keygen")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cn", default="trustbox token issuer", show_default=True, help="Certificate common name.")
@click.option("--days", type=click.IntRange(1, 36500), default=3650, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@one_line_errors
def keygen(directory: Path, cn: str, days: int, force: bool) -> None:
    """Write a token signing key (signing-key.pem) and its self-signed certificate (cert.pem).

    Servers verify tokens with cert.pem (notary-server / registry ``rootcertbundle``).
    """
    from cryptography import x509

    from trustbox.atomicfile import atomic_write
    from trustbox.auth.tokens import generate_signing_material, libtrust_key_id

    key_path, cert_path = directory / "signing-key.pem", directory / "cert.pem"
    for p in (key_path, cert_path):
        if p.exists() and not force:
            raise ConfigError(f"{p} already exists", hint="use --force to replace it")
    key_pem, cert_pem = generate_signing_material(cn, days)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(key_path, key_pem, 0o600)
    atomic_write(cert_path, cert_pem, 0o644)
    pub = x509.load_pem_x509_certificate(cert_pem).public_key()
    kid = libtrust_key_id(pub)  # type: ignore[arg-type]
    click.echo(f"signing key:  {key_path}\ncertificate:  {cert_path}\nkey ID (kid): {kid}")


# --- trustbox serve auth ------------------------------------------------------------------------


@click.command("auth")
@click.option("--listen", default="127.0.0.1:5001", show_default=True, envvar="TRUSTBOX_AUTH_LISTEN", help="HOST:PORT")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), envvar="TRUSTBOX_AUTH_TLS_CERT")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), envvar="TRUSTBOX_AUTH_TLS_KEY")
@click.option("--htpasswd", "htpasswd_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              envvar="TRUSTBOX_AUTH_HTPASSWD", help="bcrypt htpasswd file with the users.")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              envvar="TRUSTBOX_AUTH_RULES", help="Access rules (TOML or .json).")
@click.option("--issuer", required=True, envvar="TRUSTBOX_AUTH_ISSUER", help="The iss claim servers expect.")
@click.option("--signing-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              envvar="TRUSTBOX_AUTH_SIGNING_KEY", help="PEM private key (ECDSA P-256 or RSA).")
@click.option("--cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              envvar="TRUSTBOX_AUTH_CERT", help="PEM certificate (chain) of the signing key.")
@click.option("--service", "services", multiple=True, envvar="TRUSTBOX_AUTH_SERVICE",
              help="A service (token audience) to issue for; repeatable. Default: any.")
@click.option("--ttl", type=click.IntRange(10, 86400), default=300, show_default=True, envvar="TRUSTBOX_AUTH_TTL",
              help="Token lifetime in seconds.")
@click.option("--max-form-bytes", type=click.IntRange(512, 1024 * 1024), default=8192, show_default=True,
              envvar="TRUSTBOX_AUTH_MAX_FORM_BYTES", help="Largest POST /token body; larger ones get 413.")
@click.option("--max-failures-per-account", type=click.IntRange(0), default=10, show_default=True,
              envvar="TRUSTBOX_AUTH_MAX_FAILURES_PER_ACCOUNT",
              help="Wrong passwords an account may have per --failure-window before 429s (0: no limit).")
@click.option("--max-failures-per-address", type=click.IntRange(0), default=30, show_default=True,
              envvar="TRUSTBOX_AUTH_MAX_FAILURES_PER_ADDRESS",
              help="Wrong passwords a client address (IPv6: its /64) may have per --failure-window (0: no limit).")
@click.option("--failure-window", type=click.IntRange(1, 86400), default=60, show_default=True,
              envvar="TRUSTBOX_AUTH_FAILURE_WINDOW", help="Seconds over which the failure limits apply.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True,
              envvar="TRUSTBOX_AUTH_LOG_LEVEL",
              help="Log level; info and debug also log one access line per request to stderr.")
@one_line_errors
def serve_auth(
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    htpasswd_path: Path | None,
    rules_path: Path,
    issuer: str,
    signing_key: Path,
    cert: Path,
    services: tuple[str, ...],
    ttl: int,
    max_form_bytes: int,
    max_failures_per_account: int,
    max_failures_per_address: int,
    failure_window: int,
    log_level: str,
) -> None:
    """Run the docker token server (GET/POST /token)."""
    from trustbox.accesslog import access_log_enabled
    from trustbox.auth.access import AccessRules
    from trustbox.auth.htpasswd import HtpasswdFile
    from trustbox.auth.server import TokenServerConfig, create_app
    from trustbox.auth.throttle import FailureThrottle, ThrottleLimits
    from trustbox.auth.tokens import TokenIssuer
    from trustbox.serving import run_asgi

    host, port = _parse_listen(listen)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    config = TokenServerConfig(
        issuer=TokenIssuer.from_files(issuer, signing_key, cert),
        htpasswd=HtpasswdFile(htpasswd_path) if htpasswd_path else None,
        rules=AccessRules.load(rules_path),
        services=frozenset(s for v in services for s in v.split()),
        ttl=ttl,
        throttle=FailureThrottle(ThrottleLimits(max_failures_per_account, max_failures_per_address, failure_window)),
        max_form_bytes=max_form_bytes,
    )
    if config.htpasswd is None and not config.rules.allows_anonymous:
        raise ConfigError("no --htpasswd and no anonymous rule: nobody could get a token")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scheme = "https" if tls_cert else "http"
    click.echo(f"token server on {scheme}://{listen}/token (issuer {issuer})", err=True)
    run_asgi(create_app(config), host, port, tls_cert, tls_key, server="uvicorn", log_level=log_level,
             access_log=access_log_enabled(log_level))


# --- login / logout -----------------------------------------------------------------------------


@click.command("login")
@click.argument("registry")
@click.option("-u", "--username", help="User name (prompted if missing).")
@click.option("-p", "--password", help="Password (prefer --password-stdin).", hidden=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--ca-file", "ca_files", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Extra CA certificate to trust (also read: $DOCKER_CONFIG/tls/HOST/*.crt, /etc/docker/certs.d/HOST/*.crt).")
@click.option("--insecure", is_flag=True, help="Skip TLS verification and allow plain HTTP.")
@one_line_errors
def login_cmd(
    registry: str, username: str | None, password: str | None, password_stdin: bool,
    ca_files: tuple[Path, ...], insecure: bool,
) -> None:
    """Log in to a registry and store the credentials as docker does."""
    from trustbox.client.dockerenv import store_credentials
    from trustbox.client.login import login

    if password and password_stdin:
        raise ConfigError("--password and --password-stdin are mutually exclusive")
    if password_stdin and not username:
        raise ConfigError("must provide --username with --password-stdin")
    if not username:
        username = click.prompt("Username", err=True)
    if not username:
        raise ConfigError("username must not be empty")
    if password is None:
        password = _read_password(password_stdin, confirm=False)
    result = login(registry, username, password, ca_files=ca_files, insecure=insecure)
    path = store_credentials(result.key, username, password)
    click.echo(f"credentials stored in {path}", err=True)
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("registry")
@one_line_errors
def logout_cmd(registry: str) -> None:
    """Forget the credentials stored for a registry."""
    from trustbox.client.dockerenv import erase_credentials, registry_key

    key = registry_key(registry)
    if erase_credentials(key):
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")
