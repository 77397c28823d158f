"""An OCI distribution (registry v2) client on httpx.

* Scheme: ``https`` always first. Loopback registries (``localhost``, 127.0.0.0/8, ``::1``) and
  registries listed as insecure (``--insecure-registry`` / ``TRUSTBOX_INSECURE_REGISTRIES``) are
  treated like docker treats insecure registries: TLS is not verified and plain HTTP is tried when
  HTTPS does not answer. Every other registry needs verified TLS.
* CAs: ``$DOCKER_CONFIG/tls/<host:port>/*.crt`` and ``/etc/docker/certs.d/<host:port>/*.crt``
  (``*.cert`` + ``*.key`` = client certificate), plus ``--ca-cert`` files.
* Auth: ``WWW-Authenticate`` Bearer (token service, scope ``repository:<name>:pull[,push]``) and
  Basic, with credentials from ``$DOCKER_CONFIG/config.json`` ``auths`` (``auth`` base64 or
  ``username``/``password``).
* Blobs and manifests are verified while they stream (sha256 and size) and written to temporary
  files; nothing partial is ever left behind.
* Every request is streamed and every body read through :mod:`trustbox.client.capped`: manifests
  at most 4 MiB (or their descriptor's size), blobs their descriptor's size, token answers 1 MiB,
  tag lists 8 MiB, ping and error bodies 64 KiB (truncated). Redirects (blob downloads from S3)
  are followed here, not by httpx (which would read each redirect body whole), with the same caps.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx

from trustbox.client.capped import (
    BODY_ENDED_EARLY,
    BODY_READ_FAILED,
    LIST_BODY_LIMIT,
    ErrorFactory,
    PlainBody,
    ResponseTooLargeError,
    capped_chunks,
    iter_capped,
    open_response,
    plain_get,
    read_capped,
    read_head,
    release,
    send,
    uses_proxy,
)
from trustbox.client.dockerenv import (
    Credentials,
    env_ca_files,
    insecure_registries,
    load_credentials,
    registry_tls_dirs,
    tls_dir_files,
)
from trustbox.client.images.blobio import copy_verified, verify_chunks
from trustbox.client.transport import ChallengeAuth, TokenRefusedError, make_http_client
from trustbox.errors import (
    ConfigError,
    FormatError,
    HashMismatchError,
    NetworkError,
    NotFoundError,
    TrustboxError,
)
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import check_sha256, digest_bytes, is_digest, parse_digest, sha256_digest
from trustbox.oci.errors import DigestMismatchError, ImageError
from trustbox.oci.manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from trustbox.oci.mediatypes import MANIFEST_TYPES
from trustbox.oci.reference import ImageRef, is_loopback
from trustbox.tuf.canonical import loads

USER_AGENT = "trustbox (registry client)"
DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
DEFAULT_MONOLITHIC_LIMIT = 128 * 1024 * 1024
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
MAX_REDIRECTS = 10  # Go's http.Client, which docker uses
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BLOB_CHUNK = 1024 * 1024
#: smallest blob read by the fast path (plain_get opens a connection per blob)
PLAIN_MIN_SIZE = 1024 * 1024

Progress = Callable[[int], None]


class RegistryAuthError(TrustboxError):
    """The registry refused our credentials (or we have none)."""


class RegistryResponseError(TrustboxError):
    """The registry answered with an error status."""

    def __init__(self, message: str, status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class RegistryOptions:
    """How to reach registries: TLS trust, insecure hosts, credentials, transfer sizes."""

    insecure_registries: tuple[str, ...] = ()
    ca_certs: tuple[Path, ...] = ()
    docker_config: Path | None = None
    certs_d: tuple[Path, ...] = (Path("/etc/docker/certs.d"),)
    timeout: float = 60.0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    monolithic_limit: int = DEFAULT_MONOLITHIC_LIMIT
    transport: httpx.BaseTransport | None = None
    credentials: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, insecure: Iterable[str] = (), ca_certs: Iterable[str | Path] = ()) -> RegistryOptions:
        """Options from the environment plus command-line values."""
        return cls(
            insecure_registries=tuple(insecure) + insecure_registries(),
            ca_certs=tuple(Path(p) for p in ca_certs) + tuple(env_ca_files()),
        )


def _error_text(resp: httpx.Response) -> tuple[str, str | None]:
    """A short message and the first error code from a registry error body (its first 64 KiB)."""
    try:
        doc = loads(read_head(resp))
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            code = str(errs[0].get("code", ""))
            msg = str(errs[0].get("message", ""))
            return f"{code}: {msg}" if code else msg, code or None
    except FormatError:
        pass
    return f"HTTP {resp.status_code} {resp.reason_phrase}", None


def _response_error(resp: httpx.Response, what: str) -> RegistryResponseError:
    """``<what>: <the registry's message>``, with the status and the first error code."""
    msg, code = _error_text(resp)
    return RegistryResponseError(f"{what}: {msg}", resp.status_code, code)


def _expect_ok(resp: httpx.Response, not_found: str, what: str) -> None:
    """Raise NotFoundError(``not_found``, plus the registry's own error when it sent one, e.g.
    why a stored blob is gone) on 404, :func:`_response_error` on any other non-200."""
    if resp.status_code == 404:
        msg, code = _error_text(resp)
        raise NotFoundError(f"{not_found}: {msg}" if code else not_found)
    if resp.status_code != 200:
        raise _response_error(resp, what)


#: the Accept header of every manifest request (push, pull, verify and trust sign's lookup)
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)


def read_manifest(
    resp: httpx.Response, reference: str, limit: int, what: str, *, error: ErrorFactory = DigestMismatchError
) -> tuple[bytes, str]:
    """The manifest bytes of a 200 answer and their sha256 digest, read at most ``limit`` bytes, checked against a digest
    ``reference`` and the registry's ``Docker-Content-Digest``: the one read of a manifest, for the
    registry client and for ``trust sign``'s lookup.

    Raises:
        DigestMismatchError: the bytes hash to something else than the reference or the header says.
        ``error``: the answer is larger than ``limit`` (default DigestMismatchError).
        httpx.HTTPError: transport errors while reading.
    """
    raw = read_capped(resp, limit, what, error=error)
    digest = sha256_digest(raw)
    if is_digest(reference):
        _check_manifest_digest(raw, reference, f"manifest {reference}: digest mismatch:")
    header_digest = resp.headers.get("docker-content-digest")
    if header_digest and is_digest(header_digest):
        _check_manifest_digest(raw, header_digest, f"manifest {reference}: registry says {header_digest} but")
    return raw, digest


def _check_manifest_digest(raw: bytes, expected: str, context: str) -> None:
    """Hash ``raw`` with the algorithm ``expected`` names (sha256 or sha512, as go-digest) and compare.

    Raises:
        DigestMismatchError: the digest is malformed or of another algorithm than go-digest knows,
            or the bytes hash to something else.
    """
    try:
        want = parse_digest(expected)
    except FormatError as exc:
        raise DigestMismatchError(f"manifest digest {expected[:200]!r}: {exc}") from None
    actual = digest_bytes(raw, want.algorithm)
    if actual != want:
        raise DigestMismatchError(f"{context} content hashes to {actual}")


class RegistryClient:
    """A client for one registry host (``host[:port]``)."""

    def __init__(self, host: str, options: RegistryOptions | None = None) -> None:
        self.host = host
        self.options = options or RegistryOptions()
        self.insecure = is_loopback(host) or host in self.options.insecure_registries
        self._base: str | None = None
        self._clients: dict[str, httpx.Client] = {}
        self._tls: ssl.SSLContext | None = None
        #: blobs come from the registry itself (learnt from a first blob, see open_blob)
        self._plain_blobs = False
        #: the client is shared by threads (a copy's pools): the first ping, the TLS settings and
        #: the httpx clients are made once, under this lock
        self._setup = threading.RLock()
        creds = self.options.credentials or load_credentials(host, self.options.docker_config)
        self.auth = ChallengeAuth(Credentials(*creds) if creds else None, token_source=f"token service of {host}")

    # -- connection --------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        """The TLS settings for this host (built once; httpx and the blob fast path share them)."""
        with self._setup:
            if self._tls is None:
                self._tls = self._make_ssl_context()
            return self._tls

    def _make_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        dirs = registry_tls_dirs(config=self.options.docker_config)[:1] + list(self.options.certs_d)
        found = tls_dir_files(self.host, dirs)
        for f in found.ca_files:
            ctx.load_verify_locations(cafile=str(f))
        for cert, key in found.client_pairs:
            ctx.load_cert_chain(str(cert), str(key))
        for ca in self.options.ca_certs:
            try:
                ctx.load_verify_locations(cafile=str(ca))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load CA certificate {ca}: {exc}") from None
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _client(self, scheme: str) -> httpx.Client:
        c = self._clients.get(scheme)
        if c is not None:
            return c
        with self._setup:
            c = self._clients.get(scheme)
            if c is None:
                kwargs: dict[str, Any] = {
                    "timeout": httpx.Timeout(self.options.timeout, connect=10.0),
                    "headers": {"User-Agent": USER_AGENT},
                    "follow_redirects": False,
                    # the http client never speaks TLS (https URLs go to the https client): no
                    # certificate store loaded for it
                    "verify": self._ssl_context() if scheme == "https" else False,
                }
                if self.options.transport is not None:
                    kwargs["transport"] = self.options.transport
                c = httpx.Client(**kwargs)
                self._clients[scheme] = c
            return c

    def close(self) -> None:
        """Close the HTTP connections."""
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> str:
        """Find the base URL (``https://host`` or, for insecure hosts, ``http://host``) via ``GET /v2/``."""
        if self._base is not None:
            return self._base
        with self._setup:  # one ping for all threads
            return self._ping()

    def _ping(self) -> str:
        if self._base is not None:
            return self._base
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.host}"
            try:
                resp = send(self._client(scheme), "GET", f"{base}/v2/")
            except httpx.HTTPError as exc:
                last = exc
                continue
            release(resp)
            if resp.status_code in (200, 401):
                self.auth.remember(resp)
                self._base = base
                return base
            last = NetworkError(f"{base}/v2/ answered HTTP {resp.status_code}; is {self.host} a registry?")
        if isinstance(last, TrustboxError):
            raise last
        hint = None
        if not self.insecure:
            hint = f"if {self.host} only speaks plain HTTP or has a self-signed certificate, use --insecure-registry {self.host} or --ca-cert"
        raise NetworkError(f"cannot reach registry {self.host}: {last}", hint=hint)

    # -- auth --------------------------------------------------------------------------

    def _scope_key(self, repo: str | None, push: bool) -> str:
        return f"repository:{repo}:{'pull,push' if push else 'pull'}" if repo else ""

    def _realm_client(self, realm: str) -> httpx.Client:
        return self._client("https" if realm.startswith("https:") else "http")

    def _authorize(self, scope: str) -> None:
        """Answer the remembered challenge for ``scope``.

        Raises:
            RegistryAuthError: no challenge, Basic without credentials, another scheme, or the
                token service refusing (with a login hint when there were no credentials).
            NetworkError: the token service unreachable, failing or sending no token.
        """
        challenge = self.auth.challenge
        if challenge is None:
            raise RegistryAuthError(f"registry {self.host} requires authentication but sent no challenge")
        has_creds = bool(self.auth.credentials)
        if challenge[0] == "basic" and not has_creds:
            raise RegistryAuthError(
                f"registry {self.host} requires a username and password",
                hint=f"add credentials for {self.host} to $DOCKER_CONFIG/config.json (docker login)",
            )
        try:
            answer = self.auth.authorization(self._realm_client, scope)
        except TokenRefusedError as exc:
            raise self._token_refused(exc.status, scope, has_creds) from None
        except httpx.HTTPError as exc:
            raise NetworkError(f"cannot reach the token service of {self.host}: {exc}") from None
        if answer is None:
            raise RegistryAuthError(f"registry {self.host}: unsupported authentication challenge {challenge[0]!r}")

    def _token_refused(self, status: int, scope: str, has_creds: bool) -> TrustboxError:
        """The error for a token service answering ``status`` (200: without a token)."""
        if status in (401, 403) and not has_creds:
            return RegistryAuthError(
                f"registry {self.host} denied access to {scope or 'access'} without credentials",
                hint=f"log in first: trustbox login {self.host}",
            )
        if status in (401, 403):
            return RegistryAuthError(f"registry {self.host} refused the credentials for {scope or 'access'}")
        if status != 200:
            return NetworkError(f"token service of {self.host} answered HTTP {status}")
        return NetworkError(f"token service of {self.host} returned no token")

    def _auth_header(self, scope: str) -> dict[str, str]:
        held = self.auth.cached(scope)
        return {"Authorization": held} if held else {}

    def _url(self, path_or_url: str) -> str:
        base = self.ping()
        return urljoin(base + "/", path_or_url) if not path_or_url.startswith(("http://", "https://")) else path_or_url

    def _send(
        self,
        method: str,
        url: str,
        repo: str | None,
        push: bool = False,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | Iterable[bytes] | None = None,
        retry_auth: bool = True,
        follow: bool = False,
        scope: str | None = None,
    ) -> httpx.Response:
        """Send a request (streamed: the caller reads the body through :mod:`capped` and releases
        the response), answering one auth challenge (only for replayable bodies). ``scope``
        replaces the token scope derived from ``repo`` and ``push`` (space-separated parts). Raises
        NetworkError, RegistryAuthError."""
        full = self._url(url)
        scope = scope if scope is not None else self._scope_key(repo, push)
        for attempt in (0, 1):
            h = {**(headers or {}), **self._auth_header(scope)}
            try:
                resp = self._open(method, full, h, content, follow)
            except httpx.HTTPError as exc:
                raise NetworkError(f"error talking to registry {self.host}: {exc}") from None
            if resp.status_code == 401:
                release(resp)
                if attempt == 0 and retry_auth:
                    self.auth.remember(resp)
                    self.auth.forget(scope)
                    self._authorize(scope)
                    continue
                raise RegistryAuthError(f"registry {self.host} denied access to {repo or '/v2/'}")
            return resp
        raise AssertionError("unreachable")

    def _open(
        self, method: str, url: str, headers: dict[str, str], content: bytes | Iterable[bytes] | None, follow: bool
    ) -> httpx.Response:
        """One request; with ``follow``, up to :data:`MAX_REDIRECTS` redirects are followed here
        (each redirect body is dropped unread), without the Authorization header once the
        redirect leaves the registry's origin. Raises httpx.HTTPError, NetworkError."""
        for _ in range(MAX_REDIRECTS + 1):
            scheme = "https" if url.startswith("https:") else "http"
            resp = send(self._client(scheme), method, url, headers=headers, content=content)
            location = resp.headers.get("location")
            if not follow or resp.status_code not in REDIRECT_STATUSES or not location:
                return resp
            release(resp)
            target = urljoin(url, location)
            if not target.startswith(("https://", "http://")):
                raise NetworkError(f"registry {self.host} redirected to an unsupported URL {target[:200]!r}")
            if _origin(target) != _origin(url):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target
        raise NetworkError(f"registry {self.host}: more than {MAX_REDIRECTS} redirects")

    @contextmanager
    def _request(
        self, method: str, url: str, repo: str | None, push: bool = False, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """:meth:`_send` as a context manager that releases the response on exit."""
        resp = self._send(method, url, repo, push, **kwargs)
        try:
            yield resp
        finally:
            release(resp)

    def prepare(self, repo: str, push: bool = False) -> None:
        """Authenticate for ``repo`` up front (so streamed uploads never meet a challenge)."""
        with self._request("GET", f"/v2/{repo}/tags/list?n=1", repo, push):
            pass

    # -- blobs -------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str, push: bool = False) -> int | None:
        """Size of a blob if the repository has it (``HEAD``), else None."""
        check_sha256(digest)
        with self._request("HEAD", f"/v2/{repo}/blobs/{digest}", repo, push, follow=True) as resp:
            pass
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise RegistryResponseError(f"HEAD blob {digest} in {self.host}/{repo}: HTTP {resp.status_code}", resp.status_code)
        try:
            return int(resp.headers.get("content-length", "-1"))
        except ValueError:
            return -1

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Ask the registry to mount ``digest`` from ``from_repo`` (no upload); True if it did.
        The token asked for covers ``push`` on ``repo`` and ``pull`` on ``from_repo`` (as docker asks).

        Raises:
            NetworkError, RegistryAuthError: the registry cannot be reached or refuses the request.
        """
        check_sha256(digest)
        q = urlencode({"mount": digest, "from": from_repo})
        scope = f"{self._scope_key(repo, True)} {self._scope_key(from_repo, False)}"
        with self._request(
            "POST", f"/v2/{repo}/blobs/uploads/?{q}", repo, True, headers={"Content-Length": "0"}, scope=scope
        ) as resp:
            pass
        if resp.status_code == 201:
            return True
        if resp.status_code == 202 and resp.headers.get("location"):
            # An upload session was opened instead; cancel it politely.
            self._cancel_upload(resp.headers["location"], repo, retry_auth=True)
        return False

    def _cancel_upload(self, location: str, repo: str, retry_auth: bool = False) -> None:
        """``DELETE`` an upload session, ignoring any failure."""
        try:
            with self._request("DELETE", location, repo, True, retry_auth=retry_auth):
                pass
        except TrustboxError:
            pass

    def _start_upload(self, repo: str) -> str:
        with self._request("POST", f"/v2/{repo}/blobs/uploads/", repo, True, headers={"Content-Length": "0"}) as resp:
            if resp.status_code != 202 or not resp.headers.get("location"):
                raise _response_error(resp, f"cannot start blob upload to {self.host}/{repo}")
            return self._url_from_location(resp.headers["location"])

    def _url_from_location(self, loc: str) -> str:
        return urljoin(self.ping() + "/", loc)

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        return location + ("&" if "?" in location else "?") + urlencode({"digest": digest})

    def upload_blob(
        self,
        repo: str,
        desc: Descriptor,
        chunks: Iterable[bytes],
        progress: Progress | None = None,
        *,
        verified: bool = False,
    ) -> None:
        """Upload a blob: one ``PUT`` when small, ``PATCH`` chunks then ``PUT`` when large.

        ``chunks`` is verified against ``desc`` while it is sent (``verified``: the stream already
        verifies itself, e.g. :meth:`open_blob`'s, and raises DigestMismatchError at the first
        excess byte or at its end); a mismatch aborts the upload session.
        """
        location = self._start_upload(repo)
        verified_chunks = chunks if verified else verify_chunks(chunks, desc)

        def counted(it: Iterable[bytes]) -> Iterator[bytes]:
            for b in it:
                if progress is not None:
                    progress(len(b))
                yield b

        try:
            if desc.size <= self.options.monolithic_limit:
                with self._request(
                    "PUT",
                    self._with_digest(location, desc.digest),
                    repo,
                    True,
                    headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
                    content=counted(verified_chunks),
                    retry_auth=False,
                ) as resp:
                    self._check_blob_created(resp, repo, desc)
                return
            slicer = _Slicer(verified_chunks)
            offset = 0
            while offset < desc.size:
                length = min(self.options.chunk_size, desc.size - offset)
                with self._request(
                    "PATCH",
                    location,
                    repo,
                    True,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(length),
                        "Content-Range": f"{offset}-{offset + length - 1}",
                    },
                    content=counted(slicer.take(length)),
                    retry_auth=False,
                ) as resp:
                    if resp.status_code != 202:
                        raise _response_error(resp, f"blob upload chunk to {self.host}/{repo} failed")
                offset += length
                if resp.headers.get("location"):
                    location = self._url_from_location(resp.headers["location"])
            slicer.finish()
            with self._request(
                "PUT", self._with_digest(location, desc.digest), repo, True, headers={"Content-Length": "0"}, retry_auth=False
            ) as resp:
                self._check_blob_created(resp, repo, desc)
        except (DigestMismatchError, RegistryResponseError, NetworkError):
            self._cancel_upload(location, repo)
            raise

    def _check_blob_created(self, resp: httpx.Response, repo: str, desc: Descriptor) -> None:
        if resp.status_code != 201:
            raise _response_error(resp, f"upload of blob {desc.digest} to {self.host}/{repo} failed")
        got = resp.headers.get("docker-content-digest")
        if got and got != desc.digest:
            raise DigestMismatchError(f"registry stored blob {desc.digest} under a different digest {got}")

    @contextmanager
    def open_blob(self, repo: str, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        """Stream a blob (following redirects); the chunks are verified against ``desc`` and
        never more than ``desc.size`` bytes are read (raises DigestMismatchError beyond).

        Once a blob came from this registry as a plain ``200`` (no redirect), the next ones are
        read by the standard library's client (:func:`~trustbox.client.capped.plain_get`, the fast path); any other
        answer there hands the request back to httpx, like every other request."""
        check_sha256(desc.digest)
        path, what = f"/v2/{repo}/blobs/{desc.digest}", f"blob {desc.digest}"
        with self._plain_blob(repo, path, desc.size) as plain:
            if plain is not None:
                yield verify_chunks(self._blob_chunks(capped_chunks(
                    plain.chunks(desc.size), plain.content_length, plain.content_encoding, desc.size, what,
                    error=DigestMismatchError), desc), desc)
                return
        with self._request("GET", path, repo, follow=True) as resp:
            _expect_ok(
                resp, f"blob {desc.digest} not found in {self.host}/{repo}",
                f"GET blob {desc.digest} from {self.host}/{repo}",
            )
            # served by the registry itself (not redirected to storage): the fast path may take the next ones
            self._plain_blobs = self.options.transport is None and resp.request.url == httpx.URL(self._url(path))
            yield verify_chunks(self._blob_chunks(iter_capped(
                resp, desc.size, what, error=DigestMismatchError, chunk_size=BLOB_CHUNK), desc), desc)

    @contextmanager
    def _plain_blob(self, repo: str, path: str, size: int) -> Iterator[PlainBody | None]:
        """The blob's body from a plain ``GET`` with the credentials held (None: use httpx; see
        :func:`~trustbox.client.capped.plain_get`). Only once a blob came from the registry itself through httpx, never
        with a custom transport (tests, mocks) or through a proxy, and not for blobs under
        :data:`PLAIN_MIN_SIZE` (a connection of their own would cost more than httpx's kept-alive one)."""
        url = self._url(path)
        if not self._plain_blobs or size < PLAIN_MIN_SIZE or uses_proxy(url):
            yield None
            return
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                   **self._auth_header(self._scope_key(repo, False))}
        context = self._ssl_context() if url.startswith("https:") else None
        with plain_get(url, headers, context, self.options.timeout) as body:
            if body is None:  # a redirect, a new token, an error: httpx from now on
                self._plain_blobs = False
            yield body

    def _blob_chunks(self, chunks: Iterator[bytes], desc: Descriptor) -> Iterator[bytes]:
        """``chunks`` of a blob body with the transport's errors in trustbox's words: a body that
        ends early is wrong content (DigestMismatchError, docker's "unexpected EOF"), any other
        failure a NetworkError."""
        received = 0
        try:
            for b in chunks:
                received += len(b)
                yield b
        except BODY_ENDED_EARLY as exc:
            # what distribution does when the stored file shrank: content, not connectivity, is wrong
            raise DigestMismatchError(
                f"blob {desc.digest}: incomplete content from {self.host}: got {received} of {desc.size} bytes ({exc})"
            ) from None
        except BODY_READ_FAILED as exc:
            raise NetworkError(f"download of blob {desc.digest} from {self.host} failed: {exc}") from None

    def download_blob(self, repo: str, desc: Descriptor, dest: Path, progress: Progress | None = None) -> Path:
        """Download a blob to ``dest`` atomically, verifying digest and size while it streams."""
        with self.open_blob(repo, desc) as chunks:
            return copy_verified(chunks, desc, dest, "blob", progress)

    # -- manifests ---------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str, expected: Descriptor | None = None) -> Manifest:
        """Fetch a manifest by tag or digest and verify it (digest reference, ``expected``
        descriptor, and the ``Docker-Content-Digest`` header all have to agree)."""
        limit = min(expected.size, MAX_MANIFEST_BYTES) if expected is not None else MAX_MANIFEST_BYTES
        what = f"manifest {expected.digest if expected is not None else reference}"
        with self._request("GET", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": MANIFEST_ACCEPT}, follow=True) as resp:
            _expect_ok(
                resp, f"manifest unknown: {self.host}/{repo}:{reference} not found",
                f"GET manifest {self.host}/{repo}:{reference}",
            )
            try:
                raw, digest = read_manifest(resp, reference, limit, what)
            except httpx.HTTPError as exc:
                raise NetworkError(f"download of manifest {reference} from {self.host} failed: {exc}") from None
            media_type = resp.headers.get("content-type", "").split(";")[0].strip()
        if expected is not None:
            if len(raw) != expected.size:
                raise DigestMismatchError(f"manifest {expected.digest}: size mismatch: expected {expected.size} bytes, got {len(raw)}")
            if digest != expected.digest:
                raise DigestMismatchError(f"manifest {expected.digest}: digest mismatch: content hashes to {digest}")
        return parse_manifest(raw, media_type, digest)

    def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        """Upload a manifest under a tag or its digest; return the digest the registry reports."""
        with self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo,
            True,
            headers={"Content-Type": manifest.media_type},
            content=manifest.raw,
        ) as resp:
            if resp.status_code not in (200, 201):
                raise _response_error(resp, f"upload of manifest {reference} to {self.host}/{repo} failed")
        got = str(resp.headers.get("docker-content-digest", manifest.digest))
        if got != manifest.digest:
            raise DigestMismatchError(f"registry stored manifest {manifest.digest} under a different digest {got}")
        return got

    def delete_manifest(self, repo: str, digest: str) -> None:
        """``DELETE /v2/<repo>/manifests/<digest>`` (removes the manifest and every tag naming it).

        Raises:
            NotFoundError: the registry has no such manifest.
            RegistryResponseError: the registry refused (e.g. ``UNSUPPORTED`` when deletes are off).
            NetworkError, RegistryAuthError: see :meth:`_send`.
        """
        check_sha256(digest)
        with self._request("DELETE", f"/v2/{repo}/manifests/{digest}", repo, True) as resp:
            if resp.status_code == 404:
                raise NotFoundError(f"manifest {digest} not found in {self.host}/{repo}")
            if resp.status_code not in (200, 202, 204):
                raise _response_error(resp, f"delete of manifest {digest} in {self.host}/{repo} failed")

    def head_manifest(self, repo: str, reference: str) -> Descriptor | None:
        """Digest, size and media type of a manifest without downloading it (None if absent)."""
        with self._request("HEAD", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": MANIFEST_ACCEPT}) as resp:
            pass
        if resp.status_code == 404:
            return None
        if resp.status_code != 200 or not resp.headers.get("docker-content-digest"):
            return None
        try:
            size = int(resp.headers.get("content-length", "-1"))
        except ValueError:
            size = -1
        return Descriptor(resp.headers.get("content-type", ""), resp.headers["docker-content-digest"], max(size, 0))

    def referrers(self, repo: str, digest: str) -> list[Descriptor] | None:
        """The manifests whose ``subject`` is ``digest`` (``GET /v2/<repo>/referrers/<digest>``, OCI
        distribution 1.1); None when the registry does not offer the API (distribution 2.8 answers
        404 or 405).

        Raises:
            NetworkError, RegistryAuthError: the registry cannot be reached or refuses the request.
            RegistryResponseError: an error status other than 404 / 405.
            DigestMismatchError: the answer is not an image index (or larger than 4 MiB).
        """
        check_sha256(digest)
        with self._request(
            "GET", f"/v2/{repo}/referrers/{digest}", repo, headers={"Accept": "application/vnd.oci.image.index.v1+json"}
        ) as resp:
            if resp.status_code in (404, 405):
                return None
            if resp.status_code != 200:
                raise _response_error(resp, f"referrers of {digest} in {self.host}/{repo}")
            try:
                raw = read_capped(resp, MAX_MANIFEST_BYTES, f"referrers of {digest}", error=DigestMismatchError)
            except httpx.HTTPError as exc:
                raise NetworkError(f"referrers of {digest} from {self.host}: {exc}") from None
        try:
            index = parse_manifest(raw, resp.headers.get("content-type", "").split(";")[0].strip())
        except ImageError as exc:
            raise DigestMismatchError(f"referrers of {digest} in {self.host}/{repo}: {exc.message}") from None
        if not index.is_index:
            raise DigestMismatchError(f"referrers of {digest} in {self.host}/{repo}: not an image index")
        return list(index.manifests)

    def list_tags(self, repo: str) -> list[str]:
        """All tags of a repository (following ``Link`` pagination)."""
        tags: list[str] = []
        url: str | None = f"/v2/{repo}/tags/list"
        while url:
            with self._request("GET", url, repo) as resp:
                _expect_ok(
                    resp, f"repository {self.host}/{repo} not found",
                    f"tags list of {self.host}/{repo}",
                )
                try:
                    doc = loads(read_capped(resp, LIST_BODY_LIMIT, f"tags list of {self.host}/{repo}"))
                except httpx.HTTPError as exc:
                    raise NetworkError(f"tags list of {self.host}/{repo}: {exc}") from None
                except FormatError:
                    raise NetworkError(f"tags list of {self.host}/{repo} is not JSON") from None
            names = doc.get("tags") if isinstance(doc, dict) else ()
            if names is not None and not isinstance(names, list):
                raise NetworkError(f"tags list of {self.host}/{repo} has no list of tags")
            tags.extend(str(t) for t in (names or []))
            link = resp.headers.get("link", "")
            m = re.match(r"\s*<([^>]+)>\s*;\s*rel=\"?next\"?", link)
            url = m.group(1) if m else None
        return tags


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """Scheme, host and port of ``url`` (for dropping credentials on cross-origin redirects);
    None for a URL httpx cannot parse (sending to it then fails)."""
    try:
        u = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return u.scheme, u.host, u.port


class _Slicer:
    """Cut one chunk stream into consecutive byte ranges, each streamed (never joined)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._left = b""

    def take(self, n: int) -> Iterator[bytes]:
        """Yield exactly ``n`` bytes (fewer only if the stream ends; the verifier then raises)."""
        while n > 0:
            if not self._left:
                self._left = next(self._it, b"")
                if not self._left:
                    return
            piece, self._left = self._left[:n], self._left[n:]
            n -= len(piece)
            yield piece

    def finish(self) -> None:
        """Drain the stream so its end-of-stream verification runs."""
        if self._left:
            raise DigestMismatchError("blob is larger than its descriptor says")
        for extra in self._it:
            if extra:
                raise DigestMismatchError("blob is larger than its descriptor says")


# --- trust sign's manifest lookup ------------------------------------------------------


@dataclass(frozen=True)
class ManifestInfo:
    """What a trust target records for a manifest."""

    sha256_hex: str
    length: int
    media_type: str = ""


def _registry_hosts(ref: ImageRef, insecure: bool) -> list[str]:
    domain = "registry-1.docker.io" if ref.official else ref.domain
    if ref.loopback or insecure:
        # like docker for insecure (incl. loopback) registries: HTTPS first, then plain HTTP
        return [f"https://{domain}", f"http://{domain}"]
    return [f"https://{domain}"]


def _authorization(http: httpx.Client, resp: httpx.Response, scope: str, creds: Credentials) -> str | None:
    """The Authorization value answering the 401 ``resp``, None if it cannot be answered.

    Raises:
        NetworkError: the token service refused or is unreachable (httpx.HTTPError passes through).
    """
    auth = ChallengeAuth(creds)
    auth.remember(resp)
    try:
        return auth.authorization(lambda _realm: http, scope)
    except TokenRefusedError as exc:
        if exc.status == 200:
            return None
        raise NetworkError(f"cannot get a registry token from {exc.realm}: HTTP {exc.status}") from None


def _get(http: httpx.Client, url: str, headers: dict[str, str], ref: ImageRef) -> tuple[httpx.Response, bytes, str]:
    """GET a manifest: the (released) response and, for a 200, its body (at most 4 MiB; other
    bodies: at most 64 KiB), checked by :func:`read_manifest`. Raises ResponseTooLargeError beyond
    4 MiB, DigestMismatchError, httpx.HTTPError."""
    with open_response(http, "GET", url, headers=headers) as resp:
        if resp.status_code != 200:
            return resp, b"", ""
        return resp, *read_manifest(resp, ref.reference, MAX_MANIFEST_BYTES, f"manifest of {ref}", error=ResponseTooLargeError)


def lookup_manifest(
    ref: ImageRef,
    *,
    insecure: bool = False,
    ca_files: Sequence[Path] = (),
    credentials: Credentials | None = None,
    http: httpx.Client | None = None,
) -> ManifestInfo:
    """``trust sign``'s read of a tag's manifest (no daemon): GET ``/v2/<name>/manifests/<tag>``
    (HTTPS, then plain HTTP for loopback and ``insecure`` registries), answering a challenge with
    ``credentials``, and describe the exact bytes (read and checked by :func:`read_manifest`, as
    the registry client reads them).

    Raises:
        NotFoundError: no tag, or the registry has no such manifest.
        NetworkError: the registry cannot be reached or answers another error.
        HashMismatchError: the bytes do not match the digest reference or ``Docker-Content-Digest``.
    """
    if not ref.tag and not ref.digest:
        raise NotFoundError(f"no tag specified for {ref.name}")
    creds = credentials or Credentials()
    client = http or make_http_client(ca_files)
    reference = ref.digest or ref.tag
    errors: list[str] = []
    try:
        for base in _registry_hosts(ref, insecure):
            url = f"{base}/v2/{ref.path}/manifests/{reference}"
            headers = {"Accept": MANIFEST_ACCEPT}
            try:
                resp, data, digest = _get(client, url, headers, ref)
                if resp.status_code == 401 and "www-authenticate" in resp.headers:
                    auth = _authorization(client, resp, f"repository:{ref.path}:pull", creds)
                    if auth:
                        resp, data, digest = _get(client, url, {**headers, "Authorization": auth}, ref)
            except httpx.HTTPError as exc:
                errors.append(f"{base}: {exc}")
                continue
            if resp.status_code == 404:
                raise NotFoundError(f"manifest for {ref} not found in the registry")
            if resp.status_code != 200:
                raise NetworkError(f"registry answered HTTP {resp.status_code} for the manifest of {ref}")
            return ManifestInfo(digest.removeprefix("sha256:"), len(data), resp.headers.get("content-type", ""))
    finally:
        if http is None:
            client.close()
    raise NetworkError(f"cannot reach the registry for {ref}: " + "; ".join(errors))


def check_manifest(data: bytes, sha256_hex: str, length: int) -> None:
    """Raise HashMismatchError unless manifest bytes match a trusted target's hash and length."""
    if len(data) != length:
        raise HashMismatchError(f"manifest is {len(data)} bytes but the trusted target says {length}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256_hex:
        raise HashMismatchError(f"manifest digest sha256:{actual} differs from the trusted sha256:{sha256_hex}")
