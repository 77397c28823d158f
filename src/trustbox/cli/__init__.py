"""The ``trustbox`` command line.

Each command family lives in its own module; this module only names the commands, loads a
family's module when one of its commands is used (so ``trustbox serve trust`` runs with the
trust server's modules only, not the client, registry and CLI stacks of every other family),
and turns errors into one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import click

from trustbox import __version__
from trustbox.cli.report import fail
from trustbox.errors import TrustboxError


def _auth() -> ModuleType:
    from trustbox.cli import auth_cmd

    return auth_cmd


def _image() -> ModuleType:
    from trustbox.cli import image_cmd

    return image_cmd


def _registry() -> ModuleType:
    from trustbox.cli import registry_cmd

    return registry_cmd


def _sandbox() -> ModuleType:
    from trustbox.cli import sandbox_cmd

    return sandbox_cmd


def _trust() -> ModuleType:
    # trust export / import and trust migrate add themselves to trust_cmd's group
    from trustbox.cli import archive_cmd, migrate_cmd, trust_cmd

    assert archive_cmd and migrate_cmd
    return trust_cmd


def _tuf() -> ModuleType:
    from trustbox.cli import tuf_cmd

    return tuf_cmd


def _serve_trust() -> ModuleType:
    from trustbox.cli import serve_trust

    return serve_trust


def _serve_registry() -> ModuleType:
    from trustbox.cli import serve_registry

    return serve_registry


#: a command's name -> (the loader of its family's module, the command's name in that module)
Commands = Mapping[str, tuple[Callable[[], ModuleType], str]]

ROOT_COMMANDS: Commands = {
    "auth": (_auth, "auth_group"),
    "login": (_auth, "login_cmd"),
    "logout": (_auth, "logout_cmd"),
    "push": (_image, "push_cmd"),
    "pull": (_image, "pull_cmd"),
    "verify": (_image, "verify_cmd"),
    "resolve": (_image, "resolve_cmd"),
    "copy": (_image, "copy_cmd"),
    "registry": (_registry, "registry_group"),
    "sandbox": (_sandbox, "sandbox_group"),
    "trust": (_trust, "trust_group"),
    "tuf": (_tuf, "tuf_group"),
}
SERVE_COMMANDS: Commands = {
    "trust": (_serve_trust, "serve_trust"),
    "signer": (_serve_trust, "serve_signer"),
    "registry": (_serve_registry, "serve_registry"),
    "auth": (_auth, "serve_auth"),
}


class _Group(click.Group):
    """A click group whose commands are loaded on first use, and which prints TrustboxError as
    one line instead of a traceback (:func:`report.fail`)."""

    def __init__(self, *args: Any, lazy: Commands | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: Commands = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in self.lazy:
            load, attribute = self.lazy[cmd_name]
            found = getattr(load(), attribute)
            assert isinstance(found, click.Command), f"{attribute} is not a command"
            self.add_command(found, cmd_name)
        return found

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrustboxError as exc:
            fail(exc)


@click.group(cls=_Group, lazy=ROOT_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trustbox")
def cli() -> None:
    """trustbox: Docker Content Trust — trust server, registry and client."""


@cli.group(cls=_Group, lazy=SERVE_COMMANDS)
def serve() -> None:
    """Run a server (trust server, registry)."""


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(standalone_mode=True))
