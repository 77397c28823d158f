"""Start real registries for interop tests: upstream ``docker-registry`` and ``trustbox serve registry``.

Both listen on plain HTTP on 127.0.0.1 (a loopback registry, as in the tutorial). Each yields a
:class:`RunningRegistry` with the ``host:port`` and a function mapping a digest to the file that
stores the blob on disk (for tamper tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.net import free_port, stop_process, wait_http


@dataclass
class RunningRegistry:
    """A registry process."""

    name: str
    host: str
    root: Path
    blob_file: Callable[[str], Path]


@contextmanager
def _process(argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Iterator[None]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "registry.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
        try:
            wait_http(f"http://127.0.0.1:{port}/v2/", proc, log, ok=(200, 401))  # 401: up, with auth
            yield
        finally:
            stop_process(proc)


@contextmanager
def docker_registry_with_config(config: Path, workdir: Path, port: int,
                                extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """docker-registry (distribution 2.8) serving ``config`` (which, or ``extra_env``'s
    ``REGISTRY_*`` overrides, must listen on ``port``), with a clean environment plus
    ``extra_env``; stopped on exit."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), **(extra_env or {})}
    argv = [shutil.which("docker-registry") or "docker-registry", "serve", str(config)]
    with _process(argv, env, workdir, port):
        yield


@contextmanager
def trustbox_registry_with_config(config: Path, workdir: Path, port: int,
                                  extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """``trustbox serve registry --config config`` (this checkout's source) with ``extra_env``
    added to an environment without ``REGISTRY_*`` / ``TRUSTBOX_*`` variables; stopped on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "TRUSTBOX_"))}
    env.update(extra_env or {})
    src = Path(__file__).resolve().parents[2] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    argv = [sys.executable, "-m", "trustbox", "serve", "registry", "--config", str(config)]
    with _process(argv, env, workdir, port):
        yield


def have_docker_registry() -> bool:
    """Whether the upstream registry binary is installed."""
    return shutil.which("docker-registry") is not None


@contextmanager
def upstream_registry(workdir: Path) -> Iterator[RunningRegistry]:
    """docker-registry (distribution 2.8) with filesystem storage, started with a clean environment."""
    port = free_port()
    root = workdir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: trustbox-test\n"
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    with _process([shutil.which("docker-registry") or "docker-registry", "serve", str(config)], env, workdir, port):

        def blob_file(digest: str) -> Path:
            hexd = digest.split(":", 1)[1]
            return root / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"

        yield RunningRegistry("upstream", f"127.0.0.1:{port}", root, blob_file)


@contextmanager
def trustbox_registry(workdir: Path, args: Sequence[str] = ()) -> Iterator[RunningRegistry]:
    """``trustbox serve registry`` on plain HTTP with a storage directory (``args``: more options,
    e.g. ``--htpasswd`` or the token auth ones of :func:`token_server`)."""
    port = free_port()
    root = workdir / "storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "TRUSTBOX_"))}
    exe = shutil.which("trustbox") or str(Path(sys.executable).with_name("trustbox"))
    argv = [exe, "serve", "registry", "--listen", f"127.0.0.1:{port}", "--storage", str(root), *args]
    with _process(argv, env, workdir, port):

        def blob_file(digest: str) -> Path:
            hexd = digest.split(":", 1)[1]
            return root / "blobs" / "sha256" / hexd[:2] / hexd

        yield RunningRegistry("trustbox", f"127.0.0.1:{port}", root, blob_file)


def _trustbox(*args: str, stdin: str | None = None) -> None:
    exe = shutil.which("trustbox") or str(Path(sys.executable).with_name("trustbox"))
    subprocess.run([exe, *args], input=stdin, text=True, check=True, capture_output=True, timeout=60)


def htpasswd_file(path: Path, users: Mapping[str, str]) -> Path:
    """A bcrypt htpasswd file (cost 4) with ``users`` (name: password)."""
    for user, password in users.items():
        _trustbox("auth", "htpasswd", "add", "--password-stdin", "--cost", "4", str(path), user, stdin=password + "\n")
    return path


@dataclass
class TokenServer:
    """A running ``trustbox serve auth`` and the registry options that trust it."""

    url: str
    registry_args: tuple[str, ...]


@contextmanager
def token_server(workdir: Path, users: Mapping[str, str], rules: str, service: str = "registry") -> Iterator[TokenServer]:
    """``trustbox serve auth`` on plain HTTP (loopback) with ``users`` and access ``rules`` (TOML);
    ``registry_args`` are the ``trustbox serve registry`` options that make a registry use it."""
    workdir.mkdir(parents=True, exist_ok=True)
    _trustbox("auth", "keygen", str(workdir / "keys"))
    htpasswd_file(workdir / "htpasswd", users)
    (workdir / "rules.toml").write_text(rules)
    port = free_port()
    exe = shutil.which("trustbox") or str(Path(sys.executable).with_name("trustbox"))
    argv = [exe, "serve", "auth", "--listen", f"127.0.0.1:{port}", "--htpasswd", str(workdir / "htpasswd"),
            "--rules", str(workdir / "rules.toml"), "--issuer", "trustbox-test",
            "--signing-key", str(workdir / "keys" / "signing-key.pem"), "--cert", str(workdir / "keys" / "cert.pem"),
            "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
    log = workdir / "auth.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, log)
        yield TokenServer(url, (
            "--auth-token-realm", f"{url}/token", "--auth-token-service", service,
            "--auth-token-issuer", "trustbox-test", "--auth-token-rootcertbundle", str(workdir / "keys" / "cert.pem"),
        ))
    finally:
        stop_process(proc)
