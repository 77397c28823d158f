"""The token server (``trustbox serve auth``): docker registry token auth for notary and registries.

``GET /token?service=S&scope=...&scope=...`` with Basic credentials (or none, when the rules allow
anonymous access) answers ``{"token", "access_token", "expires_in", "issued_at"}`` as docker's
auth server does; ``POST /token`` takes the OAuth2 password grant form newer clients send. The
granted access is the intersection of what was asked for and what the rules allow; a request for
something not allowed still gets a token, just without that access (the resource server then
refuses), exactly like Docker Hub's auth server.

Abuse limits: the ``POST`` form is read only up to ``max_form_bytes`` (413 beyond, without
buffering more), and failed password checks are throttled per account and per client address
(429 with ``Retry-After``; :mod:`trustbox.auth.throttle`).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message

from trustbox.auth.access import AccessRules
from trustbox.auth.htpasswd import HtpasswdFile
from trustbox.auth.middleware import AuthInfo, parse_basic
from trustbox.auth.scopes import (
    JSON_CONTENT_TYPE,
    Scope,
    basic_challenge,
    format_scope,
    merge_scopes,
    parse_scopes,
)
from trustbox.auth.throttle import FailureThrottle, PasswordGate, Throttled
from trustbox.auth.tokens import DEFAULT_TTL, TokenIssuer
from trustbox.errcode import INVALID_REQUEST, SIZE_INVALID, UNAUTHORIZED, ErrorCode
from trustbox.errors import FormatError

log = logging.getLogger(__name__)
MAX_SCOPES = 32
DEFAULT_MAX_FORM_BYTES = 8 * 1024
#: a ``POST /token`` form over ``max_form_bytes``
FORM_TOO_LARGE = SIZE_INVALID.answered(413)


@dataclass
class TokenServerConfig:
    """What the token server needs: a signer, users, rules and the services it issues for.

    ``throttle`` limits failed password checks (None: unlimited); ``max_form_bytes`` bounds the
    body of ``POST /token``.
    """

    issuer: TokenIssuer
    htpasswd: HtpasswdFile | None
    rules: AccessRules
    services: frozenset[str] = field(default_factory=frozenset)
    ttl: int = DEFAULT_TTL
    realm: str = "trustbox token server"
    throttle: FailureThrottle | None = field(default_factory=FailureThrottle)
    max_form_bytes: int = DEFAULT_MAX_FORM_BYTES


def _issued_at(ts: datetime.datetime) -> str:
    return ts.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Refused(Exception):
    def __init__(self, response: Response, message: str) -> None:
        self.response = response
        self.message = message


class _FormTooLarge(Exception):
    """A ``POST /token`` body (announced or received) over the limit."""


async def read_bounded(request: Request, limit: int) -> bytes:
    """The request body, never holding more than ``limit`` bytes of it.

    Raises _FormTooLarge as soon as the announced ``Content-Length`` or the bytes received so far
    exceed ``limit`` (the rest is not read), FormatError for a malformed ``Content-Length``.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise FormatError("malformed Content-Length")
        if int(declared) > limit:
            raise _FormTooLarge()
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise _FormTooLarge()
        body += chunk
    return bytes(body)


async def parse_form(request: Request, body: bytes) -> dict[str, str]:
    """The text fields of a form ``body`` already read from ``request`` (urlencoded or multipart).

    Raises whatever Starlette's form parser raises for a malformed body.
    """

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


class TokenService:
    """The request handling, independent of the HTTP framework's routing."""

    def __init__(self, config: TokenServerConfig) -> None:
        self.config = config
        self.gate = PasswordGate(config.htpasswd, config.throttle) if config.htpasswd is not None else None

    def _error(self, code: ErrorCode, message: str) -> _Refused:
        body = code.body(message)
        return _Refused(Response(body, code.status, media_type=JSON_CONTENT_TYPE), message)

    def _unauthorized(self, message: str) -> _Refused:
        resp = Response(
            UNAUTHORIZED.body(message),
            UNAUTHORIZED.status,
            headers={"WWW-Authenticate": basic_challenge(self.config.realm)},
            media_type=JSON_CONTENT_TYPE,
        )
        return _Refused(resp, message)

    async def authenticate(self, user: str | None, password: str | None, address: str | None) -> str | None:
        """The authenticated user, None for anonymous.

        Raises _Refused: 401 for missing or wrong credentials, 429 (``TOOMANYREQUESTS`` with
        ``Retry-After``) while the account or the client ``address`` is throttled.
        """
        if user is None:
            if self.config.rules.allows_anonymous:
                return None
            raise self._unauthorized("authentication required")
        ok = False
        if self.gate is not None:
            try:
                ok = await self.gate.check(user, password or "", address)
            except Throttled as exc:
                log.warning("throttled token request for user %r from %s", user, address)
                resp = Response(exc.body(), 429, headers=exc.headers(), media_type=JSON_CONTENT_TYPE)
                raise _Refused(resp, exc.message) from None
        if not ok:
            log.info("token request with bad credentials for user %r", user)
            raise self._unauthorized("incorrect username or password")
        return user

    def check_service(self, service: str | None) -> str:
        """The service (token audience); raise _Refused if missing or not served."""
        if not service:
            raise self._error(INVALID_REQUEST, "missing service parameter")
        if self.config.services and service not in self.config.services:
            raise self._error(INVALID_REQUEST, f"unknown service {service!r}")
        return service

    def requested(self, values: Sequence[str]) -> list[Scope]:
        """Parse and merge the requested scopes; raise _Refused if malformed."""
        try:
            scopes = merge_scopes(parse_scopes(values))
        except FormatError as exc:
            raise self._error(INVALID_REQUEST, exc.message) from None
        if len(scopes) > MAX_SCOPES:
            raise self._error(INVALID_REQUEST, "too many scopes")
        return scopes

    def issue(self, user: str | None, service: str, scopes: Sequence[Scope]) -> tuple[str, list[Scope], int, str]:
        """Sign a token with the granted subset of ``scopes``."""
        granted = self.config.rules.grant(user, scopes)
        issued = self.config.issuer.issue(user or "", service, granted, ttl=self.config.ttl)
        log.info(
            "issued token for %s on %s: %s",
            user or "<anonymous>",
            service,
            " ".join(format_scope(s) for s in granted) or "<no access>",
        )
        return issued.token, granted, issued.expires_in, _issued_at(issued.issued_at)

    async def get_token(self, request: Request) -> Response:
        """``GET /token`` (docker token auth)."""
        try:
            service = self.check_service(request.query_params.get("service"))
            scopes = self.requested(request.query_params.getlist("scope"))
            creds = parse_basic(request.headers.get("authorization"))
            if creds is None and request.headers.get("authorization"):
                raise self._unauthorized("malformed credentials")
            name, password = creds if creds is not None else (None, None)
            user = await self.authenticate(name, password, _address(request))
            request.state.auth = AuthInfo(user, method="basic")  # the access log's user
            token, _granted, expires_in, issued_at = self.issue(user, service, scopes)
        except _Refused as refused:
            return refused.response
        return JSONResponse(
            {"token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at},
            headers={"Cache-Control": "no-store"},
        )

    async def post_token(self, request: Request) -> Response:
        """``POST /token`` (OAuth2 password grant, as docker sends with ``--password-stdin`` logins)."""

        def oauth_error(status: int, error: str, description: str) -> Response:
            return JSONResponse({"error": error, "error_description": description}, status)

        try:
            values = await parse_form(request, await read_bounded(request, self.config.max_form_bytes))
        except _FormTooLarge:
            limit = self.config.max_form_bytes
            return self._error(FORM_TOO_LARGE, f"request body larger than {limit} bytes").response
        except Exception:  # noqa: BLE001 - any malformed body is the client's fault
            return oauth_error(400, "invalid_request", "malformed form body")
        grant_type = values.get("grant_type", "")
        if grant_type != "password":
            return oauth_error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        username, password = values.get("username"), values.get("password")
        if not username or password is None:
            return oauth_error(400, "invalid_request", "username and password are required")
        try:
            service = self.check_service(values.get("service"))
            scopes = self.requested([values.get("scope", "")])
            user = await self.authenticate(username, password, _address(request))
            request.state.auth = AuthInfo(user, method="basic")  # the access log's user
            token, granted, expires_in, issued_at = self.issue(user, service, scopes)
        except _Refused as refused:
            if refused.response.status_code == 401:
                return oauth_error(401, "invalid_grant", "incorrect username or password")
            if refused.response.status_code == 429:
                return refused.response
            return oauth_error(400, "invalid_request", refused.message)
        return JSONResponse(
            {
                "access_token": token,
                "token": token,
                "scope": " ".join(format_scope(s) for s in granted),
                "expires_in": expires_in,
                "issued_at": issued_at,
            },
            headers={"Cache-Control": "no-store"},
        )


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def create_app(config: TokenServerConfig) -> Starlette:
    """The token server as a Starlette app (``/token`` GET and POST, ``/health``)."""
    service = TokenService(config)

    async def health(request: Request) -> Response:
        return Response(b"{}", media_type=JSON_CONTENT_TYPE)

    return Starlette(
        routes=[
            Route("/token", service.get_token, methods=["GET"]),
            Route("/token", service.post_token, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
