"""``trustbox trust status``: the health of a repository's trust data at a glance.

Per repository: each role's version, expiry, keys, threshold, the keys whose signatures verify and
the keys held locally (root, targets, every delegation, snapshot, timestamp); the newest change the
trust server recorded (its changefeed); the registry's tags, signed and unsigned. Warnings for
anything expiring within the window, errors for anything expired or broken. The timestamp is
short-lived by design (notary-server gives it 14 days and signs a new one when it lapses), so
only an expired timestamp is reported.

The data is verified by the usual update (:meth:`TrustClient.update`). Only when that fails because
something expired (or skipped a delegation because it expired) is the update repeated with
``allow_expired`` so the report can say what expired and when; every other rule still decides.

Exit status for CI: :data:`STATUS_OK` 0, :data:`STATUS_WARN` 1 (something expires within the
window, or the registry could not be listed), :data:`STATUS_FAIL` 2 (expired, or not trustworthy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from trustbox.client.trust.repository import TrustClient
from trustbox.errors import ExpiredError, TrustboxError
from trustbox.keystore.store import KeyStore
from trustbox.oci.simplesigning import signed_digest_of_tag
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import ROOT, SNAPSHOT, TARGETS, TIMESTAMP, Metadata, parent_role
from trustbox.tuf.timefmt import format_time
from trustbox.tuf.verify import TrustedCollection, valid_signers

STATUS_OK = 0
STATUS_WARN = 1
STATUS_FAIL = 2
DEFAULT_WARN_DAYS = 30

OK = "ok"
EXPIRING = "expiring"
EXPIRED = "expired"


@dataclass
class RoleStatus:
    """One role of a repository as verified."""

    role: str
    version: int
    expires: datetime
    threshold: int
    #: key IDs the role lists (as in the metadata: certificate IDs for root)
    keys: list[str]
    #: listed key IDs whose signatures on the current document verify
    signed_by: list[str]
    #: listed key IDs whose private key the local key store holds (files or hardware tokens)
    local_keys: list[str]
    state: str = OK

    def days_left(self, now: datetime) -> float:
        """Days until expiry (negative once expired)."""
        return (self.expires - now).total_seconds() / 86400

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The JSON form (``--json``)."""
        return {
            "role": self.role,
            "version": self.version,
            "expires": format_time(self.expires),
            "days_left": round(self.days_left(now), 2),
            "state": self.state,
            "threshold": self.threshold,
            "keys": self.keys,
            "signed_by": self.signed_by,
            "local_keys": self.local_keys,
        }


@dataclass
class TagStatus:
    """A tag signed in the trust data (``targets/releases`` then ``targets``)."""

    tag: str
    digest: str
    signers: list[str]
    in_registry: bool | None = None


@dataclass
class RepoStatus:
    """The report of one repository."""

    repo: str
    gun: str
    server: str
    now: datetime
    warn_days: float
    roles: list[RoleStatus] = field(default_factory=list)
    signed_tags: list[TagStatus] = field(default_factory=list)
    #: tags the registry has but the trust data does not sign (None: the registry was not listed)
    unsigned_tags: list[str] | None = None
    last_change: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 fine, 1 warnings, 2 expired or broken."""
        if self.errors:
            return STATUS_FAIL
        return STATUS_WARN if self.warnings else STATUS_OK

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``--json``)."""
        return {
            "repository": self.repo,
            "gun": self.gun,
            "server": self.server,
            "checked_at": format_time(self.now),
            "warn_days": self.warn_days,
            "status": ["ok", "warning", "error"][self.exit_code],
            "roles": [r.to_json(self.now) for r in self.roles],
            "signed_tags": [
                {"tag": t.tag, "digest": t.digest, "signers": t.signers, "in_registry": t.in_registry}
                for t in self.signed_tags
            ],
            "unsigned_tags": self.unsigned_tags,
            "last_change": self.last_change,
            "warnings": self.warnings,
            "errors": self.errors,
        }


def _local(keystore: KeyStore, keys: dict[str, PublicKey]) -> list[str]:
    out = []
    for kid, pub in sorted(keys.items()):
        try:
            if keystore.canonical_id_for(pub) is not None:
                out.append(kid)
        except TrustboxError:
            continue
    return out


def _role(role: str, md: Metadata[Any], keys: dict[str, PublicKey], threshold: int, keystore: KeyStore) -> RoleStatus:
    return RoleStatus(
        role,
        md.signed.version,
        md.signed.expires,
        threshold,
        sorted(keys),
        sorted(valid_signers(md, keys)),
        _local(keystore, keys),
    )


def role_statuses(tc: TrustedCollection, keystore: KeyStore) -> list[RoleStatus]:
    """Root, targets, every loaded delegation (breadth first), snapshot and timestamp."""
    out = []
    root = tc.root.signed
    keys, threshold = root.role_keys(ROOT)
    out.append(_role(ROOT, tc.root, keys, threshold, keystore))
    if tc.targets is not None:
        keys, threshold = root.role_keys(TARGETS)
        out.append(_role(TARGETS, tc.targets, keys, threshold, keystore))
        queue = list(tc.delegated_roles(TARGETS))
        while queue:
            name = queue.pop(0)
            loaded = tc.delegations.get(name)
            if loaded is None:
                continue
            parent_name = parent_role(name)
            parent = tc.targets if parent_name == TARGETS else tc.delegations[parent_name].metadata
            dkeys, dthreshold = parent.signed.delegations.role_keys(name)
            out.append(_role(name, loaded.metadata, dkeys, dthreshold, keystore))
            queue.extend(tc.delegated_roles(name))
    for role, md in ((SNAPSHOT, tc.snapshot), (TIMESTAMP, tc.timestamp)):
        if md is not None:
            keys, threshold = root.role_keys(role)
            out.append(_role(role, md, keys, threshold, keystore))
    return out


def _judge(status: RepoStatus) -> None:
    window = timedelta(days=status.warn_days)
    for r in status.roles:
        if r.expires <= status.now:
            r.state = EXPIRED
            status.errors.append(f"{status.gun}: {r.role} expired at {format_time(r.expires)} (version {r.version})")
        elif r.expires <= status.now + window and r.role != TIMESTAMP:
            r.state = EXPIRING
            status.warnings.append(
                f"{status.gun}: {r.role} expires in {r.days_left(status.now):.1f} days, at {format_time(r.expires)} "
                f"(version {r.version})"
            )


def _signed_tags(client: TrustClient) -> list[TagStatus]:
    return [TagStatus(t.name, t.digest, list(t.signers)) for t in client.list_signed_targets()]


def _collect(client: TrustClient, status: RepoStatus) -> bool:
    """Verify the trust data into ``status``; False (with the error recorded) if it cannot be read."""
    try:
        client.update()
        expired = any(isinstance(exc, ExpiredError) for exc in client.skipped.values())
    except ExpiredError:
        expired = True
    except TrustboxError as exc:
        status.errors.append(f"{status.gun}: trust data cannot be verified: {exc.message}")
        return False
    if expired:
        try:
            client.update(allow_expired=True)
        except TrustboxError as exc:
            status.errors.append(f"{status.gun}: trust data cannot be verified: {exc.message}")
            return False
    tc = client.collection
    status.roles = role_statuses(tc, client.keystore)
    status.signed_tags = _signed_tags(client)
    for role, reason in client.skipped.items():
        if not isinstance(reason, ExpiredError):
            status.errors.append(f"{status.gun}: delegation {role} is skipped: {reason.message}")
    return True


def repository_status(
    client: TrustClient,
    repo: str,
    *,
    registry_tags: Sequence[str] | None = None,
    registry_error: str | None = None,
    warn_days: float = DEFAULT_WARN_DAYS,
) -> RepoStatus:
    """The report of one repository. ``registry_tags``: the registry's tags (None with
    ``registry_error`` when it could not be listed: a warning). Never raises for the repository's
    own problems: they are the report's errors."""
    status = RepoStatus(repo, client.gun, client.server_url, client.now, warn_days)
    ok = _collect(client, status)
    if ok:
        _judge(status)
        try:
            status.last_change = client.remote.last_change()
        except TrustboxError:
            status.last_change = None
    if registry_tags is not None:
        present = set(registry_tags)
        signed = {t.tag for t in status.signed_tags}
        for t in status.signed_tags:
            t.in_registry = t.tag in present
        # a sigstore attachment tag (sha256-<hex>.sig) holds signatures, it is no image to sign
        status.unsigned_tags = sorted(t for t in present - signed if signed_digest_of_tag(t) is None)
    elif registry_error:
        status.warnings.append(f"{status.gun}: registry tags not listed: {registry_error}")
    return status


def _when(change: dict[str, Any] | None) -> str:
    if not change:
        return "unknown"
    return f"{change.get('CreatedAt', '?')} ({change.get('Category', 'update')}, timestamp version {change.get('Version', '?')})"


def render_text(status: RepoStatus) -> str:
    """The human report of one repository."""
    lines = [f"Repository {status.repo} (trust server {status.server})"]
    if status.roles:
        lines.append("")
        rows = [["ROLE", "VERSION", "EXPIRES", "DAYS", "STATE", "THRESHOLD", "SIGNED BY", "LOCAL KEYS"]]
        for r in status.roles:
            rows.append([
                r.role,
                str(r.version),
                format_time(r.expires.replace(microsecond=0)),
                f"{r.days_left(status.now):.1f}",
                r.state,
                f"{len(r.signed_by)}/{r.threshold} of {len(r.keys)}",
                ", ".join(k[:12] for k in r.signed_by) or "-",
                ", ".join(k[:12] for k in r.local_keys) or "-",
            ])
        lines.append(_table(rows))
        lines.append(f"Last change: {_when(status.last_change)}")
    if status.roles:
        lines.append("")
        if status.signed_tags:
            rows = [["SIGNED TAG", "DIGEST", "SIGNERS", "IN REGISTRY"]]
            for t in status.signed_tags:
                reg = "-" if t.in_registry is None else ("yes" if t.in_registry else "no")
                rows.append([t.tag, t.digest, ", ".join(sorted(t.signers)), reg])
            lines.append(_table(rows))
        else:
            lines.append("No signed tags")
    if status.unsigned_tags is not None:
        lines.append("Unsigned tags in the registry: " + (", ".join(status.unsigned_tags) or "none"))
    for w in status.warnings:
        lines.append(f"Warning: {w}")
    for e in status.errors:
        lines.append(f"Error: {e}")
    return "\n".join(lines) + "\n"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


__all__ = [
    "DEFAULT_WARN_DAYS",
    "EXPIRED",
    "EXPIRING",
    "OK",
    "STATUS_FAIL",
    "STATUS_OK",
    "STATUS_WARN",
    "RepoStatus",
    "RoleStatus",
    "TagStatus",
    "render_text",
    "repository_status",
    "role_statuses",
]
