"""Scopes, challenges and 401 bodies, byte-compared with notary-server 0.7's transcript."""

from __future__ import annotations

import re

import pytest

from tests.testdata import FIXTURES
from trustbox.auth.middleware import notary_required_scopes, registry_required_scopes
from trustbox.auth.scopes import (
    CATALOG,
    Scope,
    basic_challenge,
    bearer_challenge,
    denied_body,
    format_scope,
    merge_scopes,
    parse_scope,
    parse_scopes,
    repository,
    satisfies,
    unauthorized_body,
)
from trustbox.errors import FormatError

TRANSCRIPT = FIXTURES / "transcripts" / "04-token-auth-challenges.txt"
REALM, SERVICE = "https://auth.example.test/token", "notary.example.test"


def _exchanges() -> list[tuple[str, str, int, str | None, bytes]]:
    text = TRANSCRIPT.read_text()
    out = []
    for block in text.split("### ")[1:]:
        head, _, rest = block.partition("\n")
        method, path = head.split(" ", 1)
        headers, _, body = rest.partition("\n\n")
        status = int(headers.split("\n", 1)[0].split()[1])
        m = re.search(r"^Www-Authenticate: (.*)$", headers, re.M)
        clen = int(re.search(r"^Content-Length: (\d+)$", headers, re.M).group(1))  # type: ignore[union-attr]
        out.append((method, path.strip(), status, m.group(1) if m else None, body.encode()[:clen]))
    return out


EXCHANGES = _exchanges()


def test_transcript_parsed() -> None:
    assert len(EXCHANGES) == 7
    assert sum(1 for e in EXCHANGES if e[2] == 401) == 6


@pytest.mark.parametrize("method,path,status,challenge,body", EXCHANGES, ids=[f"{e[0]} {e[1]}" for e in EXCHANGES])
def test_notary_challenges_byte_identical(method: str, path: str, status: int, challenge: str | None, body: bytes) -> None:
    required = notary_required_scopes(method, path)
    if status == 200:
        assert required is None
        return
    assert required is not None
    assert bearer_challenge(REALM, SERVICE, required) == challenge
    assert unauthorized_body(required) == body  # includes Go's trailing newline (Content-Length)


def test_parse_and_format() -> None:
    s = parse_scope("repository:localhost:5000/team/app:pull,push")
    assert s == Scope("repository", "localhost:5000/team/app", ("pull", "push"))
    assert format_scope(s) == "repository:localhost:5000/team/app:pull,push"
    assert parse_scope("registry:catalog:*") == CATALOG
    c = parse_scope("repository(plugin):a/b:pull")
    assert c.resource_class == "plugin" and format_scope(c) == "repository(plugin):a/b:pull"
    assert parse_scope("repository:a:pull,pull").actions == ("pull",)
    assert parse_scopes(["repository:a:pull repository:b:push", "registry:catalog:*"]) == [
        repository("a", "pull"), repository("b", "push"), CATALOG]


@pytest.mark.parametrize("bad", ["repository", "repository:a", ":a:pull", "Repo:a:pull", "repository::pull",
                                 "repository:a:PULL", "repository:a b:pull", "repository:a:pu-ll"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(FormatError):
        parse_scope(bad)


def test_merge_and_satisfies() -> None:
    merged = merge_scopes([repository("a", "pull"), repository("b", "pull"), repository("a", "push", "pull")])
    assert merged == [repository("a", "pull", "push"), repository("b", "pull")]
    assert satisfies([repository("a", "*")], [repository("a", "push", "pull")]) == []
    assert satisfies([repository("a", "pull")], [repository("a", "push", "pull")]) == [repository("a", "push")]
    assert satisfies([repository("b", "pull")], [repository("a", "pull")]) == [repository("a", "pull")]
    assert satisfies([], [CATALOG]) == [CATALOG]


def test_challenge_variants() -> None:
    assert basic_challenge("trustbox") == 'Basic realm="trustbox"'
    assert bearer_challenge("r", "s") == 'Bearer realm="r",service="s"'
    assert (
        bearer_challenge("r", "s", [repository("a", "pull", "push"), repository("b", "pull")], "insufficient_scope")
        == 'Bearer realm="r",service="s",scope="repository:a:pull,push repository:b:pull",error="insufficient_scope"'
    )
    assert bearer_challenge('r"\\', "s") == 'Bearer realm="r\\"\\\\",service="s"'


def test_bodies() -> None:
    assert unauthorized_body([]) == (
        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}\n')
    assert denied_body() == b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}\n'
    assert b"\\u003c" in unauthorized_body([repository("a<b", "pull")])


@pytest.mark.parametrize(
    "method,path,expected",
    [
        ("GET", "/v2/", [CATALOG]),
        ("GET", "/v2/localhost:5000/a/b/_trust/tuf/root.json", [repository("localhost:5000/a/b", "pull")]),
        ("GET", "/v2/a/_trust/tuf/targets/releases.json", [repository("a", "pull")]),
        ("GET", "/v2/a/_trust/tuf/3.snapshot.json", [repository("a", "pull")]),
        ("GET", "/v2/a/_trust/tuf/timestamp." + "ab" * 32 + ".json", [repository("a", "pull")]),
        ("GET", "/v2/a/_trust/tuf/bogus.json", [CATALOG]),
        ("POST", "/v2/a/_trust/tuf/", [repository("a", "push", "pull")]),
        ("GET", "/v2/a/_trust/tuf/snapshot.key", [repository("a", "push", "pull")]),
        ("POST", "/v2/a/_trust/tuf/timestamp.key", [repository("a", "*")]),
        ("GET", "/v2/a/_trust/tuf/targets.key", [CATALOG]),
        ("DELETE", "/v2/a/_trust/tuf/", [repository("a", "*")]),
        ("GET", "/v2/a/b/_trust/changefeed", [repository("a/b", "pull")]),
        ("GET", "/v2/_trust/changefeed", [CATALOG]),
        ("PUT", "/v2/a/_trust/tuf/root.json", [CATALOG]),
        ("GET", "/_notary_server/health", None),
        ("GET", "/metrics", None),
    ],
)
def test_notary_scope_table(method: str, path: str, expected: list[Scope] | None) -> None:
    assert notary_required_scopes(method, path) == expected


@pytest.mark.parametrize(
    "method,path,query,expected",
    [
        ("GET", "/v2/", "", []),
        ("GET", "/v2/_catalog", "n=10", [CATALOG]),
        ("GET", "/v2/library/alpine/manifests/latest", "", [repository("library/alpine", "pull")]),
        ("HEAD", "/v2/a/blobs/sha256:" + "0" * 64, "", [repository("a", "pull")]),
        ("GET", "/v2/a/b/tags/list", "", [repository("a/b", "pull")]),
        ("PUT", "/v2/a/manifests/v1", "", [repository("a", "pull", "push")]),
        ("POST", "/v2/a/blobs/uploads/", "", [repository("a", "pull", "push")]),
        ("PATCH", "/v2/a/blobs/uploads/uuid-1", "", [repository("a", "pull", "push")]),
        ("DELETE", "/v2/a/manifests/sha256:" + "1" * 64, "", [repository("a", "delete")]),
        ("POST", "/v2/a/blobs/uploads/", "mount=sha256:00&from=b/c",
         [repository("a", "pull", "push"), repository("b/c", "pull")]),
        ("GET", "/v2/x/manifests/y/manifests/latest", "", [repository("x/manifests/y", "pull")]),
        ("GET", "/v2/a/referrers/sha256:" + "2" * 64, "", [repository("a", "pull")]),
        ("GET", "/v2/unknown", "", []),
        ("GET", "/debug/health", "", None),
        ("GET", "/metrics", "", None),
    ],
)
def test_registry_scope_table(method: str, path: str, query: str, expected: list[Scope] | None) -> None:
    assert registry_required_scopes(method, path, query) == expected
