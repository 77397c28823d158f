"""The sandbox: a CA, a trust server and a registry running in the background under one folder.

Layout of the sandbox folder::

    sandbox.json            state: ports, process IDs, paths
    tls/ca.crt, ca.key      the sandbox CA (fresh for every new sandbox)
    tls/server.crt, .key    server certificate for localhost, 127.0.0.1 and this host's name
    trust/trust.db          the trust server's SQLite database
    trust/key-passphrase    passphrase protecting the server-managed keys at rest
    registry/               the registry's storage
    notary/config.json      a notary client config pointing at the sandbox
    logs/trust.log, logs/registry.log, logs/auth.log   each server's stderr (access lines at info)
    auth/                   with --auth: signing-key.pem + cert.pem (token signing), htpasswd,
                            password (the generated one), rules.toml

Outside the folder the sandbox writes the CA copies for the docker CLI (``--docker-config``:
``<docker config>/tls/<host:port>/ca.crt``, listed in ``sandbox.json``), and clients cache the
sandbox's trust data in the trust folder (``<trust dir>/tuf/<registry host:port>/...``).
``down -v`` removes both; private keys in ``<trust dir>/private`` are kept.
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

from trustbox.atomicfile import atomic_write
from trustbox.client.dockerenv import trust_dir as docker_trust_dir
from trustbox.errors import ConfigError, TrustboxError
from trustbox.sandbox.pki import make_ca, make_server_cert

DEFAULT_TRUST_PORT = 4443
DEFAULT_REGISTRY_PORT = 5000
DEFAULT_AUTH_PORT = 5001
DEFAULT_AUTH_USER = "sandbox"
AUTH_ISSUER = "trustbox-sandbox"
TRUST_SERVICE = "trustbox-sandbox-trust"
REGISTRY_SERVICE = "trustbox-sandbox-registry"
HEALTH_TIMEOUT = 20.0
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "info"


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
    auth: Service | None = None
    auth_user: str | None = None
    auth_password_file: str | None = None
    auth_private: bool = False
    #: CA copies installed for the docker CLI (``--docker-config``), removed by ``down -v``
    docker_ca_files: list[str] = field(default_factory=list)
    #: the servers' ``--log-level`` (info: one access line per request in their logs)
    log_level: str = DEFAULT_LOG_LEVEL

    def services(self) -> list[Service]:
        """Every server of this sandbox (the token server first: the others point at it)."""
        return ([self.auth] if self.auth else []) + [self.trust, self.registry]


@dataclass
class Removal:
    """What ``down`` did: whether a sandbox existed, what it removed outside its folder, and
    where the private keys it left alone are."""

    existed: bool
    removed: list[Path] = field(default_factory=list)
    kept_keys: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class AuthOptions:
    """``sandbox up --auth``: the user, where its password comes from, whether anonymous pulls work."""

    port: int = DEFAULT_AUTH_PORT
    user: str = DEFAULT_AUTH_USER
    password_file: Path | None = None
    private: bool = False


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


def server_hosts() -> list[str]:
    """The names the sandbox's servers answer to (its certificate's names): localhost, loopback
    addresses, this host's name and fully qualified name."""
    hosts = ["localhost", "127.0.0.1", "::1"]
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in hosts:
            hosts.append(name)
    return hosts


def host_port(host: str, port: int) -> str:
    """``host:port`` as it names docker's TLS and trust folders (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
                auth=Service(**raw["auth"]) if raw.get("auth") else None, auth_user=raw.get("auth_user"),
                auth_password_file=raw.get("auth_password_file"), auth_private=bool(raw.get("auth_private", False)),
                docker_ca_files=[str(f) for f in raw.get("docker_ca_files", [])],
                log_level=raw.get("log_level", DEFAULT_LOG_LEVEL),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.state_file} is damaged ({exc}); remove the sandbox with 'trustbox sandbox down -v'") from exc

    def save(self, state: SandboxState) -> None:
        """Write ``sandbox.json`` atomically."""
        atomic_write(self.state_file, json.dumps(asdict(state), indent=2).encode(), 0o644)

    def running(self, state: SandboxState) -> dict[str, bool]:
        """Whether each service process is alive."""
        return {s.name: _pid_alive(s.pid) for s in state.services()}

    # -- lifecycle -----------------------------------------------------------------------------

    def _make_pki(self) -> None:
        now = datetime.now(UTC)
        ca_pair, ca_cert, ca_key = make_ca(now)
        server = make_server_cert(ca_cert, ca_key, server_hosts(), now)
        atomic_write(self.dir / "tls" / "ca.key", ca_pair.key_pem)
        atomic_write(self.dir / "tls" / "ca.crt", ca_pair.cert_pem, 0o644)
        atomic_write(self.dir / "tls" / "server.crt", server.cert_pem + ca_pair.cert_pem, 0o644)
        atomic_write(self.dir / "tls" / "server.key", server.key_pem)

    @property
    def auth_password_file(self) -> Path:
        """Where the sandbox user's generated password is kept (0600)."""
        return self.dir / "auth" / "password"

    def _commands(self, state: SandboxState) -> dict[str, list[str]]:
        tls = ["--tls-cert", str(self.dir / "tls" / "server.crt"), "--tls-key", str(self.dir / "tls" / "server.key")]
        base = [sys.executable, "-m", "trustbox", "serve"]
        level = ["--log-level", state.log_level]
        cmds = {
            "trust": base + ["trust", "--listen", f"{state.bind}:{state.trust.port}", *tls, *level,
                             "--db", f"sqlite:///{self.dir / 'trust' / 'trust.db'}",
                             "--key-passphrase-file", str(self.dir / "trust" / "key-passphrase")],
            "registry": base + ["registry", "--listen", f"{state.bind}:{state.registry.port}", *tls, *level,
                                "--storage", str(self.dir / "registry")],
        }
        if state.auth is not None:
            a = self.dir / "auth"
            cmds["auth"] = base + ["auth", "--listen", f"{state.bind}:{state.auth.port}", *tls,
                                   "--htpasswd", str(a / "htpasswd"), "--rules", str(a / "rules.toml"),
                                   "--issuer", AUTH_ISSUER, "--signing-key", str(a / "signing-key.pem"),
                                   "--cert", str(a / "cert.pem"), "--service", TRUST_SERVICE,
                                   "--service", REGISTRY_SERVICE, *level]
            for name, service in (("trust", TRUST_SERVICE), ("registry", REGISTRY_SERVICE)):
                cmds[name] += ["--auth-token-realm", f"{state.auth.url()}/token", "--auth-token-service", service,
                               "--auth-token-issuer", AUTH_ISSUER, "--auth-token-rootcertbundle", str(a / "cert.pem")]
        return cmds

    def _make_auth(self, state: SandboxState, options: AuthOptions) -> None:
        """Token signing key + certificate, the htpasswd file with one user, and the access rules."""
        from trustbox.auth.htpasswd import add_user, validate_user
        from trustbox.auth.tokens import generate_signing_material

        a = self.dir / "auth"
        a.mkdir(parents=True, exist_ok=True)
        if not (a / "signing-key.pem").exists() or not (a / "cert.pem").exists():
            key_pem, cert_pem = generate_signing_material("trustbox sandbox token issuer")
            atomic_write(a / "signing-key.pem", key_pem, 0o600)
            atomic_write(a / "cert.pem", cert_pem, 0o644)
        validate_user(options.user)
        if options.password_file is not None:
            try:
                password = options.password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, UnicodeDecodeError, IndexError) as exc:
                raise ConfigError(f"cannot read a password from {options.password_file}: {exc}") from None
            if not password:
                raise ConfigError(f"{options.password_file} holds an empty password")
            (a / "htpasswd").unlink(missing_ok=True)
            add_user(a / "htpasswd", options.user, password)
            if options.password_file.absolute() != self.auth_password_file:
                self.auth_password_file.unlink(missing_ok=True)
            state.auth_password_file = str(options.password_file.absolute())
        elif state.auth_user != options.user or not (a / "htpasswd").exists():
            password = secrets.token_urlsafe(18)
            atomic_write(self.auth_password_file, (password + "\n").encode())
            (a / "htpasswd").unlink(missing_ok=True)
            add_user(a / "htpasswd", options.user, password)
            state.auth_password_file = str(self.auth_password_file)
        rules = [
            f'[[rule]]\nsubject = {json.dumps(options.user)}\nrepository = "*"\nactions = ["*"]\n',
            f'[[rule]]\nsubject = {json.dumps(options.user)}\ntype = "registry"\nrepository = "catalog"\nactions = ["*"]\n',
        ]
        if not options.private:  # the notary CLI reads anonymously; docker-hub-like public pulls
            rules.append('[[rule]]\nsubject = "*"\nrepository = "*"\nactions = ["pull"]\n')
        (a / "rules.toml").write_text("# written by trustbox sandbox up --auth\n\n" + "\n".join(rules))
        state.auth_user = options.user
        state.auth_private = options.private

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
        """Wait until every server answers, or raise naming the one that does not."""
        deadline = time.monotonic() + timeout
        pending = state.services()
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

    def up(self, trust_port: int, registry_port: int, bind: str = "127.0.0.1", docker_config: Path | None = None,
           auth: AuthOptions | None = None, log_level: str | None = None) -> tuple[SandboxState, bool]:
        """Start the sandbox (creating it if new). Returns the state and whether anything was started.

        With ``auth``, a token server runs as a third service and the other two require its tokens;
        a sandbox once started with auth keeps it when restarted. ``log_level`` (one of
        :data:`LOG_LEVELS`; None keeps the sandbox's, info for a new one) is the servers' level.
        Raises ConfigError for an unknown level or a port in use, TrustboxError when a server
        does not start.
        """
        if log_level is not None and log_level not in LOG_LEVELS:
            raise ConfigError(f"unknown log level {log_level!r}", hint="use one of " + ", ".join(LOG_LEVELS))
        state = self.load()
        if state is not None:
            alive = self.running(state)
            if all(alive.values()) and (auth is None or state.auth is not None):
                if docker_config is not None:
                    self._install_docker_ca(state, docker_config)
                return state, False
            # a stopped sandbox (or one gaining auth): restart it, keeping its data and certificates
            self.stop(state)
        else:
            state = SandboxState(dir=str(self.dir), bind=bind,
                                 trust=Service("trust", trust_port, health_path="/_notary_server/health"),
                                 registry=Service("registry", registry_port, health_path="/v2/"))
        if auth is not None and state.auth is None:
            state.auth = Service("auth", auth.port, health_path="/health")
        if log_level is not None:
            state.log_level = log_level
        for s in state.services():
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
            atomic_write(pw, secrets.token_urlsafe(32).encode())
        if auth is not None:
            self._make_auth(state, auth)
        self._write_notary_config(state)
        cmds = self._commands(state)
        for s in state.services():
            s.pid = self._start(s.name, cmds[s.name])
        self.save(state)
        try:
            self.wait_healthy(state)
        except TrustboxError:
            self.stop(state)
            raise
        if docker_config is not None:
            self._install_docker_ca(state, docker_config)
        return state, True

    def trust_dir(self, state: SandboxState) -> Path:
        """The trust folder trustbox and docker use with this sandbox's settings:
        ``<--docker-config>/trust``, else ``$DOCKER_CONFIG/trust`` or ``~/.docker/trust``."""
        if state.docker_config:
            return Path(state.docker_config) / "trust"
        return docker_trust_dir().expanduser().absolute()

    def _write_notary_config(self, state: SandboxState) -> None:
        """notary's config: the sandbox's server and CA, and the trust folder docker and trustbox use
        (so ``notary key list`` shows the keys ``trustbox trust sign`` made)."""
        cfg = {"trust_dir": str(self.trust_dir(state)),
               "remote_server": {"url": state.trust.url(), "root_ca": str(self.ca_cert)}}
        self.notary_config.write_text(json.dumps(cfg, indent=2) + "\n")

    def _install_docker_ca(self, state: SandboxState, docker_config: Path) -> None:
        """Copy the CA to ``<docker_config>/tls/<host:port>/ca.crt`` for every server and record the copies."""
        installed = set(state.docker_ca_files)
        for s in state.services():
            for host in ("localhost", "127.0.0.1"):
                d = docker_config.expanduser().absolute() / "tls" / host_port(host, s.port)
                d.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.ca_cert, d / "ca.crt")
                installed.add(str(d / "ca.crt"))
        state.docker_ca_files = sorted(installed)
        state.docker_config = str(docker_config.expanduser().absolute())
        self._write_notary_config(state)
        self.save(state)

    def _remove_docker_ca(self, state: SandboxState) -> list[Path]:
        """Remove the recorded CA copies that still hold this sandbox's CA (and their folders once empty)."""
        removed: list[Path] = []
        try:
            ca = self.ca_cert.read_bytes()
        except OSError:
            return removed
        for name in state.docker_ca_files:
            path = Path(name)
            try:
                if path.read_bytes() != ca:
                    continue  # replaced since: not ours any more
                path.unlink()
            except OSError:
                continue
            removed.append(path)
            try:
                path.parent.rmdir()
            except OSError:
                pass  # other files in it
        return removed

    def _trust_dirs(self, state: SandboxState) -> list[Path]:
        """Every trust folder that may cache this sandbox's trust data: docker's (as configured for
        the sandbox and in this environment) and the one the sandbox's notary config names."""
        dirs = [self.trust_dir(state), docker_trust_dir().expanduser().absolute()]
        try:
            notary_dir = json.loads(self.notary_config.read_text()).get("trust_dir")
        except (OSError, ValueError, AttributeError):
            notary_dir = None
        if isinstance(notary_dir, str) and notary_dir:
            dirs.append(Path(notary_dir).expanduser().absolute())
        return list(dict.fromkeys(dirs))

    def _forget_trust_data(self, state: SandboxState) -> tuple[list[Path], list[Path]]:
        """Remove the cached trust data of the sandbox registry's repositories (``tuf/<host:port>``,
        for every name the registry answers to) from every trust folder; it described servers that
        no longer exist. Returns what was removed and the private-key folders kept."""
        removed: list[Path] = []
        kept: list[Path] = []
        for d in self._trust_dirs(state):
            for host in server_hosts():
                cached = d / "tuf" / host_port(host, state.registry.port)
                if cached.is_dir() and not cached.is_symlink():
                    shutil.rmtree(cached)
                    removed.append(cached)
            if (d / "private").is_dir():
                kept.append(d / "private")
        return removed, kept

    def stop(self, state: SandboxState) -> None:
        """Stop every server (SIGTERM, then SIGKILL after a grace period)."""
        services = [s for s in state.services() if _pid_alive(s.pid)]
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
        for s in state.services():
            s.pid = 0
        if self.state_file.exists():
            self.save(state)

    def down(self, remove: bool = False) -> Removal:
        """Stop the sandbox; with ``remove`` also delete its folder (server keys, data, certificates),
        the CA copies it installed for docker and the trust data cached for its registry.

        Private keys (in the trust folders' ``private/``) are kept. Raises ConfigError when
        ``sandbox.json`` is damaged.
        """
        try:
            state = self.load()
        except ConfigError:
            if not remove:
                raise
            state = None  # a damaged sandbox.json: its servers cannot be found, its folder still goes
        if state is not None:
            self.stop(state)
        result = Removal(existed=state is not None or self.dir.exists())
        if remove:
            if state is not None:
                result.removed += self._remove_docker_ca(state)
                removed, result.kept_keys = self._forget_trust_data(state)
                result.removed += removed
            if self.dir.exists():
                shutil.rmtree(self.dir)
        return result

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
