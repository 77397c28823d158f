"""Signing as a separate service: a small HTTP/JSON signer app and the matching client.

The service (``trustbox serve signer``) holds the keys (a :class:`LocalSigner` over its own
database, keys encrypted at rest) and offers the :class:`~trustbox.trustserver.signer.Signer`
operations; every request needs ``Authorization: Bearer <token>``. The trust server uses
:class:`RemoteSigner` when started with ``--signer URL``.

API (JSON bodies, byte strings base64):

* ``POST /v1/keys`` ``{"gun","role","algorithm"}`` -> ``{"keytype","public"}`` (new key)
* ``POST /v1/keys/get`` ``{"gun","keyid"}`` -> key or 404
* ``POST /v1/keys/latest`` ``{"gun","role"}`` -> key or 404
* ``POST /v1/sign`` ``{"gun","keyid","message"}`` -> ``{"method","sig"}``
* ``GET /health`` -> ``{}``
"""

from __future__ import annotations

import base64
import hmac
import json
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from trustbox.errors import KeyStoreError, NetworkError, TrustboxError
from trustbox.trustserver.config import KEY_ALGORITHMS
from trustbox.trustserver.signer import LocalSigner
from trustbox.tuf.keys import PublicKey

MAX_REQUEST = 1024 * 1024
MAX_RESPONSE = 64 * 1024  # a key or a signature; the trust server never reads more of an answer


def _key_body(key: PublicKey | None) -> tuple[int, dict[str, Any]]:
    if key is None:
        return 404, {"error": "no such key"}
    return 200, {"keytype": key.keytype, "public": base64.b64encode(key.public).decode()}


class SignerApp:
    """ASGI app exposing a LocalSigner over HTTP."""

    def __init__(self, signer: LocalSigner, token: str) -> None:
        if not token:
            raise ValueError("the signer service needs a token")
        self.signer = signer
        self._token = token.encode()
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="trustbox-signer")

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization" and value.startswith(b"Bearer "):
                return hmac.compare_digest(value[7:], self._token)
        return False

    def _op(self, path: str, req: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        s = self.signer
        if path == "/v1/keys":
            algorithm = req.get("algorithm")
            if algorithm not in KEY_ALGORITHMS:
                return 400, {"error": "unknown algorithm"}
            return _key_body(s.create_key(str(req["gun"]), str(req["role"]), str(algorithm)))
        if path == "/v1/keys/get":
            return _key_body(s.public_key(str(req["gun"]), str(req["keyid"])))
        if path == "/v1/keys/latest":
            return _key_body(s.latest_key(str(req["gun"]), str(req["role"])))
        if path == "/v1/sign":
            message = base64.b64decode(str(req["message"]), validate=True)
            try:
                method, sig = s.sign(str(req["gun"]), str(req["keyid"]), message)
            except KeyStoreError:
                return 404, {"error": "no such key"}
            return 200, {"method": method, "sig": base64.b64encode(sig).decode()}
        return 404, {"error": "not found"}

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status, body = await self._handle(scope, receive)
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _handle(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]]:
        import asyncio

        if scope["method"] == "GET" and scope["path"] == "/health":
            return 200, {}
        if not self._authorized(scope.get("headers", [])):
            return 401, {"error": "unauthorized"}
        if scope["method"] != "POST":
            return 404, {"error": "not found"}
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if len(raw) > MAX_REQUEST:
                return 413, {"error": "request too large"}
            if not msg.get("more_body"):
                break
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("not an object")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._op, scope["path"], req)
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "bad request"}
        except TrustboxError as exc:
            return 500, {"error": str(exc)}


class RemoteSigner:
    """A :class:`~trustbox.trustserver.signer.Signer` talking to ``trustbox serve signer``."""

    def __init__(self, url: str, token: str, ca_file: str | None = None, transport: httpx.BaseTransport | None = None):
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._client = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=verify,
            transport=transport,
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """POST one operation; the answer's JSON object, or None for 404.

        Raises NetworkError when the service is unreachable, answers another status, or sends a body
        that is larger than ``MAX_RESPONSE`` or not a JSON object (never read past the bound)."""
        try:
            with self._client.stream("POST", path, json=body, headers={"Accept-Encoding": "identity"}) as r:
                if r.status_code == 404:
                    return None
                if r.headers.get("content-encoding", "identity") != "identity":
                    raise NetworkError("signer service sent an encoded answer")
                raw = bytearray()
                for chunk in r.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_RESPONSE:
                        raise NetworkError(f"signer service sent more than {MAX_RESPONSE} bytes")
        except httpx.HTTPError as exc:
            raise NetworkError(f"signer service unreachable: {exc}") from exc
        if r.status_code != 200:
            text = bytes(raw[:200]).decode("utf-8", "replace")
            raise NetworkError(f"signer service answered {r.status_code}: {text}")
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise NetworkError("signer service sent an answer that is not a JSON object")
        return data

    @staticmethod
    def _field(d: dict[str, Any], name: str, b64: bool = False) -> Any:
        """``d[name]`` (base64-decoded when ``b64``). Raises NetworkError when it is missing or malformed."""
        value = d.get(name)
        if not isinstance(value, str):
            raise NetworkError(f"signer service sent an answer without {name!r}")
        if not b64:
            return value
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise NetworkError(f"signer service sent a malformed {name!r}") from None

    @classmethod
    def _key(cls, d: dict[str, Any] | None) -> PublicKey | None:
        if d is None:
            return None
        return PublicKey(cls._field(d, "keytype"), cls._field(d, "public", b64=True))

    def create_key(self, gun: str, role: str, algorithm: str) -> PublicKey:
        """Create a key on the service."""
        key = self._key(self._post("/v1/keys", {"gun": gun, "role": role, "algorithm": algorithm}))
        if key is None:
            raise NetworkError("signer service did not create a key")
        return key

    def public_key(self, gun: str, keyid: str) -> PublicKey | None:
        """A key the service holds for ``gun``."""
        return self._key(self._post("/v1/keys/get", {"gun": gun, "keyid": keyid}))

    def latest_key(self, gun: str, role: str) -> PublicKey | None:
        """The newest key of ``role`` for ``gun`` on the service."""
        return self._key(self._post("/v1/keys/latest", {"gun": gun, "role": role}))

    def sign(self, gun: str, keyid: str, message: bytes) -> tuple[str, bytes]:
        """Sign on the service."""
        d = self._post("/v1/sign", {"gun": gun, "keyid": keyid, "message": base64.b64encode(message).decode()})
        if d is None:
            raise KeyStoreError(f"the signer service holds no key {keyid[:12]} for {gun}")
        return str(self._field(d, "method")), bytes(self._field(d, "sig", b64=True))

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
