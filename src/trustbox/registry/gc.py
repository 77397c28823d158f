"""Garbage collection: delete blobs that no repository references any more.

A blob is kept when any repository links it (``_layers``), holds it as a manifest revision,
or when a stored manifest references it. Blobs younger than ``min_age`` are kept too, so a
push in flight (blob uploaded, manifest not yet) is never broken. Stale upload sessions are
removed as well.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field

from trustbox.oci.digest import Digest
from trustbox.registry.errors import RegistryError
from trustbox.registry.layout import Layout, choose_layout
from trustbox.registry.manifests import validate_pushed
from trustbox.registry.names import parse_digest
from trustbox.registry.sessions import SharedSessions
from trustbox.registry.spool import OwnerIndex, last_activity, session_entries
from trustbox.registry.storage.base import StorageDriver


@dataclass
class GCReport:
    """What a collection found and (unless dry-run) removed."""

    kept: int = 0
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    young: int = 0
    uploads_removed: list[str] = field(default_factory=list)


def mark(driver: StorageDriver, paths: Layout = Layout.TRUSTBOX) -> set[str]:
    """Digests (as strings) reachable from any repository."""
    live: set[str] = set()
    manifests: list[Digest] = []
    for key, _info in driver.walk(paths.repos_prefix):
        if paths.is_tag_pointer(key):
            raw = driver.read(key)
            if raw:
                try:
                    live.add(str(parse_digest(raw.decode())))
                except (RegistryError, UnicodeDecodeError):
                    pass
        elif "/_layers/" in key or "/_manifests/" in key:
            # _layers links, revision links, and (registry:2) the revisions a tag ever named
            d = paths.link_digest(key)
            if d is not None:
                live.add(str(d))
                if "/_manifests/revisions/" in key:
                    manifests.append(d)
    for d in manifests:
        body = driver.read(paths.blob_key(d))
        if body is None:
            continue
        try:
            parsed = validate_pushed(body, None)
        except (RegistryError, json.JSONDecodeError):
            continue
        for desc in [*parsed.blobs(), *parsed.manifests]:
            live.add(desc.digest)
    return live


def _stale_registry2_uploads(driver: StorageDriver, paths: Layout, now: float, max_age: float) -> list[str]:
    """Prefixes of registry:2's upload folders whose newest object is older than ``max_age``."""
    newest: dict[str, float] = {}
    for key, info in driver.walk(paths.repos_prefix):
        head, sep, tail = key.partition("/_uploads/")
        if sep and "/" in tail:
            prefix = f"{head}/_uploads/{tail.split('/', 1)[0]}"
            newest[prefix] = max(newest.get(prefix, 0.0), info.mtime)
    return sorted(p for p, mtime in newest.items() if now - mtime > max_age)


def collect(driver: StorageDriver, *, dry_run: bool = False, min_age: float = 3600.0,
            upload_max_age: float = 86400.0, paths: Layout | None = None) -> GCReport:
    """Mark, then sweep unreferenced blobs older than ``min_age`` seconds (``paths``: the
    layout, by default the one the storage holds)."""
    if paths is None:
        paths = choose_layout(driver, "auto")
    report = GCReport()
    live = mark(driver, paths)
    now = time.time()
    for key, info in list(driver.walk(paths.blobs_prefix)):
        d = paths.blob_digest(key)
        if d is None:
            continue
        ref = str(d)
        if ref in live:
            report.kept += 1
            continue
        if now - info.mtime < min_age:
            report.young += 1
            continue
        report.removed.append(ref)
        report.removed_bytes += info.size
        if not dry_run:
            driver.delete(key)
    spool = driver.spool_dir
    for entry in session_entries(spool):
        mtime = last_activity(entry)
        if mtime is not None and now - mtime > upload_max_age:
            report.uploads_removed.append(entry.name)
            if not dry_run:
                shutil.rmtree(entry, ignore_errors=True)
    if not dry_run:
        index = OwnerIndex(spool)
        for key, upload_id in index.orphans(spool):
            index.remove(key, upload_id)
    if paths.is_registry2:  # uploads registry:2 left in flight: repositories/<name>/_uploads/<uuid>/...
        for prefix in _stale_registry2_uploads(driver, paths, now, upload_max_age):
            report.uploads_removed.append(prefix.rsplit("/", 1)[-1])
            if not dry_run:
                driver.delete_tree(prefix)
    if not driver.cheap_io:  # sessions shared by replicas through remote storage
        shared = SharedSessions(driver)
        for upload_id in shared.older_than(now, upload_max_age):
            if upload_id not in report.uploads_removed:
                report.uploads_removed.append(upload_id)
            if not dry_run:
                shared.remove(upload_id)
    return report
