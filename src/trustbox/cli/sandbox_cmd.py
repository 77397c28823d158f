"""``trustbox sandbox ...``: a whole local content-trust environment in one command."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click

from trustbox.errors import ConfigError
from trustbox.sandbox.stack import (
    DEFAULT_AUTH_PORT,
    DEFAULT_AUTH_USER,
    DEFAULT_LOG_LEVEL,
    DEFAULT_REGISTRY_PORT,
    DEFAULT_TRUST_PORT,
    LOG_LEVELS,
    AuthOptions,
    Sandbox,
    SandboxState,
    default_dir,
)

_dir_option = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Sandbox folder (default: $TRUSTBOX_SANDBOX_DIR or ~/.trustbox/sandbox).",
)


def _sandbox(directory: Path | None) -> Sandbox:
    return Sandbox(directory or default_dir())


def _command(sb: Sandbox, verb: str) -> str:
    """``trustbox sandbox VERB``, with ``--dir`` when ``sb`` is not the default sandbox."""
    where = "" if sb.dir == _sandbox(None).dir else f" --dir {shlex.quote(str(sb.dir))}"
    return f"trustbox sandbox {verb}{where}"


def _print_exports(sb: Sandbox, state: SandboxState) -> None:
    for name, value in sb.exports(state):
        click.echo(f"export {name}={shlex.quote(value)}")
    # The notary client reads its server and CA only from flags or a config file, not the
    # environment, so a shell function points it at the sandbox's config file, and at the trust
    # folder docker and trustbox use (notary's own default, ~/.notary, would not hold their keys).
    cfg = shlex.quote(str(sb.notary_config))
    click.echo(f'notary() {{ command notary -c {cfg} -d "${{DOCKER_CONFIG:-$HOME/.docker}}/trust" "$@"; }}')


def _require(sb: Sandbox) -> SandboxState:
    """The sandbox's state; raises ConfigError when there is no sandbox."""
    state = sb.load()
    if state is None:
        raise ConfigError(f"no sandbox in {sb.dir}", hint=f"start one with '{_command(sb, 'up')}'")
    return state


def _require_running(sb: Sandbox) -> SandboxState:
    """The state of a sandbox whose servers all run; raises ConfigError (one line) otherwise."""
    state = _require(sb)
    stopped = [name for name, alive in sb.running(state).items() if not alive]
    if stopped:
        what = "is not running" if len(stopped) == len(state.services()) else f"is not running ({', '.join(stopped)} stopped)"
        raise ConfigError(f"sandbox at {sb.dir} {what}; start it with '{_command(sb, 'up')}'")
    return state


@click.group("sandbox")
def sandbox_group() -> None:
    """A local registry + trust server with a fresh CA and TLS (and a token server with --auth)."""


@sandbox_group.command("up")
@_dir_option
@click.option("--trust-port", type=click.IntRange(1, 65535), default=DEFAULT_TRUST_PORT, show_default=True,
              envvar="TRUSTBOX_SANDBOX_TRUST_PORT", help="Trust server port (env TRUSTBOX_SANDBOX_TRUST_PORT).")
@click.option("--registry-port", type=click.IntRange(1, 65535), default=DEFAULT_REGISTRY_PORT, show_default=True,
              envvar="TRUSTBOX_SANDBOX_REGISTRY_PORT", help="Registry port (env TRUSTBOX_SANDBOX_REGISTRY_PORT).")
@click.option("--docker-config", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also install the CA under DIR/tls/<host:port>/ca.crt for the docker CLI.")
@click.option("--auth", is_flag=True, help="Require tokens from a sandbox token server (trustbox serve auth).")
@click.option("--auth-port", type=click.IntRange(1, 65535), default=DEFAULT_AUTH_PORT, show_default=True,
              envvar="TRUSTBOX_SANDBOX_AUTH_PORT", help="Token server port (env TRUSTBOX_SANDBOX_AUTH_PORT).")
@click.option("--auth-user", default=DEFAULT_AUTH_USER, show_default=True, help="The one user of the sandbox.")
@click.option("--auth-password-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="File whose first line is that user's password (default: a generated one).")
@click.option("--auth-private", is_flag=True,
              help="Refuse anonymous pulls too (the notary CLI, which reads anonymously, then cannot read).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default=None,
              help=f"The servers' log level; info and debug log one line per request ('trustbox sandbox logs') "
                   f"[{DEFAULT_LOG_LEVEL}, or what the sandbox was started with].")
def up_cmd(directory: Path | None, trust_port: int, registry_port: int, docker_config: Path | None, auth: bool,
           auth_port: int, auth_user: str, auth_password_file: Path | None, auth_private: bool,
           log_level: str | None) -> None:
    """Start the sandbox (if it is already running, say so and print the exports again)."""
    sb = _sandbox(directory)
    t0 = time.monotonic()
    options = AuthOptions(auth_port, auth_user, auth_password_file, auth_private) if auth else None
    state, started = sb.up(trust_port, registry_port, docker_config=docker_config, auth=options, log_level=log_level)
    if not started:
        click.echo(f"# trustbox sandbox in {sb.dir} is already running", err=True)
    else:
        click.echo(f"# trustbox sandbox is up in {sb.dir} ({time.monotonic() - t0:.1f}s)", err=True)
        click.echo(f"#   trust server: {state.trust.url()}   registry: localhost:{state.registry.port}", err=True)
        if state.auth is not None:
            click.echo(f"#   token server: {state.auth.url()}/token   user: {state.auth_user}"
                       f"   password in: {state.auth_password_file}", err=True)
            click.echo(f"#   log in: trustbox login localhost:{state.registry.port} -u {state.auth_user}"
                       f" --password-stdin < {shlex.quote(state.auth_password_file or '')}", err=True)
    click.echo(f'# paste these lines (or run: eval "$({_command(sb, "env")})"):', err=True)
    _print_exports(sb, state)


@sandbox_group.command("env")
@_dir_option
def env_cmd(directory: Path | None) -> None:
    """Print the exports for a running sandbox (an error when it is not running)."""
    sb = _sandbox(directory)
    _print_exports(sb, _require_running(sb))


@sandbox_group.command("status")
@_dir_option
def status_cmd(directory: Path | None) -> None:
    """Show whether each sandbox server is running."""
    sb = _sandbox(directory)
    state = _require(sb)
    alive = sb.running(state)
    for s in state.services():
        click.echo(f"{s.name:<9} {'running' if alive[s.name] else 'stopped':<8} pid {s.pid or '-':<7} {s.url()}")
    if not all(alive.values()):
        raise click.exceptions.Exit(1)


@sandbox_group.command("logs")
@_dir_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.argument("service", type=click.Choice(["trust", "registry", "auth", "all"]), default="all")
def logs_cmd(directory: Path | None, follow: bool, service: str) -> None:
    """Print the servers' logs."""
    sb = _sandbox(directory)
    state = _require(sb)
    if service == "auth" and state.auth is None:
        raise ConfigError("this sandbox has no token server", hint="start it with 'trustbox sandbox up --auth'")
    names = [s.name for s in state.services()] if service == "all" else [service]
    offsets: dict[str, int] = {}
    for n in names:
        p = sb.log_file(n)
        data = p.read_bytes() if p.exists() else b""
        for line in data.decode(errors="replace").splitlines():
            click.echo(f"{n}: {line}" if len(names) > 1 else line)
        offsets[n] = len(data)
    while follow:
        time.sleep(0.3)
        for n in names:
            p = sb.log_file(n)
            if not p.exists():
                continue
            with p.open("rb") as f:
                f.seek(offsets[n])
                chunk = f.read()
            offsets[n] += len(chunk)
            for line in chunk.decode(errors="replace").splitlines():
                click.echo(f"{n}: {line}" if len(names) > 1 else line)


@sandbox_group.command("down")
@_dir_option
@click.option("-v", "--volumes", "remove", is_flag=True,
              help="Also remove the sandbox's data, server keys and certificates, the CA copies installed with "
                   "--docker-config and the trust data cached for its registry (private keys are kept).")
def down_cmd(directory: Path | None, remove: bool) -> None:
    """Stop the sandbox (with -v, remove everything it created; private keys are kept)."""
    sb = _sandbox(directory)
    result = sb.down(remove=remove)
    for path in result.removed:
        click.echo(f"removed {path}", err=True)
    for path in result.kept_keys:
        click.echo(f"private keys kept in {path}", err=True)
    if not result.existed:
        click.echo(f"no sandbox in {sb.dir}", err=True)
        return
    click.echo(f"sandbox in {sb.dir} {'removed' if remove else 'stopped'}", err=True)


@sandbox_group.command("sample-image")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def sample_image_cmd(directory: Path) -> None:
    """Write a small sample image (an OCI layout) to DIRECTORY, for the tutorial."""
    from trustbox.client.images.sample import write_sample_image

    write_sample_image(directory)
    click.echo(f"wrote a sample image to oci:{directory}:latest", err=True)
