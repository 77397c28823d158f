"""A read-only HTML view of the trust data under ``/_trustbox/`` (server-rendered, no JavaScript).

* ``/_trustbox/`` — every repository with its earliest expiry (needs ``registry:catalog:*``
  when auth is on, like the global changefeed);
* ``/_trustbox/repo/<gun>`` — one repository (needs ``pull`` on it): each role's version, expiry
  (red once expired, amber within the warning window), threshold, keys and signers, the
  delegations with their paths, and the signed tags with digests; when a registry URL is
  configured, the registry's tags and digests beside them (signed, unsigned, digest mismatch).

Every value is HTML-escaped; bad input (unknown repository, a GUN trustbox would refuse, a path
that is not a page) gets a small HTML error page with 400 or 404, never a traceback.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from trustbox.trustserver.inventory import InventoryCache, RepoInfo, RoleInfo, read_repo
from trustbox.trustserver.storage import Storage
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.timefmt import format_time

PREFIX = "/_trustbox/"
REPO_PREFIX = PREFIX + "repo/"
MAX_REGISTRY_TAGS = 500
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))

HtmlResponse = tuple[int, list[tuple[bytes, bytes]], bytes]

HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; "
                                 b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.4rem 0;background:#fff}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}code{font-size:.85rem;word-break:break-all}
.expired{background:#f8d0d0;color:#8b0000;font-weight:bold}
.soon{background:#ffe4a8;color:#7a4a00;font-weight:bold}
.ok{background:#d8f0d8}.managed{background:#e4ecf7}
.unsigned{color:#8b0000}.mismatch{color:#8b0000;font-weight:bold}.signed{color:#1a6b1a}
.note{color:#555}nav a{margin-right:1rem}
"""


def esc(value: object) -> str:
    """``value`` as HTML text (quotes escaped too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> bytes:
    """A complete HTML document."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)} - trustbox</title><style>{CSS}</style></head><body>"
        f"<nav><a href=\"{PREFIX}\">All repositories</a></nav>{body}</body></html>\n"
    ).encode()


def error_page(status: int, message: str) -> HtmlResponse:
    """A small HTML error page."""
    reason = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 502: "Bad gateway"}.get(status, "Error")
    body = f"<h1>{status} {esc(reason)}</h1><p class=\"error\">{esc(message)}</p>"
    return status, list(HEADERS), page(f"{status} {reason}", body)


def expiry_class(expires: datetime, now: datetime, warn: timedelta) -> str:
    """``expired``, ``soon`` (within ``warn``) or ``ok``."""
    if expires <= now:
        return "expired"
    if expires - now < warn:
        return "soon"
    return "ok"


def _expiry_cell(expires: datetime, now: datetime, warn: timedelta) -> str:
    cls = expiry_class(expires, now, warn)
    left = expires - now
    if cls == "expired":
        note = "expired"
    else:
        note = f"in {left.days} days" if left.days >= 1 else f"in {int(left.total_seconds() // 3600)} hours"
    return f'<td class="{cls}" data-expiry="{cls}">{esc(format_time(expires))} ({esc(note)})</td>'


@dataclass
class RegistryView:
    """The registry's tags of a repository (``error``: why they could not be read)."""

    tags: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    truncated: bool = False


def registry_name(gun: str, registry_url: str) -> str:
    """The registry repository a GUN names: the GUN without the registry's host, when it starts with it."""
    host = urlsplit(registry_url).netloc
    for prefix in (host + "/", "docker.io/", "localhost/"):
        if host and gun.startswith(prefix):
            return gun[len(prefix):]
    return gun


def fetch_registry_tags(
    registry_url: str, repo: str, authorization: str | None, timeout: float = 5.0, verify: bool | str = True
) -> RegistryView:
    """Tags and manifest digests of ``repo`` on the registry (never raises: errors go to ``error``)."""
    import httpx  # only a server configured with a registry (--ui-registry-url) loads the HTTP client

    headers = {"Accept": "application/json"}
    if authorization and authorization.lower().startswith("basic "):
        headers["Authorization"] = authorization
    base = registry_url.rstrip("/")
    view = RegistryView()
    try:
        with httpx.Client(timeout=timeout, verify=verify, headers=headers) as client:
            r = client.get(f"{base}/v2/{quote(repo)}/tags/list", params={"n": str(MAX_REGISTRY_TAGS)})
            if r.status_code == 404:
                view.error = "the registry has no such repository"
                return view
            if r.status_code != 200:
                view.error = f"the registry answered {r.status_code} to the tag list"
                return view
            tags = (r.json() or {}).get("tags") or []
            if not isinstance(tags, list):
                view.error = "the registry sent a malformed tag list"
                return view
            view.truncated = len(tags) >= MAX_REGISTRY_TAGS or "link" in r.headers
            for tag in tags[:MAX_REGISTRY_TAGS]:
                if not isinstance(tag, str):
                    continue
                h = client.head(f"{base}/v2/{quote(repo)}/manifests/{quote(tag, safe='')}",
                                headers={"Accept": MANIFEST_ACCEPT})
                view.tags[tag] = h.headers.get("docker-content-digest", "") if h.status_code == 200 else ""
    except (httpx.HTTPError, ValueError) as exc:
        view.error = f"registry unreachable: {type(exc).__name__}"
    return view


class WebPage:
    """Renders the pages; methods run in a worker thread (they read the database and the registry)."""

    def __init__(
        self,
        storage: Storage,
        inventory: InventoryCache,
        clock: Callable[[], datetime],
        *,
        warn_days: float = 30.0,
        registry_url: str | None = None,
        registry_ca: str | None = None,
        gun_problem: Callable[[str], str | None] = lambda gun: None,
        server_key: Callable[[str, str], PublicKey | None] = lambda gun, role: None,
    ) -> None:
        self.gun_problem = gun_problem
        self.server_key = server_key
        self.storage = storage
        self.inventory = inventory
        self.clock = clock
        self.warn = timedelta(days=warn_days)
        self.registry_url = registry_url
        self.registry_verify: bool | str = registry_ca or True

    def index(self) -> HtmlResponse:
        """The list of repositories."""
        inv = self.inventory.get()
        now = self.clock()
        rows = []
        for repo in inv.repos:
            first = repo.earliest()
            cell = _expiry_cell(first.expires, now, self.warn) if first else "<td></td>"
            role = esc(first.name) if first else ""
            rows.append(
                f'<tr><td><a href="{esc(REPO_PREFIX + quote(repo.gun, safe="/:@+"))}">{esc(repo.gun)}</a></td>'
                f"<td>{len(repo.targets)}</td><td>{role}</td>{cell}</tr>"
            )
        note = '<p class="note">List truncated.</p>' if inv.truncated else ""
        body = (
            f"<h1>Trust data: {len(inv.repos)} repositories</h1>{note}"
            "<table id=\"repositories\"><tr><th>Repository</th><th>Signed targets</th>"
            "<th>First to expire</th><th>Expires</th></tr>" + "".join(rows) + "</table>"
        )
        return 200, list(HEADERS), page("Repositories", body)

    def repository(self, gun: str, authorization: str | None = None) -> HtmlResponse:
        """One repository's page, or a 404 page when nothing is stored for ``gun``."""
        repo = read_repo(self.storage, gun)
        if repo is None:
            return error_page(404, f"no trust data for repository {gun}")
        view = None
        if self.registry_url:
            view = fetch_registry_tags(self.registry_url, registry_name(gun, self.registry_url), authorization,
                                       verify=self.registry_verify)
        return 200, list(HEADERS), page(gun, self._repo_body(repo, view))

    def _managed(self, repo: RepoInfo) -> set[str]:
        """Roles whose listed key is the server's own: the server re-signs them when they near expiry."""
        out = set()
        for role in ("timestamp", "snapshot"):
            info = repo.roles.get(role)
            key = self.server_key(repo.gun, role) if info is not None else None
            if info is not None and key is not None and any(k.keyid == key.keyid for k in info.keys):
                out.add(role)
        return out

    def _role_rows(self, repo: RepoInfo) -> str:
        now = self.clock()
        managed = self._managed(repo)
        order = {"root": 0, "targets": 1, "snapshot": 3, "timestamp": 4}
        rows = []
        roles: list[RoleInfo] = sorted(repo.roles.values(), key=lambda r: (order.get(r.name, 2), r.name))
        for r in roles:
            keys = "<br>".join(f"<code>{esc(k.keyid)}</code> ({esc(k.keytype)})" for k in r.keys)
            signers = "<br>".join(f"<code>{esc(k)}</code>" for k in r.signed_by)
            paths = ", ".join(esc(p) if p else "(all)" for p in r.paths)
            if r.name in managed:
                expiry = (f'<td class="managed" data-expiry="managed">{esc(format_time(r.expires))} '
                          "(server-managed: re-signed by the server when due)</td>")
            else:
                expiry = _expiry_cell(r.expires, now, self.warn)
            rows.append(
                f'<tr data-role="{esc(r.name)}"><td>{esc(r.name)}</td><td>{r.version}</td>'
                f"{expiry}<td>{r.threshold}</td><td>{keys}</td>"
                f"<td>{signers}</td><td>{paths}</td></tr>"
            )
        return "".join(rows)

    def _repo_body(self, repo: RepoInfo, view: RegistryView | None) -> str:
        parts = [f"<h1>{esc(repo.gun)}</h1>"]
        for problem in repo.problems:
            parts.append(f'<p class="expired">Unreadable document: {esc(problem)}</p>')
        parts.append(
            "<h2>Roles and keys</h2><table id=\"roles\"><tr><th>Role</th><th>Version</th><th>Expires</th>"
            "<th>Threshold</th><th>Keys</th><th>Signed by</th><th>Paths</th></tr>"
            + self._role_rows(repo) + "</table>"
        )
        trust: dict[str, list[tuple[str, str]]] = {}
        for t in repo.targets:
            trust.setdefault(t.name, []).append((t.role, t.digest))
        names = sorted(set(trust) | set(view.tags if view else ()))
        header = "<tr><th>Tag</th><th>Signed digest (trust data)</th><th>Signed by role</th>"
        if view is not None:
            header += "<th>Registry digest</th><th>Status</th>"
        rows = []
        for name in names:
            signed = trust.get(name, [])
            digests = "<br>".join(f"<code>{esc(d)}</code>" for _, d in signed)
            roles = "<br>".join(esc(r) for r, _ in signed)
            row = f'<tr data-tag="{esc(name)}"><td>{esc(name)}</td><td>{digests}</td><td>{roles}</td>'
            if view is not None:
                in_registry = name in view.tags
                reg = view.tags.get(name, "")
                if not signed:
                    status, cls = "unsigned", "unsigned"
                elif not in_registry:
                    status, cls = "signed, not in registry", "note"
                elif reg and all(d != reg for _, d in signed):
                    status, cls = "signed digest differs from registry", "mismatch"
                else:
                    status, cls = "signed", "signed"
                row += f'<td><code>{esc(reg)}</code></td><td class="{cls}">{esc(status)}</td>'
            rows.append(row + "</tr>")
        parts.append(f"<h2>Tags</h2><table id=\"tags\">{header}{''.join(rows)}</table>")
        if view is not None and view.error:
            parts.append(f'<p class="note">Registry: {esc(view.error)}</p>')
        elif view is not None and view.truncated:
            parts.append(f'<p class="note">Registry: first {MAX_REGISTRY_TAGS} tags shown.</p>')
        elif view is None:
            parts.append('<p class="note">No registry configured: trust data only.</p>')
        return "".join(parts)


#: longest path accepted under the prefix (longer: 400 without looking further)
MAX_PATH = 1024


def ui_route(pages: WebPage, path: str, authorization: str | None) -> HtmlResponse:
    """Answer a GET of ``path`` (under :data:`PREFIX`) with a page or an HTML error page.

    A GUN is checked with ``pages.gun_problem`` (the server's GUN rules) before any lookup:
    refused names get 400, unknown repositories and paths 404. Never raises for bad input.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database failed (the app answers 500 as for the API).
    """
    if len(path) > MAX_PATH:
        return error_page(400, f"path longer than {MAX_PATH} characters")
    if path in (PREFIX, PREFIX.rstrip("/")):
        return pages.index()
    if path.startswith(REPO_PREFIX):
        gun = path[len(REPO_PREFIX):]
        if gun.endswith("/"):
            gun = gun[:-1]
        if not gun:
            return error_page(404, "no repository named")
        problem = pages.gun_problem(gun)
        if problem is not None:
            return error_page(400, f"not a repository name trustbox accepts: {problem}")
        return pages.repository(gun, authorization)
    return error_page(404, "no such page")
