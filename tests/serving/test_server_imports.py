"""What a server process loads: ``trustbox serve trust`` / ``serve registry`` run with their own
modules, not the client, the other server, the CLI's other command families or optional bindings
(PKCS#11, YAML, MySQL, the HTTP client) they do not use. Every module a server imports stays in
its memory for the server's life (bench/README.md reports the trust server's peak RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# runs `trustbox <argv>` with the HTTP server replaced by "build the app, print sys.modules"
_PROBE = r"""
import json, sys
import trustbox.serving as serving

def run_asgi(app, host, port, *args, factory=False, **kwargs):
    serving._resolve(app, factory)
    print(json.dumps(sorted(sys.modules)))

serving.run_asgi = run_asgi
from trustbox.cli import main
sys.argv = ["trustbox", *json.loads(sys.argv[1])]
main()
"""

# never needed by a server that is not configured for them
NOT_IN_ANY_SERVER = ("trustbox.client", "trustbox.keystore", "trustbox.sandbox", "trustbox.cli.image_cmd",
                     "trustbox.cli.trust_cmd", "trustbox.cli.migrate_cmd", "trustbox.cli.archive_cmd",
                     "trustbox.cli.sandbox_cmd", "trustbox.cli.registry_cmd", "trustbox.cli.auth_cmd",
                     "trustbox.cli.tuf_cmd", "pkcs11", "pymysql", "rich", "boto3", "playwright")


def _modules(argv: list[str], cwd: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(argv)], cwd=cwd, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_trust_server_process_loads_only_the_trust_server(tmp_path: Path) -> None:
    modules = _modules(["serve", "trust", "--listen", "127.0.0.1:1", "--db", f"sqlite:///{tmp_path / 't.db'}",
                        "--insecure-dev-keys"], tmp_path)
    assert "trustbox.trustserver.app" in modules  # the probe did build the app
    assert _loaded(modules, (*NOT_IN_ANY_SERVER, "trustbox.registry", "trustbox.auth", "httpx", "yaml")) == []


def test_trust_server_with_auth_loads_the_auth_modules(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:$2y$05$TgS0Q6RyBy8tm1kX4J9lXuE1bKqPz0Hn6vTtT0HUKp5iiMZbZCPSS\n")
    modules = _modules(["serve", "trust", "--listen", "127.0.0.1:1", "--db", f"sqlite:///{tmp_path / 't.db'}",
                        "--insecure-dev-keys", "--htpasswd", str(htpasswd)], tmp_path)
    assert "trustbox.auth.middleware" in modules
    assert _loaded(modules, (*NOT_IN_ANY_SERVER, "trustbox.registry")) == []


def test_registry_process_loads_only_the_registry(tmp_path: Path) -> None:
    modules = _modules(["serve", "registry", "--listen", "127.0.0.1:1", "--storage", str(tmp_path / "data")],
                       tmp_path)
    assert "trustbox.registry.app" in modules
    assert _loaded(modules, (*NOT_IN_ANY_SERVER, "trustbox.trustserver")) == []


def test_every_named_command_loads_under_its_name() -> None:
    """The command table of the lazy CLI: each name loads a command of that name."""
    import click

    from trustbox.cli import ROOT_COMMANDS, SERVE_COMMANDS, cli, serve

    for group, table in ((cli, ROOT_COMMANDS), (serve, SERVE_COMMANDS)):
        ctx = click.Context(group)
        assert set(table) <= set(group.list_commands(ctx))
        for name in table:
            command = group.get_command(ctx, name)
            assert command is not None and command.name == name, name
