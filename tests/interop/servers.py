"""Start and stop trust servers for the interop suite and the benchmarks.

Three variants run the same tests:

* ``upstream``          - notary-server 0.7 (memory storage, local trust service, TLS)
* ``trustbox-sqlite``   - ``trustbox serve trust --db sqlite:///FILE``
* ``trustbox-postgres`` - ``trustbox serve trust --db postgresql://...`` on a fresh database

Everything here is plain Python (no pytest) so ``bench/trust_bench.py`` can reuse it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.certs import write_ca_and_server_cert
from tests.helpers.net import free_port, stop_process

NOTARY_SERVER = shutil.which("notary-server") or "/usr/bin/notary-server"
NOTARY = shutil.which("notary") or "/usr/bin/notary"
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"

# Base DSN of the PostgreSQL server used by the trustbox-postgres variant (trust auth).
PG_BASE_DSN = os.environ.get("TRUSTBOX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

HEALTH_PATH = "/_notary_server/health"
STARTUP_TIMEOUT = float(os.environ.get("TRUSTBOX_INTEROP_STARTUP_TIMEOUT", "30"))

VARIANTS = ("upstream", "trustbox-sqlite", "trustbox-postgres")


# --------------------------------------------------------------------------------------------
# TLS material


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls(directory: Path) -> TLSFiles:
    """A throw-away CA and a server certificate for localhost / 127.0.0.1 (ECDSA P-256)."""
    files = write_ca_and_server_cert(directory, ca_name="trustbox interop throw-away CA")
    return TLSFiles(files.ca_cert, files.server_cert, files.server_key)


# --------------------------------------------------------------------------------------------
# Running servers


@dataclass
class ServerHandle:
    """A running trust server. Unpacks as ``(url, ca_path)``."""

    name: str
    url: str
    ca_path: Path
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    cleanups: list = field(default_factory=list)

    def __iter__(self) -> Iterator[object]:
        return iter((self.url, self.ca_path))

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def peak_rss_kib(self) -> int | None:
        """VmHWM of the server process (and of its children, whichever is largest)."""
        best = None
        for pid in [self.proc.pid, *_child_pids(self.proc.pid)]:
            val = _vm_hwm(pid)
            if val is not None and (best is None or val > best):
                best = val
        return best

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_process(self.proc, group=True)
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - cleanup must not mask test results
                print(f"warning: cleanup of {self.name} failed: {exc}", file=sys.stderr)


def _vm_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _child_pids(pid: int) -> list[int]:
    out: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for c in children:
        out.append(int(c))
        out.extend(_child_pids(int(c)))
    return out


def wait_healthy(handle: ServerHandle, timeout: float = STARTUP_TIMEOUT) -> None:
    ctx = handle.ssl_context()
    deadline = time.monotonic() + timeout
    last_err: object = None
    while time.monotonic() < deadline:
        if not handle.alive():
            raise RuntimeError(
                f"{handle.name} exited with status {handle.proc.returncode} before becoming healthy; "
                f"log tail:\n{handle.log_tail()}"
            )
        try:
            with urllib.request.urlopen(handle.url + HEALTH_PATH, context=ctx, timeout=2) as resp:
                if resp.status == 200:
                    return
                last_err = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            last_err = exc
        time.sleep(0.1)
    handle.stop()
    raise RuntimeError(
        f"{handle.name} not healthy at {handle.url}{HEALTH_PATH} after {timeout:.0f}s ({last_err}); "
        f"log tail:\n{handle.log_tail()}"
    )


def _spawn(name: str, argv: list[str], workdir: Path, port: int, tls: TLSFiles, env: dict[str, str]) -> ServerHandle:
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child process
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        env=env,
        start_new_session=True,
    )
    log.close()
    return ServerHandle(
        name=name,
        url=f"https://127.0.0.1:{port}",
        ca_path=tls.ca_cert,
        port=port,
        proc=proc,
        workdir=workdir,
        log_path=log_path,
    )


def upstream_available() -> bool:
    return os.path.exists(NOTARY_SERVER) and os.access(NOTARY_SERVER, os.X_OK)


def start_upstream(workdir: Path, tls: TLSFiles, log_level: str = "error") -> ServerHandle:
    """notary-server 0.7 with memory storage and the local (ed25519) trust service."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "server": {
            "http_addr": f"127.0.0.1:{port}",
            "tls_cert_file": str(tls.server_cert),
            "tls_key_file": str(tls.server_key),
        },
        "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"},
        "storage": {"backend": "memory"},
        "logging": {"level": log_level},
    }
    cfg = workdir / "notary-server.json"
    cfg.write_text(json.dumps(config, indent=2))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    handle = _spawn("upstream", [NOTARY_SERVER, "-config", str(cfg)], workdir, port, tls, env)
    wait_healthy(handle)
    return handle


def trustbox_argv() -> list[str]:
    script = Path(sys.executable).with_name("trustbox")
    if script.exists():
        return [str(script)]
    found = shutil.which("trustbox")
    if found:
        return [found]
    return [sys.executable, "-c", "from trustbox.cli import main; main()"]


def start_trustbox(
    workdir: Path, tls: TLSFiles, db_url: str, name: str = "trustbox", extra_env: dict[str, str] | None = None
) -> ServerHandle:
    """``trustbox serve trust`` on a free port.

    With a PostgreSQL database the server needs a passphrase for its keys at rest: it gets a random
    one in ``TRUSTBOX_KEY_PASSPHRASE`` (a SQLite database keeps its own key file next to it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        *trustbox_argv(),
        "serve",
        "trust",
        "--listen",
        f"127.0.0.1:{port}",
        "--tls-cert",
        str(tls.server_cert),
        "--tls-key",
        str(tls.server_key),
        "--db",
        db_url,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRUSTBOX_", "PYTEST"))}
    if not db_url.startswith("sqlite"):
        env["TRUSTBOX_KEY_PASSPHRASE"] = "interop-" + secrets.token_hex(8)
    env.update(extra_env or {})
    handle = _spawn(name, argv, workdir, port, tls, env)
    wait_healthy(handle)
    return handle


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _dsn_with_db(base: str, dbname: str) -> str:
    head, _, _tail = base.rpartition("/")
    return f"{head}/{dbname}"


def pg_reachable(base_dsn: str = PG_BASE_DSN) -> str | None:
    """None if reachable, else the reason."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover
        return f"psycopg not installed: {exc}"
    try:
        with psycopg.connect(base_dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL at {base_dsn} unreachable: {exc}"
    return None


def create_pg_database(base_dsn: str = PG_BASE_DSN) -> tuple[str, object]:
    """Create ``tb_<random>``; returns (dsn, drop_function)."""
    import psycopg

    dbname = "tb_" + secrets.token_hex(6)
    with psycopg.connect(base_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')

    def drop() -> None:
        with psycopg.connect(base_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    return _dsn_with_db(base_dsn, dbname), drop


def start_variant(variant: str, workdir: Path, tls: TLSFiles) -> ServerHandle:
    if variant == "upstream":
        return start_upstream(workdir / "upstream", tls)
    if variant == "trustbox-sqlite":
        d = workdir / "trustbox-sqlite"
        d.mkdir(parents=True, exist_ok=True)
        return start_trustbox(d, tls, f"sqlite:///{d / 'trust.db'}", name=variant)
    if variant == "trustbox-postgres":
        dsn, drop = create_pg_database()
        try:
            handle = start_trustbox(workdir / "trustbox-postgres", tls, dsn, name=variant)
        except BaseException:
            drop()  # type: ignore[operator]
            raise
        handle.cleanups.append(drop)
        return handle
    raise ValueError(f"unknown server variant {variant!r}")
