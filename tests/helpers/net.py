"""Ports and processes for tests that start real servers: a free port, waiting for a server to
answer over HTTP(S), stopping a process we started.

Plain Python (no pytest), so ``bench/`` scripts can use it too.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    *,
    ca: Path | None = None,
    ok: tuple[int, ...] = (200,),
    timeout: float = 30,
    interval: float = 0.1,
) -> None:
    """Poll ``url`` until it answers with a status in ``ok``.

    ``ca`` verifies HTTPS against that CA (without it TLS is not verified). Raises RuntimeError
    (with the tail of ``log``) when ``proc`` exits first or ``timeout`` seconds pass."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca)) if ca else False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited {proc.returncode}{_log_tail(log)}")
        try:
            if httpx.get(url, verify=verify, timeout=2).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{url} did not come up{_log_tail(log)}")


def _log_tail(log: Path | None, limit: int = 3000) -> str:
    if log is None:
        return ""
    try:
        return "\n" + log.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10, *, group: bool = False) -> None:
    """Terminate one process we started (by its own handle), kill it if it does not exit in time.

    With ``group`` the signals go to its process group (a child started with
    ``start_new_session=True``, e.g. granian's parent and its workers)."""
    if group:
        _signal_group(proc, signal.SIGTERM)
    else:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if group:
            _signal_group(proc, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
