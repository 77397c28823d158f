"""``trustbox registry ...``: maintenance commands for the registry's storage."""

from __future__ import annotations

import os
from pathlib import Path

import click

from trustbox.registry.config import load_config


@click.group("registry")
def registry_group() -> None:
    """Registry storage maintenance."""


@registry_group.command("gc")
@click.option("--storage", envvar="TRUSTBOX_STORAGE", help="Directory, or s3://BUCKET/PREFIX.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True), help="Registry config file (trustbox's TOML/JSON, or registry:2's config.yml).")
@click.option("--s3-endpoint-url", envvar="TRUSTBOX_S3_ENDPOINT_URL", help="S3 endpoint (MinIO, moto...).")
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--min-age", type=float, default=3600.0, show_default=True,
              help="Keep unreferenced blobs younger than this many seconds (pushes in flight).")
@click.option("--upload-max-age", type=float, default=86400.0, show_default=True,
              help="Remove upload sessions idle for longer than this many seconds.")
def gc(storage: str | None, config_file: str | None, s3_endpoint_url: str | None, dry_run: bool,
       min_age: float, upload_max_age: float) -> None:
    """Delete blobs no repository references (safe while the registry runs, given --min-age)."""
    from trustbox.registry.gc import collect
    from trustbox.registry.layout import choose_layout

    config = load_config(Path(config_file) if config_file else None,
                         {"storage": storage, "s3_endpoint_url": s3_endpoint_url}, dict(os.environ))
    driver = config.open_driver()
    report = collect(driver, dry_run=dry_run, min_age=min_age, upload_max_age=upload_max_age,
                     paths=choose_layout(driver, config.layout))
    verb = "would remove" if dry_run else "removed"
    for ref in report.removed:
        click.echo(f"{verb} blob {ref}")
    for up in report.uploads_removed:
        click.echo(f"{verb} upload {up}")
    click.echo(
        f"{len(report.removed)} blobs {verb} ({report.removed_bytes} bytes), {report.kept} kept, "
        f"{report.young} too young to collect, {len(report.uploads_removed)} stale uploads {verb}"
    )
