"""A pure ASGI middleware that puts docker token auth (or htpasswd Basic auth) in front of an app.

::

    app = AuthMiddleware(app, BearerAuthorizer(verifier, realm, service), notary_required_scopes)

``required_scopes(method, path, query)`` tells what a request needs: ``None`` lets it through
without authentication (health, metrics), ``[]`` needs any authenticated user, otherwise the
listed scopes. An app that parses each request once for both the access check and its handlers
(the registry, :mod:`trustbox.registry.request`) passes ``requirements(scope)`` instead. Refusals are answered exactly as notary-server / registry:2 answer them (401
``UNAUTHORIZED`` with a ``WWW-Authenticate`` challenge, both when no token was sent and when the
token lacks the access). On success the caller's identity is left in ``scope["state"]["auth"]``
(Starlette: ``request.state.auth``), an :class:`AuthInfo`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

from trustbox.auth.access import AccessRules
from trustbox.auth.htpasswd import HtpasswdFile
from trustbox.auth.scopes import (
    ALL,
    CATALOG,
    DELETE,
    JSON_CONTENT_TYPE,
    PULL,
    PUSH,
    Scope,
    basic_challenge,
    bearer_challenge,
    denied_body,
    repository,
    satisfies,
    unauthorized_body,
)
from trustbox.auth.throttle import FailureThrottle, PasswordGate, Throttled
from trustbox.auth.tokens import InvalidTokenError, TokenVerifier
from trustbox.errors import ConfigError

log = logging.getLogger(__name__)

ASGIScope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, Receive, Send], Awaitable[None]]
RequiredScopes = Callable[[str, str, str], Sequence[Scope] | None]
Requirements = Callable[[ASGIScope], Sequence[Scope] | None]

DEFAULT_EXEMPT_PATHS = frozenset({"/_notary_server/health", "/metrics", "/debug/health", "/health"})


@dataclass(frozen=True)
class AuthInfo:
    """Who made an authorised request and what the credentials grant (``None`` user: no auth)."""

    user: str | None
    granted: tuple[Scope, ...] = ()
    method: str = "none"


@dataclass(frozen=True)
class Refusal:
    """A ready-made refusal: status, headers and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class Outcome:
    """The result of an authorisation: ``info`` when allowed, else ``refusal``."""

    info: AuthInfo | None = None
    refusal: Refusal | None = None


class Authorizer(Protocol):
    """Decides whether a request with an ``Authorization`` header may have ``required``."""

    async def authorize(
        self, authorization: str | None, required: Sequence[Scope], client: str | None = None
    ) -> Outcome:
        """Allow (with who) or refuse (with the response to send); ``client``: the peer's address."""
        ...


def _refuse_401(challenge: str, required: Sequence[Scope]) -> Outcome:
    return Outcome(
        refusal=Refusal(
            401,
            (("Content-Type", JSON_CONTENT_TYPE), ("WWW-Authenticate", challenge)),
            unauthorized_body(required),
        )
    )


class NoAuthorizer:
    """Lets every request through."""

    async def authorize(
        self, authorization: str | None, required: Sequence[Scope], client: str | None = None
    ) -> Outcome:
        """Always allowed, anonymously."""
        return Outcome(info=AuthInfo(None, tuple(required), "none"))


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` value, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


class BasicAuthorizer:
    """htpasswd Basic auth like registry:2's ``htpasswd`` controller.

    Any valid user gets every scope unless ``rules`` are given; then a valid user lacking access
    gets 403 ``DENIED``. Failed passwords are throttled per account and per client address
    (``throttle``, default :class:`FailureThrottle`'s limits): 429 ``TOOMANYREQUESTS`` with
    ``Retry-After`` while locked.
    """

    def __init__(
        self, htpasswd: HtpasswdFile, realm: str, rules: AccessRules | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        self.htpasswd = htpasswd
        self.realm = realm
        self.rules = rules
        self.gate = PasswordGate(htpasswd, throttle if throttle is not None else FailureThrottle())

    async def authorize(
        self, authorization: str | None, required: Sequence[Scope], client: str | None = None
    ) -> Outcome:
        """Check the Basic credentials (throttled), then the rules."""
        creds = parse_basic(authorization)
        ok = False
        if creds is not None:
            try:
                ok = await self.gate.check(creds[0], creds[1], client)
            except Throttled as exc:
                log.warning("throttled Basic auth for user %r from %s", creds[0], client)
                headers = (("Content-Type", JSON_CONTENT_TYPE), *exc.headers().items())
                return Outcome(refusal=Refusal(429, headers, exc.body()))
        if creds is None or not ok:
            return _refuse_401(basic_challenge(self.realm), required)
        user = creds[0]
        granted = tuple(required)
        if self.rules is not None:
            granted = tuple(self.rules.grant(user, required))
            if satisfies(granted, required):
                log.info("access denied to %s for %s", user, " ".join(map(str, required)))
                return Outcome(
                    refusal=Refusal(403, (("Content-Type", JSON_CONTENT_TYPE),), denied_body())
                )
        return Outcome(info=AuthInfo(user, granted, "basic"))


class BearerAuthorizer:
    """Docker token auth like distribution's ``token`` access controller."""

    def __init__(self, verifier: TokenVerifier, realm: str, service: str) -> None:
        self.verifier = verifier
        self.realm = realm
        self.service = service

    @classmethod
    def from_options(cls, realm: str, service: str, issuer: str, rootcertbundle: Path | str) -> BearerAuthorizer:
        """Build from the four options notary-server and registry:2 take."""
        return cls(TokenVerifier.from_bundle(rootcertbundle, issuer, service), realm, service)

    async def authorize(
        self, authorization: str | None, required: Sequence[Scope], client: str | None = None
    ) -> Outcome:
        """Verify the bearer token and that its access covers ``required``."""
        parts = (authorization or "").split(" ")
        if len(parts) != 2 or parts[0].lower() != "bearer":
            return _refuse_401(bearer_challenge(self.realm, self.service, required), required)
        try:
            claims = self.verifier.verify(parts[1])
        except InvalidTokenError as exc:
            log.info("refused token: %s", exc.message)
            return _refuse_401(bearer_challenge(self.realm, self.service, required, "invalid_token"), required)
        if satisfies(claims.access, required):
            return _refuse_401(bearer_challenge(self.realm, self.service, required, "insufficient_scope"), required)
        return Outcome(info=AuthInfo(claims.subject, claims.access, "token"))


def _all_scopes(method: str, path: str, query: str = "") -> Sequence[Scope] | None:
    return []


class AuthMiddleware:
    """ASGI middleware: authorise each HTTP request before it reaches ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        authorizer: Authorizer,
        required_scopes: RequiredScopes | None = None,
        *,
        exempt_paths: Iterable[str] = DEFAULT_EXEMPT_PATHS,
        extra_headers: Mapping[str, str] | None = None,
        requirements: Requirements | None = None,
    ) -> None:
        self.app = app
        self.authorizer = authorizer
        self.required_scopes: RequiredScopes = required_scopes or _all_scopes
        self.requirements = requirements
        self.exempt_paths = frozenset(exempt_paths)
        self.extra_headers = tuple((extra_headers or {}).items())

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        """Refuse, or pass the request on with ``state["auth"]`` set."""
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        if self.requirements is not None:
            required = self.requirements(scope)
        else:
            method = scope.get("method", "GET")
            query = scope.get("query_string", b"").decode("latin-1")
            required = self.required_scopes(method, scope["path"], query)
        if required is None:
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                authorization = value.decode("latin-1")
                break
        peer = scope.get("client")
        outcome = await self.authorizer.authorize(authorization, required, peer[0] if peer else None)
        if outcome.refusal is not None:
            await self._send_refusal(scope, receive, send, outcome.refusal)
            return
        scope.setdefault("state", {})["auth"] = outcome.info
        await self.app(scope, receive, send)

    async def _send_refusal(self, scope: ASGIScope, receive: Receive, send: Send, refusal: Refusal) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = [(k.lower().encode("latin-1"), v.encode("utf-8")) for k, v in refusal.headers + self.extra_headers]
        headers.append((b"content-length", str(len(refusal.body)).encode()))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        body = b"" if scope.get("method") == "HEAD" else refusal.body
        await send({"type": "http.response.body", "body": body})


# --- request → scope maps -----------------------------------------------------------------------

_NOTARY_ROLE = r"(?:root|targets(?:/[^/\s]+)*|snapshot|timestamp)"
_NOTARY_GUN = r"(?P<gun>[^*]+)"
_NOTARY_ROUTES: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...] = (
    ("GET", re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/tuf/{_NOTARY_ROLE}\.json$"), (PULL,)),
    (
        "GET",
        re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/tuf/{_NOTARY_ROLE}\.(?:[a-fA-F0-9]{{64}}|[a-fA-F0-9]{{96}}|[a-fA-F0-9]{{128}})\.json$"),
        (PULL,),
    ),
    ("GET", re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/tuf/[1-9]*[0-9]+\.{_NOTARY_ROLE}\.json$"), (PULL,)),
    ("POST", re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/tuf/$"), (PUSH, PULL)),
    ("GET", re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/tuf/(?:timestamp|snapshot)\.key$"), (PUSH, PULL)),
    ("POST", re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/tuf/(?:timestamp|snapshot)\.key$"), (ALL,)),
    ("DELETE", re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/tuf/$"), (ALL,)),
    ("GET", re.compile(rf"^/v2/{_NOTARY_GUN}/_trust/changefeed$"), (PULL,)),
    # the read-only web page of one repository (trustbox.trustserver.webpage)
    ("GET", re.compile(r"^/_trustbox/repo/(?P<gun>[^*]+?)/?$"), (PULL,)),
)
NOTARY_UNAUTHENTICATED = frozenset({"/_notary_server/health", "/metrics"})


def notary_required_scopes(method: str, path: str, query: str = "") -> list[Scope] | None:
    """The scopes notary-server's token auth asks for (notary-protocol.md §1.8).

    Health and metrics need nothing; metadata reads and the per-GUN changefeed need ``pull``;
    updates and GET ``.key`` need ``push,pull``; the web page of one repository
    (``/_trustbox/repo/<gun>``) needs ``pull``; DELETE and POST ``.key`` need ``*``; ``/v2/``,
    the global changefeed and every other path need ``registry:catalog:*``.
    """
    if path in NOTARY_UNAUTHENTICATED:
        return None
    for route_method, pattern, actions in _NOTARY_ROUTES:
        if method == route_method:
            m = pattern.match(path)
            if m is not None:
                return [repository(m.group("gun"), *actions)]
    return [CATALOG]


# Deliberately looser than the registry's name grammar: any repository route needs its scope.
_REGISTRY_NAME = r"(?P<name>[^/]+(?:/[^/]+)*?)"
_REGISTRY_REPO_ROUTE = re.compile(
    rf"^/v2/{_REGISTRY_NAME}/(?:manifests/[^/]+|blobs/uploads/?[^/]*|blobs/[^/]+|tags/list|referrers/[^/]+)$"
)
_REGISTRY_ACTIONS: dict[str, tuple[str, ...]] = {
    "GET": (PULL,),
    "HEAD": (PULL,),
    "POST": (PULL, PUSH),
    "PUT": (PULL, PUSH),
    "PATCH": (PULL, PUSH),
    "DELETE": (DELETE,),
}


def registry_scopes(method: str, path: str, repo: str | None, mount_sources: Iterable[str] = ()) -> list[Scope] | None:
    """The scopes registry:2 (distribution 2.8) asks for, given the request's repository.

    Repository routes: GET/HEAD → ``pull``; POST/PUT/PATCH → ``pull,push``; DELETE → ``delete``;
    each ``from=`` repository (cross-repository mount) adds ``pull`` on it. ``/v2/_catalog`` →
    ``registry:catalog:*``; ``/v2/`` and other ``/v2/`` paths (``repo`` None) → an
    authenticated user, no scope; paths outside ``/v2/`` (health, metrics) → nothing.
    """
    if not path.startswith("/v2/"):
        return None
    if path == "/v2/_catalog":
        return [CATALOG]
    if repo is None:
        return []
    scopes: list[Scope] = []
    actions = _REGISTRY_ACTIONS.get(method)
    if actions:
        scopes.append(repository(repo, *actions))
    scopes.extend(repository(source, PULL) for source in mount_sources)
    return scopes


def registry_required_scopes(method: str, path: str, query: str = "") -> list[Scope] | None:
    """:func:`registry_scopes` for a raw path and query (any ``/v2/<name>/...`` API route; every
    non-empty ``from`` value needs ``pull``). The registry itself shares one parse of the request
    with its handlers instead (:mod:`trustbox.registry.request`)."""
    m = _REGISTRY_REPO_ROUTE.match(path)
    sources = dict.fromkeys(value for key, value in parse_qsl(query, keep_blank_values=True) if key == "from" and value)
    return registry_scopes(method, path, m.group("name") if m is not None else None, sources)


# --- configuration ----------------------------------------------------------------------------


def authorizer_from_config(config: Mapping[str, Any] | None) -> Authorizer:
    """Build an authorizer from a notary-style or registry-style ``auth`` section.

    Accepted forms: ``{"type": "token", "options": {"realm", "service", "issuer",
    "rootcertbundle"}}``, ``{"type": "htpasswd", "options": {"realm", "path"[, "rules"]}}``,
    registry:2's ``{"token": {...}}`` / ``{"htpasswd": {...}}``, and ``{}`` / ``{"type": "none"}``.
    """
    if not config:
        return NoAuthorizer()
    if "type" in config:
        kind = config.get("type")
        options = config.get("options") or {}
    elif len(config) == 1:
        kind, options = next(iter(config.items()))
        options = options or {}
    else:
        raise ConfigError("auth: give exactly one of token, htpasswd")
    if not isinstance(options, Mapping):
        raise ConfigError("auth: options must be a mapping")

    def opt(name: str) -> str:
        value = options.get(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{kind} auth requires a valid option string: {name!r}")
        return value

    if kind in (None, "", "none"):
        return NoAuthorizer()
    if kind == "token":
        return BearerAuthorizer.from_options(opt("realm"), opt("service"), opt("issuer"), opt("rootcertbundle"))
    if kind == "htpasswd":
        rules = AccessRules.load(opt("rules")) if options.get("rules") else None
        return BasicAuthorizer(HtpasswdFile(opt("path")), opt("realm"), rules)
    raise ConfigError(f"unsupported auth type {kind!r} (use token, htpasswd or none)")
