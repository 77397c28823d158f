"""``trustbox trust ...``: docker trust compatible commands (keys, signers, sign, inspect, revoke)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from trustbox.cli.report import fail, one_line_errors
from trustbox.client.textfmt import go_json_indent
from trustbox.client.trust import verbs as trustops
from trustbox.client.trust.refresh import DEFAULT_WITHIN_DAYS
from trustbox.client.trust.rotation import ROTATABLE
from trustbox.client.trust.status import DEFAULT_WARN_DAYS, STATUS_FAIL, render_text
from trustbox.client.trust.verbs import TrustContext
from trustbox.errors import TrustboxError
from trustbox.tuf.timefmt import parse_time

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


#: pins the time the trust commands verify and sign at (RFC 3339), for tests; see docs/client.md
NOW_ENV = "TRUSTBOX_TRUST_NOW"


def _ctx(click_ctx: click.Context) -> TrustContext:
    obj = click_ctx.find_root().obj
    if isinstance(obj, dict) and isinstance(obj.get("trust_context"), TrustContext):
        injected: TrustContext = obj["trust_context"]  # tests inject a context
        return injected
    cas = [Path(p) for p in (click_ctx.find_object(dict) or {}).get("ca_certs", ())]
    ctx = TrustContext(ca_files=cas)
    pinned = ctx.environ.get(NOW_ENV)
    if pinned:
        ctx.now = parse_time(pinned, NOW_ENV)
    return ctx


@click.group("trust")
@click.option("--ca-cert", "ca_certs", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Extra CA certificate for the trust server (besides $DOCKER_CONFIG/tls/<host:port>/*.crt).")
@click.pass_context
def trust_group(ctx: click.Context, ca_certs: tuple[str, ...]) -> None:
    """Manage trust on images (docker trust compatible)."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {}
    if isinstance(root.obj, dict):
        root.obj["ca_certs"] = ca_certs
    ctx.obj = root.obj


# --- key -----------------------------------------------------------------------------------------


@trust_group.group("key")
def key_group() -> None:
    """Manage keys for signing Docker images."""


@key_group.command("generate")
@click.argument("name")
@click.option("--dir", "directory", type=click.Path(path_type=Path), help="Directory to generate key in, defaults to current directory")
@click.option("--pkcs11", "pkcs11_uri", metavar="PKCS11-URI",
              help="Make (or use) the key on a PKCS#11 token: pkcs11:token=...;object=...")
@click.pass_context
@one_line_errors
def key_generate_cmd(ctx: click.Context, name: str, directory: Path | None, pkcs11_uri: str | None) -> None:
    """Generate and load a signing key-pair."""
    trustops.key_generate(_ctx(ctx), name, directory, pkcs11_uri)


@key_group.command("load")
@click.argument("keyfile", type=click.Path(path_type=Path))
@click.option("--name", default="signer", show_default=True, help="Name for the loaded key")
@click.pass_context
@one_line_errors
def key_load_cmd(ctx: click.Context, keyfile: Path, name: str) -> None:
    """Load a private key file for signing."""
    trustops.key_load(_ctx(ctx), keyfile, name)


@key_group.command("export-public")
@click.argument("repo")
@click.option("--signer", metavar="NAME", help="The keys of this signer (the targets/NAME delegation)")
@click.option("--role", metavar="ROLE", help="The keys of this role (e.g. targets: the repository key)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the PEM to this file instead of stdout")
@click.pass_context
@one_line_errors
def key_export_public_cmd(ctx: click.Context, repo: str, signer: str | None, role: str | None, output: Path | None) -> None:
    """Print public keys of REPO as PEM (SubjectPublicKeyInfo) from its verified trust data.

    For `cosign verify --key FILE` and a containers-policy `keyPath`. Without --signer/--role:
    the repository key(s), then every signer's.
    """
    pem = trustops.export_public(_ctx(ctx), repo, signer, role)
    if output is not None:
        output.write_bytes(pem)
    else:
        click.echo(pem.decode("ascii"), nl=False)


@key_group.command("list")
@click.pass_context
@one_line_errors
def key_list_cmd(ctx: click.Context) -> None:
    """List the private keys in the trust directory (ID, role, GUN)."""
    t = _ctx(ctx)
    rows = [["ID", "ROLE", "GUN"]] + [[k.keyid, k.role, k.gun or ""] for k in trustops.key_list(t)]
    from trustbox.client.textfmt import tab_table

    t.out.write(tab_table(rows))


# --- signer --------------------------------------------------------------------------------------


@trust_group.group("signer")
def signer_group() -> None:
    """Manage entities who can sign Docker images."""


@signer_group.command("add")
@click.option("--key", "keys", multiple=True, type=click.Path(path_type=Path), help="Path to the signer's public key file")
@click.argument("name")
@click.argument("repos", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def signer_add_cmd(ctx: click.Context, keys: tuple[Path, ...], name: str, repos: tuple[str, ...]) -> None:
    """Add a signer."""
    trustops.signer_add(_ctx(ctx), name, repos, keys)


@signer_group.command("remove")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation before removing the most recent signer")
@click.argument("name")
@click.argument("repos", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def signer_remove_cmd(ctx: click.Context, force: bool, name: str, repos: tuple[str, ...]) -> None:
    """Remove a signer."""
    trustops.signer_remove(_ctx(ctx), name, repos, force)


# --- sign / inspect / revoke ---------------------------------------------------------------------


_SIGSTORE_HELP = ("Also write (--sigstore, the default) or skip (--no-sigstore) the sigstore attachment signature "
                  "in the registry; default from TRUSTBOX_SIGSTORE (on unless 0/false/no/off)")


@trust_group.command("sign")
@click.option("--local", is_flag=True, help="Sign the manifest the registry holds now, even if the tag is already signed")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Registry that may be reached over plain HTTP (loopback registries always may)")
@click.option("--sigstore/--no-sigstore", default=None, help=_SIGSTORE_HELP)
@click.argument("image")
@click.pass_context
@one_line_errors
def sign_cmd(ctx: click.Context, local: bool, insecure: tuple[str, ...], sigstore: bool | None, image: str) -> None:
    """Sign an image (the tag's manifest is read from the registry).

    With the same key, a sigstore attachment (tag sha256-<hex>.sig, for cosign, skopeo and podman)
    is written beside the image, and beside each platform manifest of a multi-arch index.
    """
    t = _ctx(ctx)
    t.insecure_registries = list(t.insecure_registries) + list(insecure)
    if sigstore is not None:
        t.sigstore = sigstore
    trustops.sign(t, image, local)


@trust_group.command("attach")
@click.option("--all-tags", is_flag=True, help="Every signed tag of REPO")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Registry that may be reached over plain HTTP (loopback registries always may)")
@click.argument("image", metavar="REPO[:TAG]")
@click.pass_context
@one_line_errors
def attach_cmd(ctx: click.Context, all_tags: bool, insecure: tuple[str, ...], image: str) -> None:
    """Write sigstore attachments for tags already signed in the trust data.

    Uses every local private key of the roles that signed each tag; tags that cannot be attached
    (no local key, registry refusal) are listed on stderr and the exit code is 1.
    """
    t = _ctx(ctx)
    t.insecure_registries = list(t.insecure_registries) + list(insecure)
    trustops.attach(t, image, all_tags)


@trust_group.command("inspect")
@click.option("--pretty", is_flag=True, help="Print the information in a human friendly format")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
@one_line_errors
def inspect_cmd(ctx: click.Context, pretty: bool, images: tuple[str, ...]) -> None:
    """Return low-level information about keys and signatures."""
    t = _ctx(ctx)
    if pretty:
        for i, image in enumerate(images):
            try:
                t.out.write(trustops.inspect_pretty(t, image))
            except TrustboxError as exc:
                t.out.flush()
                click.echo(exc.message, err=True)
                sys.exit(1)
            if i < len(images) - 1:
                t.out.write("\n\n")
        return
    text, errors = trustops.inspect(t, images)
    t.out.write(text)
    t.out.flush()
    if errors:
        click.echo("\n".join(errors), err=True)
        sys.exit(1)


@trust_group.command("revoke")
@click.option("-y", "--yes", is_flag=True, help="Do not prompt for confirmation")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Registry that may be reached over plain HTTP (loopback registries always may)")
@click.option("--sigstore/--no-sigstore", default=None,
              help="Also remove (the default) or keep the sigstore signatures of the revoking keys")
@click.argument("image")
@click.pass_context
@one_line_errors
def revoke_cmd(ctx: click.Context, yes: bool, insecure: tuple[str, ...], sigstore: bool | None, image: str) -> None:
    """Remove trust for an image (and the revoking keys' sigstore signatures of its digest)."""
    t = _ctx(ctx)
    t.insecure_registries = list(t.insecure_registries) + list(insecure)
    if sigstore is not None:
        t.sigstore = sigstore
    trustops.revoke(t, image, yes)


# --- operations: status, key rotate, refresh -------------------------------------------------------


@trust_group.command("status")
@click.argument("repos", nargs=-1)
@click.option("--server", metavar="URL", help="Trust server (default: docker's rule, $DOCKER_CONTENT_TRUST_SERVER)")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
@click.option("--warn", "warn_days", type=click.FloatRange(min=0), default=DEFAULT_WARN_DAYS, show_default=True,
              metavar="DAYS", help="Warn about anything expiring within DAYS days")
@click.option("--no-registry", is_flag=True, help="Do not list the registry's tags")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Registry that may be reached over plain HTTP (loopback registries always may)")
@click.option("--at", "at", hidden=True, metavar="TIME", help="Judge as of this RFC 3339 time (tests).")
@click.pass_context
@one_line_errors
def status_cmd(ctx: click.Context, repos: tuple[str, ...], server: str | None, as_json: bool, warn_days: float,
               no_registry: bool, insecure: tuple[str, ...], at: str | None) -> None:
    """Show each role's version, expiry and signers, and the signed and unsigned tags.

    Exit status: 0 fine, 1 something expires within the window, 2 expired or broken (also when the
    command itself fails: a bad name or option)."""
    t = _ctx(ctx)
    if server:
        t.trust_server = server
    t.insecure_registries = list(t.insecure_registries) + list(insecure)
    try:
        if at:
            t.now = parse_time(at, "--at")
        reports = trustops.status(t, repos, warn_days, registry=not no_registry)
        if not reports:
            raise TrustboxError("no repository named, and the local keys administer none")
    except TrustboxError as exc:
        fail(exc, STATUS_FAIL)
    if as_json:
        t.out.write(go_json_indent([r.to_json() for r in reports]) + "\n")
    else:
        t.out.write("\n".join(render_text(r) for r in reports))
    t.out.flush()
    code = max(r.exit_code for r in reports)
    if code:
        sys.exit(min(code, STATUS_FAIL))


@key_group.command("rotate")
@click.argument("repo")
@click.argument("role", type=click.Choice(ROTATABLE))
@click.option("-r", "--server-managed", is_flag=True, help="The trust server makes and holds the new key (timestamp, snapshot)")
@click.option("--key", "key_uri", metavar="PKCS11-URI",
              help="Use (or make) the new key on a PKCS#11 token: pkcs11:token=...;object=...")
@click.pass_context
@one_line_errors
def key_rotate_cmd(ctx: click.Context, repo: str, role: str, server_managed: bool, key_uri: str | None) -> None:
    """Rotate the key of a base role (notary key rotate)."""
    trustops.key_rotate(_ctx(ctx), repo, role, server_managed, key_uri)


@trust_group.command("refresh")
@click.argument("repos", nargs=-1)
@click.option("--within", "within_days", type=click.FloatRange(min=0), default=DEFAULT_WITHIN_DAYS, show_default=True,
              metavar="DAYS", help="Re-sign roles that expire within DAYS days")
@click.option("--all", "every", is_flag=True, help="Every repository the local keys administer")
@click.pass_context
@one_line_errors
def refresh_cmd(ctx: click.Context, repos: tuple[str, ...], within_days: float, every: bool) -> None:
    """Re-sign, with a new expiry, the roles the local keys can sign that expire soon."""
    trustops.refresh(_ctx(ctx), repos, within_days, every=every)
