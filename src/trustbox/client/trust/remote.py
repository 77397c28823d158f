"""HTTP access to a notary trust server: TLS, the ``/v2/`` ping, token/basic auth, size limits.

Mirrors notary's ``storage/httpstore.go`` plus docker's auth transport: every request is streamed
and every body read through :mod:`trustbox.client.capped`, so every download is capped (the
referencing metadata's length, 1 MiB for timestamps, 100 MiB for roots, 64 KiB for keys, ping and
error bodies, 1 MiB for token answers) and the transfer is aborted as soon as the cap is passed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from trustbox.client.capped import open_response, read_capped, read_head
from trustbox.client.dockerenv import Credentials, credentials_for
from trustbox.client.errors import (
    BadResponseError,
    MetaNotFoundError,
    ServerRejectedError,
    UnauthorizedError,
)
from trustbox.client.transport import ChallengeAuth, TokenRefusedError, make_http_client
from trustbox.errors import FormatError, NetworkError, TrustboxError
from trustbox.tuf.canonical import loads
from trustbox.tuf.keys import PublicKey

log = logging.getLogger(__name__)

MAX_KEY_SIZE = 64 * 1024
PING_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 30.0
PULL = ("pull",)
PUSH_PULL = ("pull", "push")


# notary-server's typed validation errors (``errors[0].detail`` = ``{"Name": ..., "Error": {"Msg": ...}}``)
# and the text notary's client prints for each once it has decoded them
_VALIDATION_ERRORS = {
    "ErrValidation": "An error occurred during validation: ",
    "ErrBadHierarchy": "Metadata hierarchy is incomplete: ",
    "ErrBadRoot": "The root metadata is invalid: ",
    "ErrBadTargets": "The targets metadata is invalid: ",
    "ErrBadSnapshot": "The snapshot metadata is invalid: ",
}


def _rejection(body: bytes) -> str:
    """The message of a 400 from a trust server, worded as the notary client words it.

    A body with exactly one error whose ``detail`` is one of notary-server's typed validation errors
    gives that error's own text (``Metadata hierarchy is incomplete: ...``), as notary's
    ``tryUnmarshalError`` does; otherwise the messages (``errors[].message`` plus ``detail.Error.Msg``)."""
    default = "trust server rejected operation"
    try:
        doc = loads(body)
    except FormatError:
        return default
    errs = doc.get("errors") if isinstance(doc, dict) else None
    errs = [e for e in errs if isinstance(e, dict)] if isinstance(errs, list) else []
    parts = []
    for e in errs:
        msg = str(e.get("message", ""))
        detail = e.get("detail")
        inner = detail.get("Error") if isinstance(detail, dict) else None
        if isinstance(inner, dict) and inner.get("Msg"):
            prefix = _VALIDATION_ERRORS.get(str(detail.get("Name"))) if isinstance(detail, dict) else None
            if prefix is not None and len(errs) == 1:
                return prefix + str(inner["Msg"])
            msg += f" {inner['Msg']}"
        parts.append(msg)
    summary = "; ".join(p for p in parts if p)
    return f"{default}: {summary}" if summary else default


class RemoteStore:
    """The notary HTTP API of one GUN on one trust server."""

    def __init__(
        self,
        server_url: str,
        gun: str,
        *,
        http: httpx.Client | None = None,
        ca_files: Sequence[Path] = (),
        client_pairs: Sequence[tuple[Path, Path]] = (),
        credentials: Credentials | None = None,
        actions: Sequence[str] = PULL,
        insecure_skip_verify: bool = False,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.gun = gun
        self.host = httpx.URL(self.server_url).netloc.decode("ascii")
        self._own_client = http is None
        self.http = http or make_http_client(ca_files, client_pairs, insecure_skip_verify=insecure_skip_verify)
        self.auth = ChallengeAuth(credentials, self._stored_credentials)
        self.actions = tuple(actions)
        self._pinged = False

    def close(self) -> None:
        """Close the HTTP client if this store created it."""
        if self._own_client:
            self.http.close()

    # -- auth --------------------------------------------------------------------------------

    def base_url(self) -> str:
        """``<server>/v2/<gun>/_trust/tuf/``."""
        return f"{self.server_url}/v2/{self.gun}/_trust/tuf/"

    def ping(self) -> None:
        """``GET /v2/`` once, remembering any auth challenge (failures are ignored, like docker)."""
        if self._pinged:
            return
        self._pinged = True
        try:
            with open_response(self.http, "GET", self.server_url + "/v2/", timeout=PING_TIMEOUT) as resp:
                self.auth.remember(resp)
        except (httpx.HTTPError, NetworkError) as exc:
            log.debug("ping of %s failed: %s", self.server_url, exc)

    def use_actions(self, actions: Sequence[str]) -> None:
        """Switch the token scope (e.g. to ``pull,push`` before publishing)."""
        self.actions = tuple(actions)

    @property
    def scope(self) -> str:
        """The token scope of the requests: ``repository:<gun>:<actions>``."""
        return f"repository:{self.gun}:{','.join(self.actions)}"

    def _stored_credentials(self) -> Credentials:
        """Those docker stored for the trust server itself (used when the registry's are not given)."""
        try:
            found = credentials_for(self.host)
        except TrustboxError:
            found = None
        return Credentials(*found) if found else Credentials()

    def _headers(self) -> dict[str, str]:
        """The Authorization answering the server's challenge, fetching a token if needed.

        Raises:
            UnauthorizedError: the token service refused or sent no token.
            NetworkError: the token service cannot be reached.
        """
        self.ping()
        try:
            auth = self.auth.authorization(lambda _realm: self.http, self.scope, timeout=PING_TIMEOUT * 2)
        except TokenRefusedError:
            raise UnauthorizedError() from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"error contacting token server {self.auth.realm}: {exc}") from exc
        return {"Authorization": auth} if auth else {}

    def _challenged(self, resp: httpx.Response, retried: bool) -> bool:
        """Whether ``resp`` is a 401 worth answering: remember its challenge and drop the old answer."""
        if retried or not self.auth.remember(resp):
            return False
        self.auth.forget(self.scope)
        return True

    # -- requests ----------------------------------------------------------------------------

    def _check_status(self, resp: httpx.Response, resource: str) -> None:
        """Raise the notary error for a non-200 answer (reading at most a small error body)."""
        code = resp.status_code
        if code == 200:
            return
        if code == 404:
            raise MetaNotFoundError(resource)
        if code == 401:
            raise UnauthorizedError()
        if code == 400:
            raise ServerRejectedError(_rejection(read_head(resp)))
        raise NetworkError(f"unable to reach trust server at this time: {code}.")

    def get_sized(self, name: str, limit: int) -> bytes:
        """Download ``<name>.json`` (e.g. ``timestamp``, ``snapshot.<sha256>``, ``3.root``), at most ``limit`` bytes.

        Raises BadResponseError beyond ``limit``, the errors of :meth:`_check_status`, NetworkError."""
        with self._request("GET", self.base_url() + name + ".json") as resp:
            self._check_status(resp, name)
            return read_capped(resp, limit, name, error=BadResponseError)

    def get_key(self, role: str) -> PublicKey:
        """``GET <role>.key``: the server-held public key for timestamp or snapshot.

        Raises BadResponseError beyond 64 KiB, FormatError for a bad key, the errors of :meth:`_check_status`."""
        with self._request("GET", self.base_url() + role + ".key") as resp:
            self._check_status(resp, f"{role}.key")
            data = read_capped(resp, MAX_KEY_SIZE, f"{role}.key", error=BadResponseError)
        value: Any = loads(data)
        try:
            return PublicKey.from_dict(value)
        except FormatError as exc:
            raise FormatError(f"server returned an invalid {role} key: {exc.message}") from exc

    def post_update(self, parts: Sequence[tuple[str, bytes]]) -> None:
        """One multipart POST of signed documents: field ``files``, filename = role."""
        files = [("files", (role, data, "application/octet-stream")) for role, data in parts]
        with self._request("POST", self.base_url(), files=files) as resp:
            self._check_status(resp, "update")

    @contextmanager
    def _request(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """One streamed request (replayable bodies only), answering a 401 challenge once with fresh
        credentials; the response is released on exit. Raises NetworkError for transport errors
        (also those while the caller reads the body), UnauthorizedError for a second 401."""
        try:
            for retried in (False, True):
                with open_response(self.http, method, url, headers=self._headers(), **kwargs) as resp:
                    if self._challenged(resp, retried):
                        continue
                    yield resp
                    return
        except httpx.HTTPError as exc:
            raise NetworkError(f"error contacting notary server: {exc}") from exc
        raise UnauthorizedError()
