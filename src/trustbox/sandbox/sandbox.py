"""The sandbox: a CA, a trust server and a registry running in the background under one folder.

Layout of the sandbox folder::

    sandbox.json            state: ports, process IDs, paths
    tls/ca.crt, ca.key      the sandbox CA (fresh for every new sandbox)
    tls/server.crt, .key    server certificate for localhost, 127.0.0.1 and this host's name
    trust/trust.db          the trust server's SQLite database
    trust/key-passphrase    passphrase protecting the server-managed keys at rest
    registry/               the registry's storage
    notary/config.json      a notary client config pointing at the sandbox
    logs/trust.log, logs/registry.log
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from trustbox.errors import ConfigError, TrustboxError
from trustbox.sandbox.pki import make_ca, make_server_cert, write_private

DEFAULT_TRUST_PORT = 4443
DEFAULT_REGISTRY_PORT = 5000
HEALTH_TIMEOUT = 20.0


def default_dir() -> Path:
    """``$TRUSTBOX_SANDBOX_DIR`` or ``~/.trustbox/sandbox``."""
    env = os.environ.get("TRUSTBOX_SANDBOX_DIR")
    return Path(env) if env else Path.home() / ".trustbox" / "sandbox"


@dataclass
class Service:
    """One background server of the sandbox."""

    name: str
    port: int
    pid: int = 0
    health_path: str = "/"

    def url(self, host: str = "localhost") -> str:
        """Its base URL."""
        return f"https://{host}:{self.port}"


@dataclass
class SandboxState:
    """What ``sandbox.json`` holds."""

    dir: str
    bind: str
    trust: Service
    registry: Service
    docker_config: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is not alive
        waited, _status = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    return True


def _port_free(bind: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((bind, port))
        except OSError:
            return False
    return True


class Sandbox:
    """Create, start, inspect and remove a sandbox in one folder."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory.expanduser().absolute()

    # -- paths -----------------------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        """``sandbox.json``."""
        return self.dir / "sandbox.json"

    @property
    def ca_cert(self) -> Path:
        """The sandbox CA certificate."""
        return self.dir / "tls" / "ca.crt"

    @property
    def notary_config(self) -> Path:
        """A notary client config file pointing at the sandbox."""
        return self.dir / "notary" / "config.json"

    def log_file(self, name: str) -> Path:
        """The log of service ``name``."""
        return self.dir / "logs" / f"{name}.log"

    # -- state -----------------------------------------------------------------------------

    def load(self) -> SandboxState | None:
        """The saved state, if this folder holds a sandbox."""
        try:
            raw = json.loads(self.state_file.read_text())
            return SandboxState(
                dir=raw["dir"], bind=raw["bind"], trust=Service(**raw["trust"]), registry=Service(**raw["registry"]),
                docker_config=raw.get("docker_config"), created=raw.get("created", ""),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.state_file} is damaged ({exc}); remove the sandbox with 'trustbox sandbox down -v'") from exc

    def save(self, state: SandboxState) -> None:
        """Write ``sandbox.json`` atomically."""
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        os.replace(tmp, self.state_file)

    def running(self, state: SandboxState) -> dict[str, bool]:
        """Whether each service process is alive."""
        return {s.name: _pid_alive(s.pid) for s in (state.trust, state.registry)}

    # -- lifecycle -----------------------------------------------------------------------------

    def _make_pki(self) -> None:
        now = datetime.now(UTC)
        ca_pair, ca_cert, ca_key = make_ca(now)
        hosts = ["localhost", "127.0.0.1", "::1"]
        hostname = socket.gethostname()
        if hostname and hostname not in hosts:
            hosts.append(hostname)
        fqdn = socket.getfqdn()
        if fqdn and fqdn not in hosts:
            hosts.append(fqdn)
        server = make_server_cert(ca_cert, ca_key, hosts, now)
        write_private(self.dir / "tls" / "ca.key", ca_pair.key_pem)
        (self.dir / "tls" / "ca.crt").write_bytes(ca_pair.cert_pem)
        (self.dir / "tls" / "server.crt").write_bytes(server.cert_pem + ca_pair.cert_pem)
        write_private(self.dir / "tls" / "server.key", server.key_pem)

    def _commands(self, state: SandboxState) -> dict[str, list[str]]:
        tls = ["--tls-cert", str(self.dir / "tls" / "server.crt"), "--tls-key", str(self.dir / "tls" / "server.key")]
        base = [sys.executable, "-m", "trustbox", "serve"]
        return {
            "trust": base + ["trust", "--listen", f"{state.bind}:{state.trust.port}", *tls,
                             "--db", f"sqlite:///{self.dir / 'trust' / 'trust.db'}",
                             "--key-passphrase-file", str(self.dir / "trust" / "key-passphrase")],
            "registry": base + ["registry", "--listen", f"{state.bind}:{state.registry.port}", *tls,
                                "--storage", str(self.dir / "registry")],
        }

    def _start(self, name: str, cmd: list[str]) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTBOX_")}
        log = open(self.log_file(name), "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                    start_new_session=True, cwd=self.dir)
        finally:
            log.close()
        return proc.pid

    def _healthy(self, service: Service) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{service.port}{service.health_path}", context=ctx, timeout=1) as r:
                return bool(r.status == 200)
        except urllib.error.HTTPError as exc:
            return exc.code in (200, 401)
        except (OSError, ssl.SSLError):
            return False

    def wait_healthy(self, state: SandboxState, timeout: float = HEALTH_TIMEOUT) -> None:
        """Wait until both servers answer, or raise naming the one that does not."""
        deadline = time.monotonic() + timeout
        pending = [state.trust, state.registry]
        while pending:
            for s in list(pending):
                if self._healthy(s):
                    pending.remove(s)
                elif not _pid_alive(s.pid):
                    tail = self._tail(s.name)
                    raise TrustboxError(f"the sandbox {s.name} server exited while starting; its log says:\n{tail}",
                                        hint=f"full log: {self.log_file(s.name)}")
            if pending and time.monotonic() > deadline:
                raise TrustboxError(f"the sandbox {pending[0].name} server did not become healthy within {timeout:.0f}s",
                                    hint=f"see {self.log_file(pending[0].name)}")
            if pending:
                time.sleep(0.05)

    def _tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def up(self, trust_port: int, registry_port: int, bind: str = "127.0.0.1", docker_config: Path | None = None) -> tuple[SandboxState, bool]:
        """Start the sandbox (creating it if new). Returns the state and whether anything was started."""
        state = self.load()
        if state is not None:
            alive = self.running(state)
            if all(alive.values()):
                if docker_config is not None:
                    self._install_docker_ca(state, docker_config)
                return state, False
            # a stopped sandbox: restart what is down, keeping its data and certificates
            self.stop(state)
        else:
            state = SandboxState(dir=str(self.dir), bind=bind,
                                 trust=Service("trust", trust_port, health_path="/_notary_server/health"),
                                 registry=Service("registry", registry_port, health_path="/v2/"))
        for s in (state.trust, state.registry):
            if not _port_free(state.bind, s.port):
                raise ConfigError(f"port {s.port} (sandbox {s.name} server) is already in use",
                                  hint=f"choose another with --{s.name}-port, or stop what listens on {s.port}")
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("tls", "trust", "registry", "logs", "notary"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if not self.ca_cert.exists():
            self._make_pki()
        pw = self.dir / "trust" / "key-passphrase"
        if not pw.exists():
            write_private(pw, secrets.token_urlsafe(32).encode())
        self._write_notary_config(state)
        cmds = self._commands(state)
        state.trust.pid = self._start("trust", cmds["trust"])
        state.registry.pid = self._start("registry", cmds["registry"])
        self.save(state)
        try:
            self.wait_healthy(state)
        except TrustboxError:
            self.stop(state)
            raise
        if docker_config is not None:
            self._install_docker_ca(state, docker_config)
        return state, True

    def _write_notary_config(self, state: SandboxState) -> None:
        cfg = {"trust_dir": str(Path.home() / ".notary"),
               "remote_server": {"url": state.trust.url(), "root_ca": str(self.ca_cert)}}
        self.notary_config.write_text(json.dumps(cfg, indent=2) + "\n")

    def _install_docker_ca(self, state: SandboxState, docker_config: Path) -> None:
        for s in (state.trust, state.registry):
            for host in ("localhost", "127.0.0.1"):
                d = docker_config.expanduser() / "tls" / f"{host}:{s.port}"
                d.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.ca_cert, d / "ca.crt")
        state.docker_config = str(docker_config.expanduser().absolute())
        self.save(state)

    def stop(self, state: SandboxState) -> None:
        """Stop both servers (SIGTERM, then SIGKILL after a grace period)."""
        services = [s for s in (state.trust, state.registry) if _pid_alive(s.pid)]
        for s in services:
            try:
                os.killpg(s.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5
        while any(_pid_alive(s.pid) for s in services) and time.monotonic() < deadline:
            time.sleep(0.05)
        for s in services:
            if _pid_alive(s.pid):
                try:
                    os.killpg(s.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for s in (state.trust, state.registry):
            s.pid = 0
        if self.state_file.exists():
            self.save(state)

    def down(self, remove: bool = False) -> bool:
        """Stop the sandbox; with ``remove`` also delete keys, data and certificates. Returns whether one existed."""
        state = self.load()
        if state is not None:
            self.stop(state)
        existed = state is not None or self.dir.exists()
        if remove and self.dir.exists():
            shutil.rmtree(self.dir)
        return existed

    # -- what users paste ------------------------------------------------------------------------

    def exports(self, state: SandboxState) -> list[tuple[str, str]]:
        """Environment variables that point trustbox, notary and docker at the sandbox."""
        out = [
            ("DOCKER_CONTENT_TRUST", "1"),
            ("DOCKER_CONTENT_TRUST_SERVER", state.trust.url()),
            ("TRUSTBOX_CA_CERT", str(self.ca_cert)),
            ("TRUSTBOX_REGISTRY", f"localhost:{state.registry.port}"),
            ("TRUSTBOX_SANDBOX_DIR", str(self.dir)),
        ]
        if state.docker_config:
            out.append(("DOCKER_CONFIG", state.docker_config))
        return out
