"""Assembling and running the trust server: storage + signer + service + ASGI app + HTTP server."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trustbox.errors import ConfigError
from trustbox.trustserver.app import TrustServerApp
from trustbox.trustserver.config import ServerConfig, split_listen
from trustbox.trustserver.keys_at_rest import resolve_passphrase
from trustbox.trustserver.notary_config import notary_signer_storage
from trustbox.trustserver.notary_signer import NotarySignerKeys
from trustbox.trustserver.service import TrustService
from trustbox.trustserver.signer import LocalSigner, Signer
from trustbox.trustserver.storage import Storage
from trustbox.tuf.timefmt import utcnow

if TYPE_CHECKING:
    from trustbox.auth.middleware import AuthMiddleware
    from trustbox.trustserver.remote_signer import SignerApp

# The signing service's client and server (remote_signer, with httpx) are imported where they are
# used: a trust server that signs in-process does not load them (nor httpx).

ENV_CONFIG = "TRUSTBOX_TRUST_SERVER_CONFIG"
ENV_SIGNER_CONFIG = "TRUSTBOX_SIGNER_SERVICE_CONFIG"


def _passphrase(config: ServerConfig, storage: Storage) -> str:
    return resolve_passphrase(
        passphrase=config.key_passphrase,
        passphrase_file=config.key_passphrase_file,
        sqlite_file=storage.sqlite_file,
        insecure_dev_keys=config.insecure_dev_keys,
        in_memory=storage.dialect == "sqlite" and storage.sqlite_file is None,
    )


def notary_signer(config: ServerConfig) -> NotarySignerKeys:
    """The keys of notary-signer's database named by ``config.notary_signer_config``.

    Raises ConfigError for an unusable config, database or missing alias passphrase.
    """
    assert config.notary_signer_config
    url, alias = notary_signer_storage(config.notary_signer_config)
    return NotarySignerKeys(url, alias)


def build_app(config: ServerConfig, clock: Callable[[], datetime] = utcnow, migrate: bool = True) -> TrustServerApp:
    """A ready ASGI app for ``config`` (schema migrated, passphrase checked)."""
    config.validate()
    storage = Storage(config.db, config.table_prefix, notary_schema=config.notary_schema)
    signer: Signer
    try:
        if migrate:
            storage.migrate()
        if config.signer_url:
            from trustbox.trustserver.remote_signer import RemoteSigner

            signer = RemoteSigner(config.signer_url, config.signer_token_value(), config.signer_ca)
        elif config.notary_signer_config:
            signer = notary_signer(config)
        else:
            signer = LocalSigner(storage, _passphrase(config, storage))
    except Exception:
        storage.close()
        raise
    return TrustServerApp(TrustService(config, storage, signer, clock))


def with_auth(app: TrustServerApp, config: ServerConfig) -> TrustServerApp | AuthMiddleware:
    """``app`` behind :class:`~trustbox.auth.middleware.AuthMiddleware` when ``config`` turns auth on.

    Scopes as notary-server asks for them (``notary_required_scopes``); health and metrics are exempt.
    """
    from trustbox.auth.middleware import AuthMiddleware, authorizer_from_config, notary_required_scopes

    section = config.auth_section()
    if section is None:
        return app
    return AuthMiddleware(app, authorizer_from_config(section), notary_required_scopes)  # type: ignore[arg-type]


def prepare(config: ServerConfig) -> ServerConfig:
    """Check everything once in the parent process: schema, passphrase, auth; pin the passphrase source."""
    config.validate()
    section = config.auth_section()
    if section is not None:  # a server without auth does not load the auth modules
        from trustbox.auth.middleware import authorizer_from_config

        authorizer_from_config(section)  # unreadable bundle / htpasswd: fail before serving
    storage = Storage(config.db, config.table_prefix, notary_schema=config.notary_schema)
    try:
        storage.migrate()
        if config.signer_url:
            config.signer_token_value()
            return config
        if config.notary_signer_config:
            notary_signer(config).close()
            return config
        LocalSigner(storage, _passphrase(config, storage))
        if not config.key_passphrase_file and not config.key_passphrase and storage.sqlite_file:
            config = dataclasses.replace(config, key_passphrase_file=storage.sqlite_file + ".key")
    finally:
        storage.close()
    return config


def app_from_env() -> TrustServerApp:
    """Factory for worker processes: the config comes from ``TRUSTBOX_TRUST_SERVER_CONFIG``."""
    config = _config_from_env(ENV_CONFIG)
    _setup_logging(config.log_level)
    return build_app(config, migrate=False)


def _config_from_env(name: str) -> ServerConfig:
    """The ServerConfig a parent process put into the environment variable ``name`` as JSON."""
    raw = os.environ.get(name)
    if not raw:
        raise ConfigError(f"{name} is not set")
    values: dict[str, Any] = json.loads(raw)
    values["gun_prefixes"] = tuple(values.get("gun_prefixes", ()))
    return ServerConfig(**values)


def authenticated_app_from_env() -> TrustServerApp | AuthMiddleware:
    """Factory for worker processes with auth on: the app behind the auth middleware (ASGI)."""
    app = app_from_env()
    return with_auth(app, app.config)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.ERROR), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(config: ServerConfig) -> None:
    """Run the trust server until interrupted (granian; TLS when a certificate is configured)."""
    config = prepare(config)
    host, port = split_listen(config.listen)
    _setup_logging(config.log_level)
    values = dataclasses.asdict(config)
    values["gun_prefixes"] = list(config.gun_prefixes)
    os.environ[ENV_CONFIG] = json.dumps(values)
    _serve_granian_rsgi(config, host, port)


def _serve_granian_rsgi(config: ServerConfig, host: str, port: int) -> None:
    """granian with its native RSGI interface (the app also speaks ASGI for other servers).

    With auth on, the app is served through ASGI behind the auth middleware instead. With one
    worker the app runs in this process (granian's embedded server): no second Python process
    holding its own copy of the interpreter and libraries.
    """
    from trustbox.accesslog import access_log_enabled
    from trustbox.serving import run_asgi

    level = config.log_level.lower()
    auth = config.auth_section() is not None
    run_asgi(
        f"trustbox.trustserver.server:{'authenticated_app_from_env' if auth else 'app_from_env'}",
        host,
        port,
        config.tls_cert,
        config.tls_key,
        config.workers,
        factory=True,
        log_level=level if level in ("debug", "info", "warning", "error") else "error",
        access_log=access_log_enabled(level),  # served through ASGI then (the RSGI path stays unlogged)
        interface="asgi" if auth else "rsgi",
        in_process=True,
        tls_min_version="1.2",  # granian defaults to TLS 1.3 only; notary-server accepts 1.2
        backlog=2048,
        # notary-server speaks HTTP/1.1 only; offering h2 made the notary and docker clients (one
        # request per connection) pay HTTP/2's connection set-up on every request
        http_version="1",
    )


# -- the separate signing service ------------------------------------------------------------


def build_signer_app(config: ServerConfig, migrate: bool = True) -> SignerApp:
    """The signer service app: keys in ``config.db``, token from ``config.signer_token*``."""
    from trustbox.trustserver.remote_signer import SignerApp

    storage = Storage(config.db, config.table_prefix)
    try:
        if migrate:
            storage.migrate()
        return SignerApp(LocalSigner(storage, _passphrase(config, storage)), config.signer_token_value())
    except Exception:
        storage.close()
        raise


def signer_app_from_env() -> SignerApp:
    """Factory for signer worker processes (config from ``TRUSTBOX_SIGNER_SERVICE_CONFIG``)."""
    return build_signer_app(_config_from_env(ENV_SIGNER_CONFIG), migrate=False)


def serve_signer(config: ServerConfig) -> None:
    """Run ``trustbox serve signer`` until interrupted."""
    config.validate()
    storage = Storage(config.db, config.table_prefix)
    try:
        storage.migrate()
        LocalSigner(storage, _passphrase(config, storage))
        config.signer_token_value()
        if not config.key_passphrase_file and not config.key_passphrase and storage.sqlite_file:
            config = dataclasses.replace(config, key_passphrase_file=storage.sqlite_file + ".key")
    finally:
        storage.close()
    host, port = split_listen(config.listen)
    _setup_logging(config.log_level)
    values = dataclasses.asdict(config)
    values["gun_prefixes"] = list(config.gun_prefixes)
    os.environ[ENV_SIGNER_CONFIG] = json.dumps(values)
    from trustbox.serving import run_asgi

    run_asgi(
        "trustbox.trustserver.server:signer_app_from_env",
        host,
        port,
        config.tls_cert,
        config.tls_key,
        config.workers,
        factory=True,
        log_level="warning",
    )
