"""``trustbox trust migrate``: export + copy + import for many repositories, resumable, with a
summary table (issue 16, see docs/migrate.md)."""

from __future__ import annotations

from pathlib import Path

import click

from trustbox.cli.image_cmd import LiveReporter
from trustbox.cli.report import one_line_errors
from trustbox.cli.trust_cmd import trust_group
from trustbox.client.images.copy import DEFAULT_JOBS
from trustbox.client.images.distribution import RegistryOptions
from trustbox.client.images.migrate import (
    FAILED,
    MigrateOptions,
    RepoOutcome,
    migrate_repositories,
    read_repo_list,
)
from trustbox.errors import ConfigError

_STYLE = {"moved": "green", "skipped": "cyan", "would move": "yellow", "failed": "red"}


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n else "-"


def _summary(outcomes: list[RepoOutcome], dry_run: bool) -> None:
    """The summary table on stdout (rich; plain columns when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Migration" + (" (dry run)" if dry_run else ""), title_justify="left")
    for col in ("repository", "destination", "result", "images", "copied", "present", "data", "trust", "why"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        style = _STYLE.get(o.status, "")
        table.add_row(o.repo, o.destination if o.destination != o.repo else "(same)", f"[{style}]{o.status}[/]",
                      str(o.images), str(o.images_copied), str(o.images_present), _mib(o.bytes_copied),
                      o.trust or "-", o.reason or "-")
    console = Console(width=200) if not click.get_text_stream("stdout").isatty() else Console()
    console.print(table)
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("moved", "skipped", "would move", "failed")}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do")


@trust_group.command("migrate")
@click.argument("repos", metavar="REPO...", nargs=-1)
@click.option("--file", "repo_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="File listing repositories, one per line (# comments).")
@click.option("--from-server", metavar="URL", help="Source trust server.")
@click.option("--to-server", metavar="URL", required=True, help="Destination trust server.")
@click.option("--from-registry", metavar="HOST[:PORT]",
              help="Registry to read images from (default: each repository's own registry).")
@click.option("--to-registry", metavar="HOST[:PORT]",
              help="Registry to copy images to; the repositories are renamed to it (default: no copy, same names).")
@click.option("--from-cache", is_flag=True, help="Export from the local trust cache instead of --from-server.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("trustbox-migrate.json"), show_default=True,
              help="State file recording what is done (archives are kept in <state>.archives/).")
@click.option("--dry-run", is_flag=True, help="Export and compare with the destination; change nothing.")
@click.option("-j", "--jobs", type=click.IntRange(1, 32), default=DEFAULT_JOBS, show_default=True,
              help="Blobs copied at the same time.")
@click.option("--no-attachments", is_flag=True, help="Do not copy cosign attachments and referrers.")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Allow plain HTTP / unverified TLS for this registry; repeatable.")
@click.option("--registry-ca-cert", "registry_cas", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extra CA certificate (PEM) for the registries; repeatable.")
@click.option("--trust-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Trust folder (root keys, cache; default: $DOCKER_CONFIG/trust).")
@click.option("--root-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The repositories' root private key file (default: looked up in the trust folder).")
@click.option("--new-root", is_flag=True,
              help="Without the old root key: a new root key per repository (every consumer must re-pin).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the summary.")
@click.pass_context
@one_line_errors
def migrate_cmd(
    ctx: click.Context, repos: tuple[str, ...], repo_file: Path | None, from_server: str | None, to_server: str,
    from_registry: str | None, to_registry: str | None, from_cache: bool, state_file: Path, dry_run: bool,
    jobs: int, no_attachments: bool, insecure: tuple[str, ...], registry_cas: tuple[Path, ...],
    trust_dir: Path | None, root_key: Path | None, new_root: bool, quiet: bool,
) -> None:
    """Move repositories to another trust server (and registry): for each REPO, export its trust
    data, copy every signed image (digests unchanged) and import the trust data so that clients
    that pinned it keep working. Resumable: a second run skips what is done (checked at the
    destination). Exit status 1 when any repository failed.
    """
    names = list(repos) + (read_repo_list(repo_file) if repo_file else [])
    if not names:
        raise ConfigError("name at least one repository (REPO... or --file LIST)")
    registry = RegistryOptions.from_env(insecure, registry_cas)
    cas = tuple(Path(p) for p in (ctx.find_object(dict) or {}).get("ca_certs", ()))
    options = MigrateOptions(
        to_server=to_server, from_server=from_server, from_registry=from_registry, to_registry=to_registry,
        from_cache=from_cache, state_file=state_file, dry_run=dry_run, jobs=jobs, attachments=not no_attachments,
        source_registry=registry, destination_registry=registry, trust_dir=trust_dir, ca_files=cas,
        root_key=root_key, new_root=new_root,
    )
    with LiveReporter(quiet) as reporter:
        outcomes = migrate_repositories(names, options, reporter)
    _summary(outcomes, dry_run)
    if any(o.status == FAILED for o in outcomes):
        ctx.exit(1)
