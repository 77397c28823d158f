"""The capped reader (``client/capped.py``) and the trust client's and ``lookup_manifest``'s use of
it, against ``httpx.MockTransport`` handlers whose 64 MiB bodies count what the client took."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import pytest

from tests.client.endless import CHUNK, Bodies
from trustbox.client.capped import (
    SMALL_BODY_LIMIT,
    TOKEN_BODY_LIMIT,
    ResponseTooLargeError,
    open_response,
    read_capped,
    read_head,
    read_token,
    send,
)
from trustbox.client.dockerenv import Credentials
from trustbox.client.errors import BadResponseError, MetaNotFoundError, ServerRejectedError, UnauthorizedError
from trustbox.client.images.distribution import lookup_manifest
from trustbox.client.transport import basic_auth_header
from trustbox.client.trust.remote import MAX_KEY_SIZE, RemoteStore
from trustbox.errors import NetworkError, TrustboxError
from trustbox.oci.manifest import MAX_MANIFEST_BYTES
from trustbox.oci.reference import parse_reference

SERVER = "https://trust.example.test"
GUN = "example.test/app"
Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _one(response: httpx.Response) -> httpx.Client:
    return _client(lambda req: response)


# --- the reader ------------------------------------------------------------------------------------


def test_read_head_stops_at_the_cap() -> None:
    bodies = Bodies()
    with open_response(_one(bodies.response(500)), "GET", "https://x.test/") as resp:
        assert read_head(resp) == b" " * SMALL_BODY_LIMIT
    assert bodies.made[0].sent == SMALL_BODY_LIMIT


def test_read_head_of_a_short_body() -> None:
    with open_response(_one(httpx.Response(404, content=b'{"errors":[]}')), "GET", "https://x.test/") as resp:
        assert read_head(resp) == b'{"errors":[]}'


def test_read_capped_refuses_past_the_limit() -> None:
    bodies = Bodies()
    with open_response(_one(bodies.response()), "GET", "https://x.test/") as resp:
        with pytest.raises(ResponseTooLargeError, match=r"^thing: more than 100000 bytes$"):
            read_capped(resp, 100_000, "thing")
    bodies.assert_bounded(100_000, CHUNK)


def test_announced_length_is_refused_before_reading() -> None:
    bodies = Bodies()
    resp_in = bodies.response(headers={"Content-Length": str(1 << 30)})
    with open_response(_one(resp_in), "GET", "https://x.test/") as resp:
        with pytest.raises(ResponseTooLargeError, match="1073741824 bytes announced, more than 1000"):
            read_capped(resp, 1000, "thing")
    assert bodies.made[0].sent == 0


def test_an_encoded_body_is_refused_not_inflated() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))
    assert len(bomb) < 128 * 1024
    response = httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=bomb)
    with open_response(_one(response), "GET", "https://x.test/") as resp:
        with pytest.raises(ResponseTooLargeError, match="gzip-encoded body"):
            read_capped(resp, MAX_MANIFEST_BYTES, "manifest")
    response = httpx.Response(500, headers={"Content-Encoding": "gzip"}, content=bomb)
    with open_response(_one(response), "GET", "https://x.test/") as resp:
        assert read_head(resp) == b""


def test_send_streams_asks_for_identity_and_does_not_follow_redirects() -> None:
    seen: list[httpx.Request] = []
    bodies = Bodies()

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return bodies.response(302, {"Location": "https://elsewhere.test/"})

    resp = send(_client(handler), "GET", "https://x.test/v2/")
    resp.close()
    assert resp.status_code == 302 and len(seen) == 1
    assert seen[0].headers["accept-encoding"] == "identity"
    assert bodies.made[0].sent == 0


def test_an_unusable_url_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="invalid URL"):
        send(_one(httpx.Response(200)), "GET", "https://[::1/token")


def test_a_small_announced_body_is_read_on_release_an_endless_one_is_not() -> None:
    bodies = Bodies()
    with open_response(_one(bodies.response(401, {"Content-Length": "100"})), "GET", "https://x.test/"):
        pass
    with open_response(_one(bodies.response(401)), "GET", "https://x.test/"):
        pass
    assert [b.sent for b in bodies.made] == [CHUNK, 0]  # the first chunk (of a lying length) only


@pytest.mark.parametrize(("body", "token"), [
    (b'{"token":"t1","access_token":"t2"}', "t1"),
    (b'{"access_token":"t2"}', "t2"),
    (b'{"token":""}', None),
    (b'{"token":7}', None),
    (b'["token"]', None),
    (b"not json", None),
    (b"[" * 200_000 + b"]" * 200_000, None),  # nesting that would overflow the recursion limit
])
def test_read_token(body: bytes, token: str | None) -> None:
    with open_response(_one(httpx.Response(200, content=body)), "GET", "https://x.test/") as resp:
        assert read_token(resp, "token server") == token


def test_read_token_is_capped() -> None:
    bodies = Bodies()
    with open_response(_one(bodies.response(prefix=b'{"token":"')), "GET", "https://x.test/") as resp:
        with pytest.raises(ResponseTooLargeError):
            read_token(resp, "token server")
    bodies.assert_bounded(TOKEN_BODY_LIMIT, CHUNK)


# --- the trust client ---------------------------------------------------------------------------------


def _store(handler: Handler, credentials: Credentials | None = None) -> RemoteStore:
    return RemoteStore(SERVER, GUN, http=_client(handler), credentials=credentials)


def test_endless_ping_is_not_read_and_its_challenge_is_kept() -> None:
    bodies = Bodies()
    challenge = 'Basic realm="notary"'

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/v2/":
            return bodies.response(401, {"WWW-Authenticate": challenge})
        assert req.headers["authorization"] == basic_auth_header("u", "p")
        return httpx.Response(200, content=b"{}")

    assert _store(handler, Credentials("u", "p")).get_sized("timestamp", 1024) == b"{}"
    assert bodies.made[0].sent == 0


def test_endless_token_answer_is_refused() -> None:
    bodies = Bodies()

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.test":
            return bodies.response(prefix=b'{"token":"')
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.test/t",service="n"'})

    with pytest.raises(ResponseTooLargeError, match="token server https://auth.test/t: more than 1048576 bytes"):
        _store(handler).get_sized("timestamp", 1024)
    bodies.assert_bounded(TOKEN_BODY_LIMIT, CHUNK)


@pytest.mark.parametrize(("status", "error", "limit"), [
    (404, MetaNotFoundError, 0),
    (401, UnauthorizedError, 0),
    (500, NetworkError, 0),
    (400, ServerRejectedError, SMALL_BODY_LIMIT),
])
def test_endless_error_bodies_of_the_trust_server(status: int, error: type[TrustboxError], limit: int) -> None:
    bodies = Bodies()
    store = _store(lambda req: bodies.response(status))
    with pytest.raises(error):
        store.get_sized("timestamp", 1024)
    with pytest.raises(error):
        store.get_key("timestamp")
    with pytest.raises(error):
        store.post_update([("targets", b"{}")])
    assert len(bodies.made) >= 3 and all(b.sent <= limit for b in bodies.made)


def test_endless_key_is_refused() -> None:
    bodies = Bodies()
    with pytest.raises(BadResponseError, match=r"timestamp\.key: more than 65536 bytes"):
        _store(lambda req: bodies.response(200, prefix=b'{"keytype":"')).get_key("timestamp")
    bodies.assert_bounded(MAX_KEY_SIZE, CHUNK)


def test_endless_answer_to_an_accepted_update_is_not_read() -> None:
    bodies = Bodies()
    _store(lambda req: bodies.response(200)).post_update([("targets", b"{}")])
    assert bodies.made[0].sent == 0


def test_rejected_update_message_comes_from_a_small_body() -> None:
    body = (b'{"errors":[{"code":"INVALID_UPDATE","message":"update invalid",'
            b'"detail":{"Error":{"Msg":"bad root"}}}]}')
    with pytest.raises(ServerRejectedError, match=r"^trust server rejected operation: update invalid bad root$"):
        _store(lambda req: httpx.Response(400, content=body)).post_update([("targets", b"{}")])
    nested = b'{"errors":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ServerRejectedError, match=r"^trust server rejected operation$"):
        _store(lambda req: httpx.Response(400, content=nested)).post_update([("targets", b"{}")])


# --- lookup_manifest ------------------------------------------------------------------------------------


REF = "127.0.0.1:5000/team/app:v1"


def test_lookup_manifest_refuses_an_endless_manifest() -> None:
    bodies = Bodies()
    with pytest.raises(ResponseTooLargeError, match=f"manifest of {REF}: more than {MAX_MANIFEST_BYTES} bytes"):
        lookup_manifest(parse_reference(REF), http=_client(lambda req: bodies.response(200)))
    bodies.assert_bounded(MAX_MANIFEST_BYTES, CHUNK)


def test_lookup_manifest_with_endless_challenge_and_token() -> None:
    bodies = Bodies()

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.test":
            return bodies.response(prefix=b'{"token":"')
        return bodies.response(401, {"WWW-Authenticate": 'Bearer realm="https://auth.test/t"'})

    with pytest.raises(ResponseTooLargeError, match="token server https://auth.test/t"):
        lookup_manifest(parse_reference(REF), http=_client(handler))
    assert [b.sent for b in bodies.made][0] == 0  # the 401's body: not read
    bodies.assert_bounded(TOKEN_BODY_LIMIT, CHUNK)


@pytest.mark.parametrize(("status", "error"), [(404, "not found"), (500, "HTTP 500")])
def test_lookup_manifest_error_bodies_are_not_read(status: int, error: str) -> None:
    bodies = Bodies()
    with pytest.raises(TrustboxError, match=error):
        lookup_manifest(parse_reference(REF), http=_client(lambda req: bodies.response(status)))
    assert bodies.made[0].sent == 0


@pytest.mark.parametrize(("name", "text"), [
    ("ErrBadHierarchy", "Metadata hierarchy is incomplete: "),
    ("ErrBadRoot", "The root metadata is invalid: "),
    ("ErrBadTargets", "The targets metadata is invalid: "),
    ("ErrBadSnapshot", "The snapshot metadata is invalid: "),
    ("ErrValidation", "An error occurred during validation: "),
])
def test_rejected_update_is_worded_as_notarys_typed_error(name: str, text: str) -> None:
    # notary's client decodes errors[0].detail into the typed validation error and prints its text
    body = (b'{"errors":[{"code":"INVALID_UPDATE","message":"Update sent by the client is invalid.",'
            b'"detail":{"Name":"' + name.encode() + b'","Error":{"Msg":"no snapshot was included"}}}]}')
    with pytest.raises(ServerRejectedError) as info:
        _store(lambda req: httpx.Response(400, content=body)).post_update([("targets", b"{}")])
    assert info.value.message == text + "no snapshot was included"
