"""What every client connection shares: TLS contexts, the httpx client factory, the one parser of
``WWW-Authenticate`` challenges and the one answer to them (:class:`ChallengeAuth`).

The trust client (:mod:`remote`), the registry client (:mod:`distribution`), the manifest lookup
of ``trust sign`` and ``trustbox login`` all answer Basic and Bearer challenges through here; only
the wording of a refusal differs between them (each words it as its docker counterpart does).

Not an ``httpx.Auth``: httpx reads the body of every response its auth flow answers (``read()``
in ``Client._send_handling_auth``) without a bound, while every body the client reads must go
through :mod:`trustbox.client.capped`. Requests stay streamed; a 401 is released unread.
"""

from __future__ import annotations

import base64
import os
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from trustbox import __version__
from trustbox.client.capped import open_response, read_token
from trustbox.client.dockerenv import Credentials
from trustbox.errors import NetworkError

USER_AGENT = f"trustbox/{__version__}"
DEFAULT_TIMEOUT = 30.0

Challenge = tuple[str, dict[str, str]]


#: built TLS contexts by what went into them (see :func:`ssl_context`)
_contexts: dict[tuple[object, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()
_CONTEXTS_MAX = 32


def _file_identity(path: Path) -> tuple[str, int, int]:
    """A file's name, modification time and size (-1s when it cannot be read): a changed file
    gets a new context."""
    try:
        st = path.stat()
    except OSError:
        return str(path), -1, -1
    return str(path), st.st_mtime_ns, st.st_size


def ssl_context(ca_files: Sequence[Path] = (), client_pairs: Sequence[tuple[Path, Path]] = ()) -> ssl.SSLContext:
    """System trust roots plus ``ca_files``; the first client certificate pair if any.

    Contexts are built once per set of files (by name, modification time and size, and the
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` in effect) and shared: loading the system roots costs
    ~60 ms, and a migration opens trust clients for every repository. Callers must not change
    the returned context.

    Raises:
        NetworkError: a CA file or client pair that cannot be loaded.
    """
    pairs = tuple(client_pairs[:1])
    key = (
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("SSL_CERT_DIR"),
        tuple(_file_identity(ca) for ca in ca_files),
        tuple((_file_identity(cert), _file_identity(k)) for cert, k in pairs),
    )
    with _contexts_lock:
        ctx = _contexts.get(key)
    if ctx is not None:
        return ctx
    ctx = ssl.create_default_context()
    for ca in ca_files:
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(f"cannot load CA certificate {ca}: {exc}") from exc
    for cert, k in pairs:
        try:
            ctx.load_cert_chain(str(cert), str(k))
        except (OSError, ssl.SSLError) as exc:
            raise NetworkError(f"cannot load client certificate {cert}: {exc}") from exc
    with _contexts_lock:
        if len(_contexts) >= _CONTEXTS_MAX:
            _contexts.clear()
        _contexts[key] = ctx
    return ctx


def make_http_client(
    ca_files: Sequence[Path] = (),
    client_pairs: Sequence[tuple[Path, Path]] = (),
    *,
    insecure_skip_verify: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> httpx.Client:
    """An httpx client with the TLS configuration docker would use for a trust server.

    Raises:
        NetworkError: see :func:`ssl_context`.
    """
    verify: ssl.SSLContext | bool = False if insecure_skip_verify else ssl_context(ca_files, client_pairs)
    return httpx.Client(verify=verify, timeout=timeout, headers={"User-Agent": USER_AGENT}, follow_redirects=False)


def basic_auth_header(username: str, password: str) -> str:
    """``Basic <base64(user:password)>``."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def parse_challenge(header: str) -> Challenge:
    """Split ``Bearer realm="..",service=".."`` into the lower-cased scheme and its parameters
    (quoted values may hold commas and backslash escapes)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        while i < len(rest) and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            j = i + 1
            value = []
            while j < len(rest) and rest[j] != '"':
                if rest[j] == "\\" and j + 1 < len(rest):
                    j += 1
                value.append(rest[j])
                j += 1
            params[key] = "".join(value)
            i = j + 1
        else:
            j = rest.find(",", i)
            j = len(rest) if j < 0 else j
            params[key] = rest[i:j].strip()
            i = j
    return scheme.lower(), params


def parse_challenges(values: Sequence[str]) -> list[Challenge]:
    """``WWW-Authenticate`` values → ``[(scheme lower-cased, {param: value})]``."""
    return [parse_challenge(header) for header in values]


class TokenRefusedError(NetworkError):
    """The token service answered ``status`` (200: an answer without a token)."""

    def __init__(self, realm: str, status: int) -> None:
        super().__init__(f"token service {realm} answered HTTP {status}" if status != 200 else f"token service {realm} sent no token")
        self.realm = realm
        self.status = status


def fetch_token(
    http: httpx.Client,
    realm: str,
    params: Mapping[str, str | Sequence[str]],
    credentials: Credentials,
    timeout: float | None = None,
    what: str = "",
) -> tuple[int, str | None]:
    """GET ``realm`` with ``params`` (Basic credentials when there are any; a sequence value is sent
    as one parameter per item, e.g. several ``scope``): the status and, for a 200, the token (the
    answer read at most 1 MiB).

    Raises:
        httpx.HTTPError: transport errors.
        NetworkError: an answer larger than the token cap.
    """
    kwargs: dict[str, Any] = {"params": params}
    if credentials.username:
        kwargs["auth"] = httpx.BasicAuth(credentials.username, credentials.password)
    if timeout is not None:
        kwargs["timeout"] = timeout
    with open_response(http, "GET", realm, **kwargs) as resp:
        if resp.status_code != 200:
            return resp.status_code, None
        return 200, read_token(resp, what or f"token server {realm}")


class ChallengeAuth:
    """The answer to one server's auth challenges: Basic with the credentials, Bearer with a token
    from the challenge's realm for each scope (``repository:<name>:<actions>``), cached per scope. A
    scope of several space-separated parts (a cross-repository mount needs ``push`` on the target and
    ``pull`` on the source) is asked for as one ``scope`` parameter per part, in one token."""

    def __init__(
        self, credentials: Credentials | None = None, fallback: Callable[[], Credentials] | None = None, token_source: str = ""
    ) -> None:
        """``fallback`` gives the credentials when ``credentials`` has none, asked once and only
        when a challenge needs them (it may run a docker credential helper); ``token_source`` names
        the token service in errors (default: ``token server <realm>``)."""
        self.token_source = token_source
        self._credentials = credentials or Credentials()
        self._fallback = fallback
        self.challenge: Challenge | None = None
        self._tokens: dict[str, str] = {}
        self._basic: str | None = None

    @property
    def credentials(self) -> Credentials:
        """The credentials answering challenges (the fallback's when none were given)."""
        if not self._credentials and self._fallback is not None:
            self._credentials = self._fallback()
            self._fallback = None
        return self._credentials

    def remember(self, resp: httpx.Response) -> bool:
        """Remember the challenge of a 401; whether it is one this class can answer (Basic or Bearer)."""
        header = resp.headers.get("www-authenticate", "")
        if resp.status_code != 401 or not header:
            return False
        self.challenge = parse_challenge(header)
        return self.challenge[0] in ("basic", "bearer")

    def cached(self, scope: str) -> str | None:
        """The Authorization value already held for ``scope``, if any."""
        return self._tokens.get(scope) or self._basic

    def forget(self, scope: str) -> None:
        """Drop what answered for ``scope`` (the server refused it)."""
        self._tokens.pop(scope, None)
        self._basic = None

    @property
    def realm(self) -> str:
        """The realm of a Bearer challenge ('' otherwise)."""
        return self.challenge[1].get("realm", "") if self.challenge and self.challenge[0] == "bearer" else ""

    def authorization(
        self, client_for: Callable[[str], httpx.Client], scope: str, timeout: float | None = None
    ) -> str | None:
        """The Authorization value answering the remembered challenge for ``scope``: Basic when there
        are credentials, Bearer with a token from the realm (``client_for(realm)`` sends that request);
        None when there is no challenge, a Basic one without credentials, or another scheme.

        Raises:
            TokenRefusedError: the token service answered other than 200, or without a token.
            httpx.HTTPError: transport errors talking to the token service.
            NetworkError: a token answer beyond the cap.
        """
        held = self.cached(scope)
        if held is not None or self.challenge is None:
            return held
        scheme, params = self.challenge
        if scheme == "basic":
            if self.credentials.username:
                self._basic = basic_auth_header(self.credentials.username, self.credentials.password)
            return self._basic
        realm = params.get("realm", "")
        if scheme != "bearer" or not realm:
            return None
        query: dict[str, str | Sequence[str]] = {"service": params["service"]} if params.get("service") else {}
        if scope:
            query["scope"] = scope.split()
        status, token = fetch_token(client_for(realm), realm, query, self.credentials, timeout, self.token_source)
        if status != 200 or not token:
            raise TokenRefusedError(realm, status)
        self._tokens[scope] = f"Bearer {token}"
        return self._tokens[scope]
