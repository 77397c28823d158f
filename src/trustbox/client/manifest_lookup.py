"""Read a tag's manifest from a registry (no daemon): digest = sha256 of the bytes, length = size.

Plain HTTP is used for loopback registries and ``--insecure-registry`` hosts (after trying
HTTPS), TLS otherwise; Bearer/Basic challenges are answered with ``config.json`` credentials.
Requests are streamed and bodies read through :mod:`trustbox.client.capped`: the manifest at most
4 MiB (the distribution registry's own limit), a token answer 1 MiB, error bodies 64 KiB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from trustbox.client.capped import open_response, read_capped
from trustbox.client.dockerenv import Credentials
from trustbox.client.transport import ChallengeAuth, TokenRefusedError, make_http_client
from trustbox.errors import HashMismatchError, NetworkError, NotFoundError
from trustbox.oci.manifest import MAX_MANIFEST_BYTES
from trustbox.oci.reference import ImageRef

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    )
)


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


def _get(http: httpx.Client, url: str, headers: dict[str, str], ref: ImageRef) -> tuple[httpx.Response, bytes]:
    """GET a manifest: the (released) response and, for a 200, its body (at most 4 MiB; other
    bodies: at most 64 KiB). Raises NetworkError beyond 4 MiB, httpx.HTTPError."""
    with open_response(http, "GET", url, headers=headers) as resp:
        if resp.status_code != 200:
            return resp, b""
        return resp, read_capped(resp, MAX_MANIFEST_BYTES, f"manifest of {ref}")


def lookup_manifest(
    ref: ImageRef,
    *,
    insecure: bool = False,
    ca_files: Sequence[Path] = (),
    credentials: Credentials | None = None,
    http: httpx.Client | None = None,
) -> ManifestInfo:
    """GET ``/v2/<name>/manifests/<tag>`` and describe the exact bytes."""
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
                resp, data = _get(client, url, headers, ref)
                if resp.status_code == 401 and "www-authenticate" in resp.headers:
                    auth = _authorization(client, resp, f"repository:{ref.path}:pull", creds)
                    if auth:
                        resp, data = _get(client, url, {**headers, "Authorization": auth}, ref)
            except httpx.HTTPError as exc:
                errors.append(f"{base}: {exc}")
                continue
            if resp.status_code == 404:
                raise NotFoundError(f"manifest for {ref} not found in the registry")
            if resp.status_code != 200:
                raise NetworkError(f"registry answered HTTP {resp.status_code} for the manifest of {ref}")
            digest = hashlib.sha256(data).hexdigest()
            announced = resp.headers.get("docker-content-digest", "")
            if announced.startswith("sha256:") and announced != "sha256:" + digest:
                raise HashMismatchError(f"registry announced digest {announced} for bytes hashing to sha256:{digest}")
            if ref.digest and ref.digest.startswith("sha256:") and ref.digest != "sha256:" + digest:
                raise HashMismatchError(f"manifest bytes do not match {ref.digest}")
            return ManifestInfo(digest, len(data), resp.headers.get("content-type", ""))
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
