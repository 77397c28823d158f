"""Run an ASGI application with granian (preferred) or uvicorn: one small reusable runner.

``run_asgi`` takes either an application object, a zero-argument factory, or an import string
``"module:attr"`` (with ``factory=True`` when ``attr`` is a factory). With several workers,
granian forks processes; an application object or factory is then built once per worker from
the forked parent, so anything a factory needs must be reachable from there (environment
variables, closures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trustbox.errors import ConfigError

log = logging.getLogger("trustbox.serving")

AppLike = Callable[..., Any] | str


def _load_string(target: str, factory: bool) -> Any:
    import importlib

    module_name, sep, attr = target.partition(":")
    if not sep:
        raise ConfigError(f"invalid application target {target!r}", hint="use module:attribute")
    obj = getattr(importlib.import_module(module_name), attr)
    return obj() if factory else obj


def _resolve(app: AppLike, factory: bool) -> Any:
    if isinstance(app, str):
        return _load_string(app, factory)
    return app() if factory else app


def run_asgi(
    app: AppLike,
    host: str,
    port: int,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    workers: int = 1,
    *,
    factory: bool = False,
    server: str = "granian",
    log_level: str = "info",
    access_log: bool = False,
    runtime_threads: int = 1,
) -> None:
    """Serve ``app`` on ``host:port`` (HTTPS when a certificate and key are given) until stopped."""
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("TLS needs both a certificate and a key")
    if server == "granian":
        try:
            import granian  # noqa: F401
        except ImportError:  # pragma: no cover - granian is a dependency
            server = "uvicorn"
    if server == "granian":
        _run_granian(app, host, port, tls_cert, tls_key, workers, factory, log_level, access_log, runtime_threads)
    elif server == "uvicorn":
        _run_uvicorn(app, host, port, tls_cert, tls_key, workers, factory, log_level, access_log)
    else:
        raise ConfigError(f"unknown server {server!r}", hint="use granian or uvicorn")


def _run_granian(
    app: AppLike,
    host: str,
    port: int,
    tls_cert: str | Path | None,
    tls_key: str | Path | None,
    workers: int,
    factory: bool,
    log_level: str,
    access_log: bool,
    runtime_threads: int,
) -> None:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    target = app if isinstance(app, str) else "trustbox.serving:<in-process>"

    def loader(*_args: Any, **_kwargs: Any) -> Any:
        return _resolve(app, factory)

    kwargs: dict[str, Any] = {
        "address": host,
        "port": port,
        "interface": Interfaces.ASGI,
        "workers": workers,
        "runtime_threads": runtime_threads,
        "log_level": LogLevels(log_level.lower()),
        "log_access": access_log,
        "websockets": False,
    }
    if tls_cert and tls_key:
        kwargs["ssl_cert"] = Path(tls_cert)
        kwargs["ssl_key"] = Path(tls_key)
    srv = Server(target, **kwargs)
    srv.serve(target_loader=loader, wrap_loader=False)


def _run_uvicorn(
    app: AppLike,
    host: str,
    port: int,
    tls_cert: str | Path | None,
    tls_key: str | Path | None,
    workers: int,
    factory: bool,
    log_level: str,
    access_log: bool,
) -> None:
    import uvicorn

    target: Any = app if isinstance(app, str) else _resolve(app, factory)
    uvicorn.run(
        target,
        host=host,
        port=port,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        workers=workers if isinstance(app, str) else 1,
        factory=factory and isinstance(app, str),
        log_level=log_level.lower(),
        access_log=access_log,
    )
