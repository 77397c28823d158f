"""The ``trustbox`` command line.

Each command family lives in its own module and registers itself on the groups
defined here; this module only wires them together and turns errors into one line.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from trustbox import __version__
from trustbox.errors import TrustboxError


class _Group(click.Group):
    """A click group that prints TrustboxError as one line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrustboxError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trustbox")
def cli() -> None:
    """trustbox: Docker Content Trust — trust server, registry and client."""


@cli.group(cls=_Group)
def serve() -> None:
    """Run a server (trust server, registry)."""


# Command modules, each owning its commands. A module that is not there yet is skipped,
# so work on one family never breaks the others.
_COMMAND_MODULES = (
    "trustbox.cli.tuf_cmd",
    "trustbox.cli.serve_trust",
    "trustbox.cli.serve_registry",
    "trustbox.cli.trust_cmd",
    "trustbox.cli.image_cmd",
    "trustbox.cli.sandbox_cmd",
    "trustbox.cli.registry_cmd",
    "trustbox.cli.auth_cmd",
)

for _name in _COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # pragma: no cover - only while a family is missing
        if _exc.name != _name:
            raise
        continue
    _mod.register(cli, serve)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(standalone_mode=True))
