"""``trustbox push``, ``trustbox pull``, ``trustbox verify``: image transfer with content trust.

Content trust follows docker: ``DOCKER_CONTENT_TRUST=1`` (any value but a false boolean) turns it
on, ``--disable-content-trust`` turns it off again. Messages about trust are printed exactly as
docker prints them; every other failure is one ``Error: ...`` line.

Exit codes of ``trustbox verify``: 0 signed and matching, 1 not signed / signer missing /
registry content does not match the signature, 2 usage or configuration, 3 trust server or
registry unreachable. Like docker, a trust server that does not serve its timestamp makes the
cached trust data (within its expiry) stand in, with notary's warning on stderr; ``verify
--require-fresh`` refuses that case.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from trustbox.cli.report import error_line, fail
from trustbox.client.errors import TrustError
from trustbox.client.images.distribution import RegistryOptions
from trustbox.client.images.layout import Progress
from trustbox.client.images.transfer import (
    EXIT_NETWORK,
    EXIT_USAGE,
    NotaryTrust,
    Reporter,
    TransferOptions,
    content_trust_enabled,
    pull_image,
    push_image,
    verify_image,
)
from trustbox.errors import NetworkError, TrustboxError

F = TypeVar("F", bound=Callable[..., Any])


class RichReporter(Reporter):
    """Status lines on stdout; a transient rich progress bar per blob when stderr is a terminal."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(click.echo, quiet)
        self.show_progress = not quiet and sys.stderr.isatty()

    @contextmanager
    def transfer(self, label: str, total: int) -> Iterator[Progress | None]:
        """A transient progress bar for one blob."""
        if not self.show_progress:
            yield None
            return
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)


def _transfer_options(func: F) -> F:
    func = click.option(
        "--ca-cert", "ca_certs", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Extra CA certificate (PEM) to trust for the registry; repeatable.",
    )(func)
    func = click.option(
        "--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
        help="Allow plain HTTP / unverified TLS for this registry (loopback registries always are); repeatable. "
        "Also read from TRUSTBOX_INSECURE_REGISTRIES.",
    )(func)
    return func


def _warn(line: str) -> None:
    """A trust client warning (notary's text) on stderr."""
    click.echo(line, err=True)


def _options(insecure: tuple[str, ...], ca_certs: tuple[Path, ...]) -> TransferOptions:
    return TransferOptions(registry=RegistryOptions.from_env(insecure, ca_certs), trust=NotaryTrust(warn=_warn))


def _fail(exc: TrustboxError, code: int | None = None) -> None:
    """:func:`~trustbox.cli.report.fail`, with the image commands' exit code for an unreachable
    trust server (3) unless ``code`` is given."""
    if code is None and isinstance(exc, TrustError) and exc.kind == "network":
        code = EXIT_NETWORK
    fail(exc, code)


@contextmanager
def _reported(ctx: click.Context) -> Iterator[None]:
    """Run a transfer: a trustbox error is printed by :func:`_fail`, Ctrl-C exits 130."""
    try:
        yield
    except TrustboxError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        click.echo("Error: interrupted", err=True)
        ctx.exit(130)


@click.command("push")
@click.argument("source", metavar="SOURCE")
@click.argument("image", metavar="IMAGE:TAG")
@click.option("--sign", is_flag=True, help="Sign the tag after pushing (same as DOCKER_CONTENT_TRUST=1).")
@click.option("--disable-content-trust", is_flag=True, help="Do not sign even if DOCKER_CONTENT_TRUST is set.")
@_transfer_options
@click.option("-q", "--quiet", is_flag=True, help="Print only trust messages and errors.")
@click.pass_context
def push_cmd(
    ctx: click.Context, source: str, image: str, sign: bool, disable_content_trust: bool,
    insecure: tuple[str, ...], ca_certs: tuple[Path, ...], quiet: bool,
) -> None:
    """Push a local image (oci:DIR[:REF], oci-archive:FILE, docker-archive:FILE) to IMAGE:TAG.

    Blobs the registry already has are skipped. With DOCKER_CONTENT_TRUST=1 or --sign the tag is
    then signed with the digest and size of the pushed manifest (for a multi-arch image: the index);
    on the first push the root and repository keys are created (passphrases from
    DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE / DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE or a prompt).
    """
    do_sign = (sign or content_trust_enabled()) and not disable_content_trust
    with _reported(ctx):
        push_image(source, image, sign=do_sign, opts=_options(insecure, ca_certs), reporter=RichReporter(quiet))


@click.command("pull")
@click.argument("image", metavar="IMAGE[:TAG|@DIGEST]")
@click.argument("destination", metavar="DEST")
@click.option("--disable-content-trust", is_flag=True, help="Skip trust verification even if DOCKER_CONTENT_TRUST is set.")
@_transfer_options
@click.option("-q", "--quiet", is_flag=True, help="Print only trust messages and errors.")
@click.pass_context
def pull_cmd(
    ctx: click.Context, image: str, destination: str, disable_content_trust: bool,
    insecure: tuple[str, ...], ca_certs: tuple[Path, ...], quiet: bool,
) -> None:
    """Pull IMAGE into DEST (oci:DIR[:REF] or oci-archive:FILE[:REF]).

    With DOCKER_CONTENT_TRUST=1 the tag is first resolved through the trust data and the manifest
    must match the signed digest and size. Every manifest and blob is verified while it downloads;
    on any failure DEST is left exactly as it was.
    """
    trusted = content_trust_enabled() and not disable_content_trust
    with _reported(ctx):
        pull_image(image, destination, trusted=trusted, opts=_options(insecure, ca_certs), reporter=RichReporter(quiet))


@click.command("verify")
@click.argument("image", metavar="IMAGE:TAG")
@click.option("--signer", "signers", multiple=True, metavar="NAME",
              help="Require a signature by this signer (a targets/<NAME> delegation, or 'Repo Admin'); repeatable.")
@click.option("--deep", is_flag=True, help="Also download and verify every child manifest and blob.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable verdict on stdout.")
@click.option("--require-fresh", is_flag=True,
              help="Fail when the trust server does not serve current trust data (no fallback to the local cache).")
@_transfer_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.pass_context
def verify_cmd(
    ctx: click.Context, image: str, signers: tuple[str, ...], deep: bool, as_json: bool, require_fresh: bool,
    insecure: tuple[str, ...], ca_certs: tuple[Path, ...], quiet: bool,
) -> None:
    """CI/CD gate: exit 0 only if IMAGE:TAG is signed (by every --signer) and the registry serves
    exactly the signed manifest (digest and size). When the trust server does not serve its
    timestamp, the cached trust data is used (with a warning) unless --require-fresh is given.

    Exit codes: 0 verified, 1 not signed / signer missing / mismatch / no current trust data,
    2 usage, 3 network.
    """
    try:
        opts = _options(insecure, ca_certs)
    except TrustboxError as exc:
        _fail(exc, EXIT_USAGE)
        return
    try:
        verdict = verify_image(image, signers=signers, deep=deep, require_fresh=require_fresh, opts=opts,
                               reporter=RichReporter(quiet or as_json))
    except NetworkError as exc:
        _fail(exc, EXIT_NETWORK)
        return
    except TrustboxError as exc:
        _fail(exc, 1)
        return
    if as_json:
        click.echo(json.dumps(verdict.to_json(), indent=2))
    elif verdict.verified:
        if not quiet:
            click.echo(f"Verified: {verdict.reason}")
    else:
        click.echo(f"Not verified: {verdict.reason}" if verdict.exit_code == 1 else error_line(verdict.reason), err=True)
    ctx.exit(verdict.exit_code)


def register(cli: click.Group, serve: click.Group) -> None:
    """Add ``push``, ``pull`` and ``verify`` to the root command."""
    cli.add_command(push_cmd)
    cli.add_command(pull_cmd)
    cli.add_command(verify_cmd)
