"""The ``trustbox`` command line.

Each command family lives in its own module and registers itself on the groups
defined here; this module only wires them together and turns errors into one line.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from trustbox import __version__
from trustbox.cli import (  # each module registers its commands on the groups below
    archive_cmd,
    auth_cmd,
    image_cmd,
    registry_cmd,
    sandbox_cmd,
    serve_registry,
    serve_trust,
    trust_cmd,
    tuf_cmd,
)
from trustbox.cli.report import fail
from trustbox.errors import TrustboxError


class _Group(click.Group):
    """A click group that prints TrustboxError as one line instead of a traceback (:func:`report.fail`)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrustboxError as exc:
            fail(exc)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trustbox")
def cli() -> None:
    """trustbox: Docker Content Trust — trust server, registry and client."""


@cli.group(cls=_Group)
def serve() -> None:
    """Run a server (trust server, registry)."""


for _module in (tuf_cmd, serve_trust, serve_registry, trust_cmd, archive_cmd, image_cmd, sandbox_cmd, registry_cmd,
                auth_cmd):
    _module.register(cli, serve)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(standalone_mode=True))
