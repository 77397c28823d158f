"""Run the auth command family standalone (``python run_cli.py serve auth ...``).

``trustbox.cli.auth_cmd`` registers itself on the root CLI; until it is listed there, the tests
mount it on a fresh group with the same ``register(cli, serve)`` call.
"""

from __future__ import annotations

import click

from trustbox.cli.auth_cmd import register


def build() -> click.Group:
    """A root group with ``serve`` and the auth commands registered."""

    @click.group()
    def cli() -> None:
        """test root"""

    @cli.group()
    def serve() -> None:
        """serve"""

    register(cli, serve)
    return cli


if __name__ == "__main__":
    build()()
