"""``trustbox login``: check credentials against a registry the way ``docker login`` does.

Ping ``https://REGISTRY/v2/``; on a ``Bearer`` challenge get a token from the realm with the
credentials (Basic), on a ``Basic`` challenge retry the ping with them. Loopback registries are
treated like docker's default insecure registries (127.0.0.0/8): HTTPS without certificate
verification first, then plain HTTP. Requests are streamed and bodies read through
:mod:`trustbox.client.capped`: the token answer at most 1 MiB, ping bodies 64 KiB.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from trustbox.client.capped import open_response
from trustbox.client.dockerenv import DOCKER_HUB, Credentials, registry_key, registry_tls_dirs, tls_dir_files
from trustbox.client.transport import USER_AGENT, fetch_token, parse_challenges, ssl_context
from trustbox.errors import NetworkError, TrustboxError
from trustbox.oci.reference import is_loopback

TIMEOUT = 15.0


class LoginError(TrustboxError):
    """Credentials the registry refused."""


def _ca_files(host: str, extra: Sequence[Path]) -> list[Path]:
    return list(extra) + tls_dir_files(host, registry_tls_dirs()).ca_files


@dataclass(frozen=True)
class LoginResult:
    """Where the credentials were checked and how."""

    key: str
    url: str
    method: str  # "bearer", "basic" or "none"


def _attempts(host: str, ca_files: Sequence[Path], insecure: bool) -> list[tuple[str, ssl.SSLContext | bool]]:
    if insecure or is_loopback(host):
        return [(f"https://{host}", False), (f"http://{host}", False)]
    return [(f"https://{host}", ssl_context(_ca_files(host, ca_files)))]


def login(
    registry: str,
    user: str,
    password: str,
    *,
    ca_files: Sequence[Path] = (),
    insecure: bool = False,
    timeout: float = TIMEOUT,
) -> LoginResult:
    """Check ``user``/``password`` against ``registry``; raise LoginError or NetworkError."""
    key = registry_key(registry)
    host = "registry-1.docker.io" if key == DOCKER_HUB else key
    last: Exception | None = None
    for base, verify in _attempts(host, ca_files, insecure):
        with httpx.Client(verify=verify, timeout=timeout, headers={"User-Agent": USER_AGENT}) as client:
            try:
                with open_response(client, "GET", f"{base}/v2/") as ping:
                    pass
            except httpx.HTTPError as exc:
                last = exc
                continue
            return LoginResult(key, base, _authenticate(client, base, ping, user, password))
    raise NetworkError(f"cannot reach registry {host}: {last}")


def _authenticate(client: httpx.Client, base: str, ping: httpx.Response, user: str, password: str) -> str:
    """Answer the (released) ping's challenge; the method used. Raises LoginError, NetworkError."""
    if ping.status_code == 200:
        return "none"
    if ping.status_code != 401:
        raise NetworkError(f"login attempt to {base}/v2/ failed with status: {ping.status_code}")
    challenges = dict(parse_challenges(ping.headers.get_list("www-authenticate")))
    try:
        if "bearer" in challenges:
            _bearer(client, base, challenges["bearer"], user, password)
            return "bearer"
        if "basic" in challenges:
            with open_response(client, "GET", f"{base}/v2/", auth=(user, password)) as resp:
                pass
            if resp.status_code == 200:
                return "basic"
            if resp.status_code == 401:
                raise LoginError("unauthorized: incorrect username or password")
            raise NetworkError(f"login attempt to {base}/v2/ failed with status: {resp.status_code}")
    except httpx.HTTPError as exc:
        raise NetworkError(f"login to {base} failed: {exc}") from None
    raise NetworkError(f"{base}/v2/ asks for an unsupported authentication scheme")


def _bearer(client: httpx.Client, base: str, params: dict[str, str], user: str, password: str) -> None:
    """Get a token from the realm with the credentials and check it on ``/v2/``.
    Raises LoginError, NetworkError, httpx.HTTPError."""
    realm = params.get("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise NetworkError(f"{base}/v2/ sent a bearer challenge without a usable realm")
    query: dict[str, str] = {"account": user, "client_id": "trustbox", "offline_token": "true"}
    if params.get("service"):
        query["service"] = params["service"]
    if params.get("scope"):
        query["scope"] = params["scope"]
    status, token = fetch_token(client, realm, query, Credentials(user, password))
    if status == 401:
        raise LoginError("unauthorized: incorrect username or password")
    if status != 200:
        raise NetworkError(f"token server {realm} answered {status}")
    if token is None:
        raise NetworkError(f"token server {realm} sent no token")
    with open_response(client, "GET", f"{base}/v2/", headers={"Authorization": f"Bearer {token}"}) as check:
        pass
    if check.status_code == 200:
        return
    if check.status_code == 401:
        errors = [p.get("error") for s, p in parse_challenges(check.headers.get_list("www-authenticate")) if s == "bearer"]
        if "insufficient_scope" in errors:
            return  # the credentials are good; they just do not reach this server's ping scope
        raise LoginError(f"{base}/v2/ refused the token from {realm}")
    raise NetworkError(f"login attempt to {base}/v2/ failed with status: {check.status_code}")
