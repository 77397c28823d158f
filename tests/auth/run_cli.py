"""Run the trustbox command line standalone (``python tests/auth/run_cli.py serve auth ...``)."""

from __future__ import annotations

import click

from trustbox.cli import cli


def build() -> click.Group:
    """The root ``trustbox`` group (``serve auth``, ``auth``, ``login`` and ``logout`` among its commands)."""
    return cli


if __name__ == "__main__":
    build()()
