"""``trustbox trust export`` / ``trustbox trust import``: a repository's trust data as a portable
archive, and its publication on another trust server (issue 16, see docs/migrate.md)."""

from __future__ import annotations

from pathlib import Path

import click

from trustbox.cli.report import one_line_errors
from trustbox.cli.trust_cmd import trust_group
from trustbox.client.trust.archive import TrustArchive
from trustbox.client.trust.export import export_repository
from trustbox.client.trust.importer import RootKeyMissingError, import_archive, repin_instructions


def _ca_files(ctx: click.Context) -> tuple[Path, ...]:
    return tuple(Path(p) for p in (ctx.find_object(dict) or {}).get("ca_certs", ()))


def _warn(msg: str) -> None:
    click.echo(f"Warning: {msg}", err=True)


@trust_group.command("export")
@click.argument("repo")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Archive file to write (default: <last path element of REPO>.trust.tar).")
@click.option("--server", "server", metavar="URL",
              help="Trust server to export from (default: $DOCKER_CONTENT_TRUST_SERVER or the registry's notary).")
@click.option("--from-cache", is_flag=True, help="Build the archive from the local trust cache (no network).")
@click.option("--trust-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Trust folder holding the cache (default: $DOCKER_CONFIG/trust).")
@click.pass_context
@one_line_errors
def export_cmd(ctx: click.Context, repo: str, output: Path | None, server: str | None, from_cache: bool,
               trust_dir: Path | None) -> None:
    """Export the trust data of REPO (every root version, targets, delegations, snapshot, timestamp)."""
    archive = export_repository(repo, server_url=server, trust_dir=trust_dir, from_cache=from_cache,
                                ca_files=_ca_files(ctx), warn=_warn)
    path = output or Path(archive.gun.rsplit("/", 1)[-1] + ".trust.tar")
    archive.write(path)
    roots = sorted(archive.root_versions)
    click.echo(f"exported {archive.gun} from {archive.source} to {path}: root versions "
               f"{roots[0]}..{roots[-1]}, {len(archive.delegations)} delegations")


@trust_group.command("import")
@click.argument("archive_path", metavar="ARCHIVE", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--server", "server", metavar="URL", required=True, help="Trust server to publish to.")
@click.option("--as", "as_repo", metavar="NEW_REPO", help="Publish under another repository name (new registry host).")
@click.option("--root-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The repository's root private key file (default: looked up in the trust folder).")
@click.option("--new-root", is_flag=True,
              help="Without the old root key: a new root key (every consumer must re-pin).")
@click.option("--trust-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Trust folder holding the private keys (default: $DOCKER_CONFIG/trust).")
@click.pass_context
@one_line_errors
def import_cmd(ctx: click.Context, archive_path: Path, server: str, as_repo: str | None, root_key: Path | None,
               new_root: bool, trust_dir: Path | None) -> None:
    """Publish an exported ARCHIVE to a trust server; clients that pinned it keep working."""
    archive = TrustArchive.read(archive_path)
    try:
        result = import_archive(archive, server_url=server, as_gun=as_repo, root_key=root_key, new_root=new_root,
                                trust_dir=trust_dir, ca_files=_ca_files(ctx), progress=lambda m: click.echo(m, err=True))
    except RootKeyMissingError as exc:
        exc.hint = (f"{exc.hint}\n{repin_instructions(as_repo or archive.gun, server)}" if exc.hint else None)
        raise
    if result.already_done:
        click.echo(f"{result.gun} is already imported on {result.server}: nothing to do")
        return
    click.echo(f"imported {result.gun} to {result.server}: root version {result.root_version}, snapshot "
               f"{result.snapshot_version}, timestamp {result.timestamp_version} ({result.updates} updates)")
    if result.new_root:
        click.echo(repin_instructions(result.gun, server))
