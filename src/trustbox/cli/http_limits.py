"""``--max-header-bytes`` and ``--header-timeout`` for both servers.

The limits are applied to granian by :func:`trustbox.serving.http1_settings`, which reads
``TRUSTBOX_MAX_HEADER_BYTES`` / ``TRUSTBOX_HEADER_TIMEOUT``; the options set those variables
(checked before the server starts, so a bad value is a one-line error).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def http_limit_options(fn: F) -> F:
    """Add the two options to a ``serve`` command; they are removed from its keyword arguments."""
    fn = click.option("--header-timeout", type=float, default=None,
                      help="Seconds to receive a request head before the connection is closed [30]. "
                           "Env: TRUSTBOX_HEADER_TIMEOUT.")(fn)
    fn = click.option("--max-header-bytes", type=int, default=None,
                      help="Largest request head in bytes; larger ones get 431 [417792]. "
                           "Env: TRUSTBOX_MAX_HEADER_BYTES.")(fn)
    return fn


def apply_http_limits(options: dict[str, Any]) -> None:
    """Move the options out of ``options`` into the environment and validate them."""
    from trustbox.serving import http1_settings

    max_bytes = options.pop("max_header_bytes", None)
    timeout = options.pop("header_timeout", None)
    if max_bytes is not None:
        os.environ["TRUSTBOX_MAX_HEADER_BYTES"] = str(max_bytes)
    if timeout is not None:
        os.environ["TRUSTBOX_HEADER_TIMEOUT"] = repr(float(timeout))
    http1_settings()  # raises ConfigError on values that cannot work
