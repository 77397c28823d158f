"""The trust server's operations, independent of HTTP: read documents (re-signing the
timestamp/snapshot when due), apply updates, manage server keys, delete, list changes.

All methods are synchronous (database and CPU work); the ASGI layer runs them in threads.
Errors are :class:`~trustbox.trustserver.errors.ServerError` with upstream's codes.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from trustbox.errcode import (
    INVALID_ROLE,
    INVALID_UPDATE,
    MALFORMED_JSON,
    MALFORMED_UPLOAD,
    NO_FILENAME,
    VERSION,
)
from trustbox.errors import FormatError, TrustboxError
from trustbox.trustserver import changefeed
from trustbox.trustserver.config import ServerConfig
from trustbox.trustserver.errors import (
    EMPTY,
    TOO_LARGE,
    DocumentTooLarge,
    ServerError,
    ValidationFailure,
    VersionConflict,
)
from trustbox.trustserver.generate import CannotSign, can_sign, make_snapshot, make_timestamp
from trustbox.trustserver.signer import Signer
from trustbox.trustserver.storage import Storage, StoredFile, Update, WriteResult
from trustbox.trustserver.upload import UploadPart
from trustbox.trustserver.validation import Part, UnclassifiedFailure, validate_update
from trustbox.tuf.canonical import loads_document
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import (
    ROOT,
    SNAPSHOT,
    TIMESTAMP,
    Metadata,
    Root,
    Snapshot,
    Timestamp,
    is_valid_role,
)
from trustbox.tuf.timefmt import parse_time, utcnow

log = logging.getLogger("trustbox.trustserver")

#: re-sign a timestamp (or server-held snapshot) this long before it expires
RESIGN_MARGIN = timedelta(hours=1)
#: how often to look again at a document that is due but could not be re-signed
RETRY_RESIGN = 60.0
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Document:
    """A document to serve: bytes, storage time, and until when it may be served from cache."""

    data: bytes
    created_ns: int
    stale_at: float = math.inf


class ResignNeeded(Exception):
    """A read that was not allowed to write found the timestamp or snapshot due for re-signing."""


def _check_signed_meta(value: Any) -> int:
    """Upstream decodes each part into ``SignedMeta``; type errors there are MALFORMED_JSON.

    Returns the declared version (0 when absent, as Go's zero value).
    """
    if not isinstance(value, dict):
        raise ValueError("not an object")
    signed = value.get("signed")
    version = 0
    if signed is not None:
        if not isinstance(signed, dict):
            raise ValueError("signed is not an object")
        t = signed.get("_type")
        if t is not None and not isinstance(t, str):
            raise ValueError("_type is not a string")
        v = signed.get("version")
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError("version is not an integer")
            if not 0 <= v <= MAX_VERSION:
                raise ValueError("version out of range")
            version = v
        e = signed.get("expires")
        if e is not None:
            parse_time(e)
    sigs = value.get("signatures")
    if sigs is not None:
        if not isinstance(sigs, list):
            raise ValueError("signatures is not a list")
        for s in sigs:
            if not isinstance(s, dict):
                raise ValueError("signature is not an object")
            for field in ("keyid", "method", "sig"):
                if s.get(field) is not None and not isinstance(s[field], str):
                    raise ValueError(f"signature {field} is not a string")
            if isinstance(s.get("sig"), str):
                base64.b64decode(s["sig"], validate=True)
    return version


def parse_parts(uploads: list[UploadPart]) -> dict[str, Part]:
    """Step 1 of an update: role names and JSON of every part (upstream's order of checks)."""
    parts: dict[str, Part] = {}
    for up in uploads:
        role = up.filename[:-5] if up.filename.endswith(".json") else up.filename
        if role == "":
            raise ServerError(NO_FILENAME)
        if not is_valid_role(role):
            raise ServerError(INVALID_ROLE, role)
        try:
            value, canonical = loads_document(up.data)
            version = _check_signed_meta(value)
        except (FormatError, ValueError, binascii.Error) as exc:
            raise ServerError(MALFORMED_JSON) from exc
        parts[role] = Part(role, up.data, version, value, canonical)
    return parts


def check_update_limits(parts: dict[str, Part], max_targets: int, max_delegations: int) -> None:
    """Refuse an update whose documents list more targets or delegated roles than allowed (400)."""
    targets = delegations = 0
    for part in parts.values():
        signed = part.value.get("signed") if isinstance(part.value, dict) else None
        if not isinstance(signed, dict):
            continue
        t = signed.get("targets")
        if isinstance(t, dict):
            targets += len(t)
        d = signed.get("delegations")
        if isinstance(d, dict) and isinstance(d.get("roles"), list):
            delegations += len(d["roles"])
    if targets > max_targets:
        raise ServerError(
            MALFORMED_UPLOAD,
            f"update lists {targets} targets, more than the {max_targets} allowed (raise --max-targets-per-update)",
        )
    if delegations > max_delegations:
        raise ServerError(
            MALFORMED_UPLOAD,
            f"update lists {delegations} delegated roles, more than the {max_delegations} allowed"
            " (raise --max-delegations-per-update)",
        )


class TrustService:
    """Business logic of the trust server over one storage and one signer."""

    def __init__(
        self,
        config: ServerConfig,
        storage: Storage,
        signer: Signer,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.storage = storage
        self.signer = signer
        self.clock = clock

    # -- reads ---------------------------------------------------------------------------

    def get_document(
        self,
        gun: str,
        role: str,
        checksum: str | None = None,
        version: int | None = None,
        may_resign: bool = True,
    ) -> Document | None:
        """The document a GET names, or None (404).

        With ``may_resign=False`` nothing is written: when the current timestamp or snapshot is due
        for re-signing, :class:`ResignNeeded` is raised instead (call again with ``may_resign=True``).
        """
        if checksum is not None:
            if len(checksum) != 64:
                return None  # only SHA-256 checksums are indexed (as upstream)
            f = self.storage.get_checksum(gun, role, checksum)
        elif version is not None:
            if not 0 <= version <= MAX_VERSION:
                return None
            f = self.storage.get_version(gun, role, version)
        elif role in (TIMESTAMP, SNAPSHOT):
            return self._current_server_signed(gun, role, may_resign=may_resign)
        else:
            f = self.storage.get_current(gun, role)
        return Document(f.data, f.created_ns) if f is not None else None

    def _current_server_signed(
        self, gun: str, role: str, retry: bool = True, may_resign: bool = True
    ) -> Document | None:
        ts_file = self.storage.get_current(gun, TIMESTAMP)
        if ts_file is None:
            return None
        fresh = self._fresh_server_signed(gun, role, ts_file)
        if fresh is not None:
            return fresh
        try:
            ts = Metadata.parse(ts_file.data, TIMESTAMP, expect=Timestamp).signed
            snap_hash = ts.snapshot_meta.hashes["sha256"].hex()
        except (TrustboxError, KeyError):
            log.error("stored timestamp of %s does not parse", gun)
            return Document(ts_file.data, ts_file.created_ns) if role == TIMESTAMP else None
        snap_file = self.storage.get_checksum(gun, SNAPSHOT, snap_hash)
        if snap_file is None:
            return None
        try:
            snap = Metadata.parse(snap_file.data, SNAPSHOT, expect=Snapshot).signed
        except TrustboxError:
            log.error("stored snapshot of %s does not parse", gun)
            return None
        now = self.clock()
        ts_due = ts.expires - RESIGN_MARGIN
        snap_due = snap.expires - RESIGN_MARGIN
        if now < ts_due and now < snap_due:
            chosen = ts_file if role == TIMESTAMP else snap_file
            return Document(chosen.data, chosen.created_ns, min(ts_due, snap_due).timestamp())
        if not may_resign:
            raise ResignNeeded()
        # something is due: re-sign what the server can
        retry_at = now.timestamp() + RETRY_RESIGN
        try:
            root_file = self.storage.get_current(gun, ROOT)
            if root_file is None:
                raise CannotSign("no root")
            root = Metadata.parse(root_file.data, ROOT, expect=Root).signed
            updates: list[Update] = []
            snapshot_bytes = snap_file.data
            if now >= snap_due and can_sign(self.signer, gun, root, SNAPSHOT):
                latest_snap = self.storage.get_current(gun, SNAPSHOT)
                prev_snap = snap
                if latest_snap is not None and latest_snap.version > snap.version:
                    prev_snap = Metadata.parse(latest_snap.data, SNAPSHOT, expect=Snapshot).signed
                v, snapshot_bytes = make_snapshot(gun, root, prev_snap, {}, self.signer, now)
                updates.append(Update(SNAPSHOT, v, snapshot_bytes))
            if updates or now >= ts_due:
                v, ts_bytes = make_timestamp(gun, root, ts, snapshot_bytes, self.signer, now)
                updates.append(Update(TIMESTAMP, v, ts_bytes))
            else:
                raise CannotSign("snapshot due but its key is not held")
            result = self.storage.update_many(gun, updates)
        except VersionConflict:
            if retry:  # another process re-signed (or updated) first: serve what it stored
                return self._current_server_signed(gun, role, retry=False)
            return Document(ts_file.data, ts_file.created_ns, retry_at)
        except (CannotSign, TrustboxError) as exc:
            log.warning("cannot re-sign %s of %s: %s", role, gun, exc)
            chosen = ts_file if role == TIMESTAMP else snap_file
            return Document(chosen.data, chosen.created_ns, retry_at)
        new = {u.role: u.data for u in updates}
        if role == TIMESTAMP:
            return Document(new[TIMESTAMP], result.created_ns, 0.0)
        if SNAPSHOT in new:
            return Document(new[SNAPSHOT], result.created_ns, 0.0)
        return Document(snap_file.data, snap_file.created_ns, 0.0)

    def _fresh_server_signed(self, gun: str, role: str, ts_file: StoredFile) -> Document | None:
        """The common case of :meth:`_current_server_signed` without building typed metadata.

        Stored timestamps and snapshots were validated (or made) when written: reading the two
        expiry times and the snapshot hash from the JSON is enough to see that nothing is due.
        Returns None whenever anything is unusual or due; the caller then takes the full path.
        """
        try:
            ts_signed = json.loads(ts_file.data)["signed"]
            snap_hash = base64.b64decode(ts_signed["meta"][SNAPSHOT]["hashes"]["sha256"], validate=True).hex()
            ts_expires = parse_time(ts_signed["expires"])
            snap_file = self.storage.get_listed_snapshot(gun, snap_hash) if len(snap_hash) == 64 else None
            if snap_file is None:
                return None
            snap_expires = parse_time(json.loads(snap_file.data)["signed"]["expires"])
        except (ValueError, TypeError, KeyError, binascii.Error, FormatError):
            return None
        now = self.clock()
        stale_at = min(ts_expires, snap_expires) - RESIGN_MARGIN
        if now >= stale_at:
            return None
        chosen = ts_file if role == TIMESTAMP else snap_file
        return Document(chosen.data, chosen.created_ns, stale_at.timestamp())

    # -- updates -------------------------------------------------------------------------

    def update(self, gun: str, uploads: list[UploadPart]) -> WriteResult:
        """Validate and store an update atomically."""
        parts = parse_parts(uploads)
        check_update_limits(parts, self.config.max_targets_per_update, self.config.max_delegations_per_update)
        try:
            updates = validate_update(gun, parts, self.storage.get_current, self.signer, self.clock())
        except ValidationFailure as exc:
            raise exc.to_server_error() from exc
        except UnclassifiedFailure as exc:
            log.info("update of %s rejected: %s", gun, exc)
            raise ServerError(INVALID_UPDATE) from exc
        try:
            return self.storage.update_many(gun, updates)
        except VersionConflict as exc:
            raise ServerError(VERSION, EMPTY) from exc
        except DocumentTooLarge as exc:
            raise ServerError(TOO_LARGE, exc.message) from exc

    def delete(self, gun: str) -> WriteResult:
        """Delete every document of ``gun``."""
        return self.storage.delete(gun)

    # -- keys ----------------------------------------------------------------------------

    def get_key(self, gun: str, role: str) -> PublicKey:
        """The server's key for ``role``: the one root lists if held, else the newest, else a new one."""
        root_file = self.storage.get_current(gun, ROOT)
        if root_file is not None:
            try:
                root = Metadata.parse(root_file.data, ROOT, expect=Root).signed
                keys, _ = root.role_keys(role)
            except TrustboxError:
                keys = {}
            for kid in sorted(keys):
                held = self.signer.public_key(gun, kid)
                if held is not None:
                    return held
        latest = self.signer.latest_key(gun, role)
        if latest is not None:
            return latest
        return self.signer.create_key(gun, role, self.config.key_algorithm)

    def rotate_key(self, gun: str, role: str) -> PublicKey:
        """A new server key for ``role`` (metadata is untouched)."""
        return self.signer.create_key(gun, role, self.config.key_algorithm)

    # -- changefeed ----------------------------------------------------------------------

    def changes(self, query_string: bytes, gun: str | None) -> bytes:
        """The changefeed JSON for the query."""
        change_id, records = changefeed.parse_params(query_string)
        changes = self.storage.get_changes(change_id, records, gun)
        empty_as_null = False
        if not changes:
            # upstream answers null when no change at all exists in that direction, [] otherwise
            last = self.storage.last_change_id()
            reversed_ = change_id < 0 or records < 0
            empty_as_null = last == 0 or (not reversed_ and last <= change_id)
        return changefeed.render(changes, empty_as_null)


def key_json(key: PublicKey) -> dict[str, Any]:
    """A public key as Go marshals ``data.TUFKey`` (declaration order, private null)."""
    return {"keytype": key.keytype, "keyval": {"public": base64.b64encode(key.public).decode(), "private": None}}
