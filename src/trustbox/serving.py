"""Run an ASGI application with granian (preferred) or uvicorn: one small reusable runner.

``run_asgi`` takes either an application object, a zero-argument factory, or an import string
``"module:attr"`` (with ``factory=True`` when ``attr`` is a factory). With several workers,
granian forks processes; an application object or factory is then built once per worker from
the forked parent, so anything a factory needs must be reachable from there (environment
variables, closures).

``interface="rsgi"`` serves granian's native RSGI interface (the app must implement
``__rsgi__``; uvicorn falls back to ASGI). ``in_process=True`` with one worker runs granian's
embedded server on an event loop in this process instead of forking a worker: one process
(one copy of the application in memory) instead of a supervisor plus a worker.

``access_log=True`` puts :class:`trustbox.accesslog.AccessLogMiddleware` in front of the
application (one stable line per request on stderr; granian's and uvicorn's own access logs stay
off). The middleware is ASGI, so an RSGI application is then served through its ASGI interface.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


def _resolve(app: AppLike, factory: bool, access_log: bool = False) -> Any:
    obj = _load_string(app, factory) if isinstance(app, str) else app() if factory else app
    if access_log:
        from trustbox.accesslog import AccessLogMiddleware

        return AccessLogMiddleware(obj)
    return obj


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
    interface: str = "asgi",
    in_process: bool = False,
    tls_min_version: str | None = None,
    backlog: int | None = None,
    http_version: str = "auto",
) -> None:
    """Serve ``app`` on ``host:port`` (HTTPS when a certificate and key are given) until stopped.

    ``tls_min_version`` ("1.2" or "1.3") applies to granian (whose default is 1.3);
    ``http_version`` "1" serves HTTP/1.1 only (no h2 offered in TLS ALPN), "auto" both.
    ``access_log`` logs every request through :mod:`trustbox.accesslog` (and forces ASGI).
    Raises ConfigError on an unknown server, interface or HTTP version, or half a TLS pair.
    """
    if http_version not in ("auto", "1", "2"):
        raise ConfigError(f"unknown HTTP version {http_version!r}", hint="use auto, 1 or 2")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("TLS needs both a certificate and a key")
    if interface not in ("asgi", "rsgi"):
        raise ConfigError(f"unknown interface {interface!r}", hint="use asgi or rsgi")
    if server == "granian":
        try:
            import granian  # noqa: F401
        except ImportError:  # pragma: no cover - granian is a dependency
            server = "uvicorn"
    if access_log:
        interface = "asgi"
    if server == "granian":
        options = _GranianOptions(interface, in_process and workers == 1, tls_min_version, backlog, http_version)
        _run_granian(
            app, host, port, tls_cert, tls_key, workers, factory, log_level, access_log, runtime_threads, options
        )
    elif server == "uvicorn":
        _run_uvicorn(app, host, port, tls_cert, tls_key, workers, factory, log_level, access_log)
    else:
        raise ConfigError(f"unknown server {server!r}", hint="use granian or uvicorn")


def http1_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """HTTP/1 limits for granian from ``TRUSTBOX_HEADER_TIMEOUT`` (seconds to receive the request
    head, default 30) and ``TRUSTBOX_MAX_HEADER_BYTES`` (largest request head, default 408 KiB;
    larger ones get 431). Raises ConfigError on values that cannot work."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    raw = env.get("TRUSTBOX_HEADER_TIMEOUT", "").strip()
    if raw:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= 3600:
            raise ConfigError(f"TRUSTBOX_HEADER_TIMEOUT must be between 0 and 3600 seconds, not {raw!r}")
        out["header_read_timeout"] = int(seconds * 1000)
    raw = env.get("TRUSTBOX_MAX_HEADER_BYTES", "").strip()
    if raw:
        if not raw.isdigit() or not 1024 <= int(raw) <= 16 * 1024 * 1024:
            raise ConfigError(f"TRUSTBOX_MAX_HEADER_BYTES must be a number of bytes from 1024 to 16 MiB, not {raw!r}")
        out["max_buffer_size"] = int(raw)
    return out


@dataclass(frozen=True)
class _GranianOptions:
    interface: str = "asgi"
    in_process: bool = False
    tls_min_version: str | None = None
    backlog: int | None = None
    http_version: str = "auto"


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
    options: _GranianOptions = _GranianOptions(),
) -> None:
    from granian.constants import Interfaces, SSLProtocols
    from granian.log import LogLevels

    target = app if isinstance(app, str) else "trustbox.serving:<in-process>"

    def loader(*_args: Any, **_kwargs: Any) -> Any:
        return _resolve(app, factory, access_log)

    kwargs: dict[str, Any] = {
        "address": host,
        "port": port,
        "interface": Interfaces.RSGI if options.interface == "rsgi" else Interfaces.ASGI,
        "runtime_threads": runtime_threads,
        "log_level": LogLevels(log_level.lower()),
        "log_access": False,  # trustbox's own access lines instead (see the loader)
        "websockets": False,
    }
    if options.backlog is not None:
        kwargs["backlog"] = options.backlog
    if options.http_version != "auto":
        from granian.constants import HTTPModes

        kwargs["http"] = HTTPModes(options.http_version)
    http1 = http1_settings()
    if http1:
        from granian.http import HTTP1Settings

        kwargs["http1_settings"] = HTTP1Settings(**http1)
    if tls_cert and tls_key:
        kwargs["ssl_cert"] = Path(tls_cert)
        kwargs["ssl_key"] = Path(tls_key)
        if options.tls_min_version is not None:
            kwargs["ssl_protocol_min"] = SSLProtocols("tls" + options.tls_min_version)
    if options.in_process:
        _run_granian_embedded(loader(), kwargs)
        return
    from granian.constants import Loops
    from granian.server import Server

    kwargs["loop"] = Loops.uvloop if event_loop_factory() is not None else Loops.asyncio
    srv = Server(target, workers=workers, **kwargs)
    srv.serve(target_loader=loader, wrap_loader=False)


def _run_granian_embedded(app_obj: Any, kwargs: dict[str, Any]) -> None:
    """granian's embedded server on an asyncio loop in this process, until SIGINT/SIGTERM."""
    import asyncio
    import signal

    from granian.server.embed import Server as EmbeddedServer

    srv = EmbeddedServer(app_obj, **kwargs)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, srv.stop)
        await srv.serve()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())


def event_loop_factory() -> Callable[[], Any] | None:
    """uvloop's loop when installed (about a third more requests per second through granian's
    embedded server than asyncio's own loop), unless TRUSTBOX_EVENT_LOOP=asyncio asks for the
    standard loop; None means asyncio's default."""
    choice = os.environ.get("TRUSTBOX_EVENT_LOOP", "auto").strip().lower()
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ConfigError(f"TRUSTBOX_EVENT_LOOP={choice!r} is not a known event loop", hint="use auto, uvloop or asyncio")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError("TRUSTBOX_EVENT_LOOP=uvloop but uvloop is not installed", hint="pip install uvloop") from None
        return None
    factory: Callable[[], Any] = uvloop.new_event_loop
    return factory


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

    # an import string lets uvicorn start several workers; the access log wraps an object in this process
    in_place = isinstance(app, str) and not access_log
    target: Any = app if in_place else _resolve(app, factory, access_log)
    uvicorn.run(
        target,
        host=host,
        port=port,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
        workers=workers if in_place else 1,
        factory=factory and in_place,
        log_level=log_level.lower(),
        access_log=False,
    )
