"""``trustbox push``, ``trustbox pull``, ``trustbox verify``: image transfer with content trust;
``trustbox copy``: registry to registry, digests preserved.

Content trust follows docker: ``DOCKER_CONTENT_TRUST=1`` (any value but a false boolean) turns it
on, ``--disable-content-trust`` turns it off again. Messages about trust are printed exactly as
docker prints them; every other failure is one ``Error: ...`` line.

Exit codes of ``trustbox verify`` (and ``trustbox resolve``): 0 signed and matching, 1 not
signed / signer missing / registry content does not match the signature / no sigstore signature
verifies, 2 usage or configuration, 3 trust server or registry unreachable. Like docker, a trust server that does not serve its timestamp makes the
cached trust data (within its expiry) stand in, with notary's warning on stderr; ``verify
--require-fresh`` refuses that case.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from trustbox.cli.report import error_line, fail
from trustbox.client.errors import TrustError
from trustbox.client.images.copy import DEFAULT_JOBS, CopyOptions, CopyStats, copy_image_ref
from trustbox.client.images.distribution import RegistryOptions
from trustbox.client.images.layout import Progress
from trustbox.client.images.transfer import (
    EXIT_NETWORK,
    EXIT_USAGE,
    REQUIRE_CHOICES,
    NotaryTrust,
    Reporter,
    TransferOptions,
    Verdict,
    content_trust_enabled,
    pull_image,
    push_image,
    verify_image,
)
from trustbox.errors import ConfigError, NetworkError, TrustboxError
from trustbox.oci.simplesigning import load_public_key
from trustbox.tuf.keys import PublicKey

F = TypeVar("F", bound=Callable[..., Any])


class RichReporter(Reporter):
    """Status lines on stdout; a transient rich progress bar per blob when stderr is a terminal."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(click.echo, quiet, err=lambda line: click.echo(line, err=True))
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


class LiveReporter(Reporter):
    """Status lines on stdout and, when stderr is a terminal, one live rich display with a bar per
    blob in flight (blobs move in parallel); use as a context manager."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(click.echo, quiet)
        self._bar: Any = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), console=Console(stderr=True), transient=True)

    def __enter__(self) -> LiveReporter:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    @contextmanager
    def transfer(self, label: str, total: int) -> Iterator[Progress | None]:
        """A bar for one blob while it moves (rich's display is thread-safe)."""
        bar = self._bar
        if bar is None:
            yield None
            return
        task = bar.add_task(label, total=total)
        try:
            yield lambda n: bar.advance(task, n)
        finally:
            bar.remove_task(task)


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
@click.option("--sigstore/--no-sigstore", default=None,
              help="When signing, also write (default) or skip the sigstore attachment signature; default from "
              "TRUSTBOX_SIGSTORE (on unless 0/false/no/off).")
@_transfer_options
@click.option("-q", "--quiet", is_flag=True, help="Print only trust messages and errors.")
@click.pass_context
def push_cmd(
    ctx: click.Context, source: str, image: str, sign: bool, disable_content_trust: bool, sigstore: bool | None,
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
        push_image(source, image, sign=do_sign, opts=_options(insecure, ca_certs), reporter=RichReporter(quiet),
                   sigstore=sigstore)


@click.command("pull")
@click.argument("image", metavar="IMAGE[:TAG|@DIGEST]")
@click.argument("destination", metavar="DEST")
@click.option("--disable-content-trust", is_flag=True, help="Skip trust verification even if DOCKER_CONTENT_TRUST is set.")
@click.option("--platform", "platform_name", metavar="OS/ARCH[/VARIANT]",
              help="For docker-archive: the platform to take from a multi-arch image (default: this machine's).")
@_transfer_options
@click.option("-q", "--quiet", is_flag=True, help="Print only trust messages and errors.")
@click.pass_context
def pull_cmd(
    ctx: click.Context, image: str, destination: str, disable_content_trust: bool, platform_name: str | None,
    insecure: tuple[str, ...], ca_certs: tuple[Path, ...], quiet: bool,
) -> None:
    """Pull IMAGE into DEST (oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:NAME:TAG]).

    With DOCKER_CONTENT_TRUST=1 the tag is first resolved through the trust data and the manifest
    must match the signed digest and size. Every manifest and blob is verified while it downloads;
    on any failure DEST is left exactly as it was. A docker-archive is what `docker load` and
    `podman load` read, tagged NAME:TAG or IMAGE's tag, holding one platform of a multi-arch image.
    """
    trusted = content_trust_enabled() and not disable_content_trust
    with _reported(ctx):
        pull_image(image, destination, trusted=trusted, opts=_options(insecure, ca_certs), reporter=RichReporter(quiet),
                   platform_name=platform_name)


MAX_KEY_FILE = 1 << 20


def _sigstore_keys(paths: tuple[Path, ...]) -> list[PublicKey]:
    """Public keys from ``--sigstore-key`` files (PEM ``PUBLIC KEY`` or certificate).

    Raises:
        ConfigError: a file cannot be read or holds no usable key.
    """
    keys = []
    for p in paths:
        try:
            with open(p, "rb") as fh:
                data = fh.read(MAX_KEY_FILE + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read sigstore key {p}: {exc.strerror or exc}") from None
        if len(data) > MAX_KEY_FILE:
            raise ConfigError(f"sigstore key {p} is larger than {MAX_KEY_FILE} bytes")
        try:
            keys.append(load_public_key(data))
        except TrustboxError as exc:
            raise ConfigError(f"sigstore key {p}: {exc.message}") from None
    return keys


def _check_options(func: F) -> F:
    """The options ``verify`` and ``resolve`` share: signers, sigstore keys, --require, freshness."""
    func = click.option(
        "--require-fresh", is_flag=True,
        help="Fail when the trust server does not serve current trust data (no fallback to the local cache).",
    )(func)
    func = click.option(
        "--require", "require", type=click.Choice(REQUIRE_CHOICES), default=None,
        help="Which signatures must verify: dct (content trust, the default without --sigstore-key), sigstore "
        "(attachments in the registry only, no trust server), both (the default with --sigstore-key).",
    )(func)
    func = click.option(
        "--sigstore-key", "sigstore_key_files", multiple=True,
        type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
        help="PEM public key a sigstore attachment signature must verify with (any of them); repeatable.",
    )(func)
    func = click.option(
        "--signer", "signers", multiple=True, metavar="NAME",
        help="Require a signature by this signer (a targets/<NAME> delegation, or 'Repo Admin'); repeatable.",
    )(func)
    return func


def _prepare_check(
    insecure: tuple[str, ...], ca_certs: tuple[Path, ...], key_files: tuple[Path, ...], require: str | None
) -> tuple[TransferOptions, list[PublicKey], str]:
    """Options, sigstore keys and the effective --require; a usage error exits 2."""
    try:
        return _options(insecure, ca_certs), _sigstore_keys(key_files), require or ("both" if key_files else "dct")
    except TrustboxError as exc:
        _fail(exc, EXIT_USAGE)
        raise AssertionError("unreachable") from None


@click.command("verify")
@click.argument("image", metavar="IMAGE:TAG")
@_check_options
@click.option("--deep", is_flag=True, help="Also download and verify every child manifest and blob.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable verdict on stdout.")
@_transfer_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@click.pass_context
def verify_cmd(
    ctx: click.Context, image: str, signers: tuple[str, ...], sigstore_key_files: tuple[Path, ...], require: str | None,
    require_fresh: bool, deep: bool, as_json: bool, insecure: tuple[str, ...], ca_certs: tuple[Path, ...], quiet: bool,
) -> None:
    """CI/CD gate: exit 0 only if IMAGE:TAG is signed (by every --signer) and the registry serves
    exactly the signed manifest (digest and size). When the trust server does not serve its
    timestamp, the cached trust data is used (with a warning) unless --require-fresh is given.

    With --sigstore-key, a sigstore attachment (tag sha256-<hex>.sig, as cosign writes) of that
    manifest must also verify with one of the keys (--require both, the default), or only it
    (--require sigstore: no trust server, IMAGE@DIGEST allowed; e.g. after a copy to another
    registry).

    Exit codes: 0 verified, 1 not signed / signer missing / mismatch / no current trust data /
    no sigstore signature verifies, 2 usage, 3 network.
    """
    opts, keys, req = _prepare_check(insecure, ca_certs, sigstore_key_files, require)
    try:
        verdict = verify_image(image, signers=signers, deep=deep, require_fresh=require_fresh, opts=opts,
                               reporter=RichReporter(quiet or as_json), require=req, sigstore_keys=keys)
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
        _explain(verdict)
    ctx.exit(verdict.exit_code)


def _explain(verdict: Verdict) -> None:
    """Why a check failed, on stderr: ``Not verified: ...`` (exit 1) or an ``Error: ...`` line."""
    click.echo(f"Not verified: {verdict.reason}" if verdict.exit_code == 1 else error_line(verdict.reason), err=True)


def _references(images: tuple[str, ...], from_file: TextIO | None) -> list[str]:
    """The references to resolve: the arguments, then the file's lines (blank lines and ``#``
    comments skipped), in order."""
    refs = list(images)
    if from_file is not None:
        for line in from_file:
            text = line.strip()
            if text and not text.startswith("#"):
                refs.append(text)
    return refs


@click.command("resolve")
@click.argument("images", nargs=-1, metavar="IMAGE[:TAG]...")
@click.option("--from-file", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Resolve the references in FILE too (one per line, '-' for stdin), in order.")
@_check_options
@click.option("--json", "as_json", is_flag=True,
              help="Print verdicts as JSON (one object for one IMAGE, a list with --from-file or several).")
@_transfer_options
@click.pass_context
def resolve_cmd(
    ctx: click.Context, images: tuple[str, ...], from_file: TextIO | None, signers: tuple[str, ...],
    sigstore_key_files: tuple[Path, ...], require: str | None, require_fresh: bool, as_json: bool,
    insecure: tuple[str, ...], ca_certs: tuple[Path, ...],
) -> None:
    """Print the verified IMAGE@sha256:... of each IMAGE[:TAG], one per line, in order.

    The same checks as `trustbox verify` (trust data, --signer, the registry serving the signed
    manifest, sigstore attachments with --sigstore-key); pull the printed reference with any client,
    e.g. `docker pull "$(trustbox resolve app:1)"` (Docker CLI 29 has no content trust), podman,
    ctr, or put it in a Kubernetes manifest. Exit codes as verify; with several references, the
    first failing one's (the others are still resolved and printed).
    """
    opts, keys, req = _prepare_check(insecure, ca_certs, sigstore_key_files, require)
    refs = _references(images, from_file)
    if not refs:
        _fail(ConfigError("name an IMAGE[:TAG] or use --from-file"), EXIT_USAGE)
    verdicts = []
    for image in refs:
        try:
            verdict = verify_image(image, signers=signers, require_fresh=require_fresh, opts=opts,
                                   reporter=Reporter(), require=req, sigstore_keys=keys)
        except TrustboxError as exc:  # verify_image reports in the verdict; this is a bug guard
            verdict = Verdict(image=image, exit_code=EXIT_NETWORK if isinstance(exc, NetworkError) else 1, reason=exc.message)
        verdicts.append(verdict)
        if not as_json:
            if verdict.resolved:
                click.echo(verdict.resolved)
            else:
                _explain(verdict)
    if as_json:
        docs = [v.to_json() for v in verdicts]
        click.echo(json.dumps(docs[0] if len(refs) == 1 and from_file is None else docs, indent=2))
    ctx.exit(next((v.exit_code for v in verdicts if v.exit_code != 0), 0))


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


@click.command("copy")
@click.argument("source", metavar="SRC_IMAGE")
@click.argument("destination", metavar="DST_IMAGE")
@click.option("-j", "--jobs", type=click.IntRange(1, 32), default=DEFAULT_JOBS, show_default=True,
              help="Blobs copied at the same time.")
@click.option("--no-attachments", is_flag=True,
              help="Do not copy cosign signature/attestation/SBOM tags (sha256-<hex>.sig ...) and referrers.")
@_transfer_options
@click.option("-q", "--quiet", is_flag=True, help="Print only the result line and errors.")
@click.pass_context
def copy_cmd(
    ctx: click.Context, source: str, destination: str, jobs: int, no_attachments: bool,
    insecure: tuple[str, ...], ca_certs: tuple[Path, ...], quiet: bool,
) -> None:
    """Copy an image from one registry (or repository) to another, digests unchanged.

    SRC_IMAGE is NAME[:TAG|@DIGEST]; DST_IMAGE is NAME[:TAG] (without a tag: the source's tag).
    Every manifest is written byte for byte (signatures naming the digest stay valid), a
    multi-arch index with every child; blobs stream from one registry to the other, verified
    while they pass, and are skipped when the destination has them or mounted when both are on
    the same registry. Cosign attachments (sha256-<hex>.sig/.att/.sbom tags) and referrers come
    along. Credentials: $DOCKER_CONFIG/config.json (and credential helpers) for each registry.
    """
    with _reported(ctx):
        registry = RegistryOptions.from_env(insecure, ca_certs)
        options = CopyOptions(source=registry, destination=registry, jobs=jobs, attachments=not no_attachments)
        stats: list[CopyStats] = []
        with LiveReporter(quiet) as reporter:
            result = copy_image_ref(source, destination, options=options, reporter=reporter, on_stats=stats.append)
        s = stats[0]
        where = destination.split("@", 1)[0]
        if result.present and not result.manifests:
            click.echo(f"Already present: {where} is {result.digest}")
            return
        extra = f", attachments: {', '.join(result.attachments)}" if result.attachments else ""
        click.echo(
            f"Copied {source} -> {where}@{result.digest} ({result.manifests} manifests; blobs: {s.blobs_copied} copied "
            f"({_mib(s.bytes_copied)}), {s.blobs_mounted} mounted, {s.blobs_present} already present{extra})"
        )
