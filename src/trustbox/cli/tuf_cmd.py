"""``trustbox tuf ...``: offline tools over notary metadata."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import click

from trustbox.client.trust.archive import TrustArchive
from trustbox.errors import ConfigError, FormatError
from trustbox.tuf.audit import audit
from trustbox.tuf.timefmt import parse_time, utcnow


def _read_dir(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.endswith(".json"):
                p = Path(dirpath) / name
                files[p.relative_to(root).as_posix()] = p.read_bytes()
    return files


@click.group("tuf")
def tuf_group() -> None:
    """Offline tools for TUF / notary metadata."""


@tuf_group.command("verify")
@click.argument("directory", metavar="DIRECTORY|ARCHIVE", type=click.Path(exists=True, path_type=Path))
@click.option("--root", "root_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A trusted root.json to chain from (default: trust the oldest root in DIRECTORY).")
@click.option("--at", "at", metavar="TIME", help="Verify as of this RFC 3339 time (default: now).")
@click.option("--gun", help="The collection name the root certificates must carry (default: their CN).")
def verify_cmd(directory: Path, root_file: Path | None, at: str | None, gun: str | None) -> None:
    """Verify a folder of notary metadata (as served under _trust/tuf/) or a trust archive
    (``trustbox trust export``)."""
    try:
        now: datetime = parse_time(at, "--at") if at else utcnow()
    except FormatError as exc:
        raise ConfigError(str(exc)) from exc
    if directory.is_dir():
        files = _read_dir(directory)
    else:
        archive = TrustArchive.read(directory)
        files, gun = archive.files, gun or archive.gun
    if not files:
        raise ConfigError(f"no .json metadata files under {directory}")
    report = audit(files, now, root_file.read_bytes() if root_file else None, gun)
    click.echo(f"GUN {report.gun}  (verified at {now.isoformat()})")
    width = max((len(e.path) for e in report.entries), default=10)
    for e in report.entries:
        status = "ok" if e.ok else "FAILED"
        version = str(e.version) if e.version is not None else "-"
        line = f"{e.path:<{width}}  {e.role:<18} v{version:<4} expires {e.expires or '-':<32} signers {','.join(e.signers) or '-':<28} {status}"
        if not e.ok:
            line += f": {e.message}"
        click.echo(line)
    if not report.ok:
        bad = [e for e in report.entries if not e.ok]
        raise click.ClickException(f"{len(bad)} of {len(report.entries)} files failed verification")
    click.echo(f"all {len(report.entries)} files verified")
