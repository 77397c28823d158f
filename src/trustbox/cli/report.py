"""The one error path of the command line: how an error becomes lines on stderr and an exit code.

An error whose message is a complete line (``complete_line``: the client's docker-worded
:class:`~trustbox.client.errors.TrustError`) is printed as it is
(``Error: remote trust data does not exist ...``, ``No valid trust data for v1``); any other
trustbox error is printed as ``Error: <message>`` (a message already starting with ``Error:`` or
``Warning:`` is not prefixed again) followed by its ``Hint:`` line. The exit code is the error's
(1) unless the command family gives its own (``trustbox verify``: 2 usage, 3 network).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from trustbox.errors import TrustboxError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

_WORDED = ("Error:", "Warning:")


def error_line(message: str) -> str:
    """``Error: <message>``, unless the message already carries docker's ``Error:``/``Warning:``."""
    return message if message.startswith(_WORDED) else f"Error: {message}"


def error_lines(exc: TrustboxError) -> list[str]:
    """What the command line prints for ``exc``: its line, then its hint if any."""
    lines = [exc.message if exc.complete_line else error_line(exc.message)]
    if exc.hint:
        lines.append(f"Hint: {exc.hint}")
    return lines


def fail(exc: TrustboxError, code: int | None = None) -> NoReturn:
    """Print ``exc`` (see :func:`error_lines`) and exit with ``code`` (default: the error's)."""
    for line in error_lines(exc):
        click.echo(line, err=True)
    raise click.exceptions.Exit(exc.exit_code if code is None else code)


def one_line_errors(func: F) -> F:
    """Run a command so that every failure is one line and a non-zero exit, never a traceback:
    trustbox errors through :func:`fail`, OS errors and anything unexpected as ``Error: ...``, exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrustboxError as exc:
            fail(exc)
        except OSError as exc:
            click.echo(f"Error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), err=True)
            raise click.exceptions.Exit(1) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI promises one line, not a traceback
            log.debug("unexpected error", exc_info=True)
            click.echo(f"Error: {exc}", err=True)
            raise click.exceptions.Exit(1) from None

    return wrapper  # type: ignore[return-value]
