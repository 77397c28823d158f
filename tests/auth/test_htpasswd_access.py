"""htpasswd files and access rules."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest

from trustbox.auth import htpasswd as htpasswd_mod
from trustbox.auth.access import AccessRules
from trustbox.auth.htpasswd import DEFAULT_COST, HtpasswdFile, add_user, make_entry, parse, typical_cost
from trustbox.auth.scopes import CATALOG, repository
from trustbox.errors import ConfigError, FormatError


def test_add_and_check(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    assert add_user(f, "alice", "s3cret", cost=4) is False
    assert add_user(f, "bob", "hunter2", cost=4) is False
    assert oct(f.stat().st_mode & 0o777) == "0o600"
    line = f.read_text().splitlines()[0]
    assert line.startswith("alice:$2y$04$") and len(line.split(":", 1)[1]) == 60
    h = HtpasswdFile(f)
    assert h.users() == ["alice", "bob"]
    assert h.check("alice", "s3cret") and h.check("alice", "s3cret")  # second from the memo
    assert not h.check("alice", "wrong")
    assert not h.check("bob", "s3cret")
    assert not h.check("mallory", "s3cret")
    assert add_user(f, "alice", "new-pass", cost=4) is True
    assert f.read_text().count("alice:") == 1
    assert not h.remembered("alice", "s3cret")  # the file changed: the memo no longer counts
    assert not h.check("alice", "s3cret")  # reloaded on change, memo dropped
    assert h.check("alice", "new-pass") and h.remembered("alice", "new-pass")
    assert not h.remembered("alice", "s3cret") and not h.remembered("bob", "hunter2")


def test_reads_apache_and_python_hashes(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    py = bcrypt.hashpw(b"pw1", bcrypt.gensalt(4)).decode()
    f.write_text(f"# comment\n\nu1:{py}\n{make_entry('u2', 'pw2', cost=4)}\n")
    h = HtpasswdFile(f)
    assert h.check("u1", "pw1") and h.check("u2", "pw2") and not h.check("u1", "pw2")


_SALT_AND_HASH = "abcdefghijklmnopqrstuv" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234"


@pytest.mark.parametrize("text", [
    "alice:{SHA}abc=\n", "alice:$apr1$xyz\n", "justaname\n", "alice:$2y$10$short\n", "alice:plain\n",
    "alice:crypt13chars\n",
    # bcrypt-shaped but not bcrypt: bcrypt would refuse them at once, without its work, so an
    # existing user's wrong password would be answered faster than an unknown user's
    f"alice:$2y$99${_SALT_AND_HASH}\n", f"alice:$2y$03${_SALT_AND_HASH}\n", f"alice:$2x$10${_SALT_AND_HASH}\n",
    f"alice:$2y$1a${_SALT_AND_HASH}\n", f"alice:$2y$10${_SALT_AND_HASH[:-1]}!\n",
])
def test_non_bcrypt_rejected(text: str) -> None:
    with pytest.raises(ConfigError):
        parse(text)
    assert parse(f"alice:$2y$10${_SALT_AND_HASH}\n") == {"alice": f"$2y$10${_SALT_AND_HASH}"}


def _record_bcrypt(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the hash every bcrypt check runs against (its prefix holds variant and cost)."""
    seen: list[bytes] = []
    real = htpasswd_mod.bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_mod.bcrypt, "checkpw", recording)
    return seen


def test_unknown_users_are_checked_at_the_files_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown user costs the same bcrypt work as a known user's wrong password.

    ``htpasswd -B`` writes cost 5; a cost-10 dummy made unknown users ~15x slower to refuse.
    """
    f = tmp_path / "htpasswd"
    apache = "$2y$" + bcrypt.hashpw(b"pw", bcrypt.gensalt(5)).decode()[4:]  # as htpasswd -B writes it
    f.write_text(f"alice:{apache}\n{make_entry('bob', 'pw', cost=5)}\n")
    h = HtpasswdFile(f)
    assert h.dummy_cost == 5
    seen = _record_bcrypt(monkeypatch)
    assert not h.check("alice", "wrong") and not h.check("mallory", "wrong")
    assert [s[:7] for s in seen] == [b"$2b$05$", b"$2b$05$"]  # same variant, same cost
    assert bcrypt.checkpw(b"x", seen[1]) is False  # a valid bcrypt hash that no password matches
    f.write_text(f"{make_entry('alice', 'pw', cost=4)}\n{make_entry('bob', 'pw', cost=4)}\n"
                 f"{make_entry('carol', 'pw', cost=6)}\n")
    seen.clear()
    assert not h.check("mallory", "wrong")  # the file changed: the dummy follows its cost
    assert h.dummy_cost == 4 and seen[0][:7] == b"$2b$04$"


def test_typical_cost() -> None:
    def h(cost: int) -> str:
        return f"$2y${cost:02d}${_SALT_AND_HASH}"

    assert typical_cost([h(5), h(5), h(12)]) == 5  # what most users have
    assert typical_cost([h(5), h(12)]) == 12  # a tie: the slower
    assert typical_cost([]) == DEFAULT_COST


@pytest.mark.parametrize("user", ["", "a:b", "a b", "*", "+"])
def test_bad_user_names(user: str) -> None:
    with pytest.raises(FormatError):
        make_entry(user, "pw", cost=4)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        HtpasswdFile(tmp_path / "nope")


RULES = """
[groups]
admins = ["root"]

[[rule]]
subject = "*"
repository = "public/*"
actions = ["pull"]

[[rule]]
subject = "+"
repository = "${user}/*"
actions = ["pull", "push"]

[[rule]]
subject = "alice"
repository = "team/*"
actions = ["pull", "push"]

[[rule]]
subject = "group:admins"
repository = "*"
actions = ["*"]

[[rule]]
subject = "group:admins"
type = "registry"
repository = "catalog"
actions = ["*"]
"""


@pytest.fixture()
def rules(tmp_path: Path) -> AccessRules:
    p = tmp_path / "rules.toml"
    p.write_text(RULES)
    return AccessRules.load(p)


def test_grants_are_intersections(rules: AccessRules) -> None:
    req = [repository("team/app", "pull", "push", "*"), repository("public/x", "pull", "push"), CATALOG]
    assert rules.grant("alice", req) == [repository("team/app", "pull", "push"), repository("public/x", "pull")]
    assert rules.grant(None, req) == [repository("public/x", "pull")]
    assert rules.grant("bob", req) == [repository("public/x", "pull")]
    assert rules.grant("root", req) == req
    assert rules.grant("bob", [repository("bob/app", "push")]) == [repository("bob/app", "push")]
    assert rules.grant("alice", [repository("bob/app", "push")]) == []
    assert rules.grant(None, [repository("${user}/app", "pull")]) == []
    assert rules.allows_anonymous


def test_user_substitution_is_literal(tmp_path: Path) -> None:
    r = AccessRules.from_dict({"rule": [{"subject": "+", "repository": "${user}/*", "actions": ["pull"]}]})
    assert r.grant("a*", [repository("abc/x", "pull")]) == []
    assert r.grant("a*", [repository("a*/x", "pull")]) == [repository("a*/x", "pull")]
    assert not r.allows_anonymous


def test_json_rules(tmp_path: Path) -> None:
    p = tmp_path / "rules.json"
    p.write_text('{"rules": [{"subject": "*", "repository": "*", "actions": ["pull"]}]}')
    assert AccessRules.load(p).grant(None, [repository("x", "pull", "push")]) == [repository("x", "pull")]


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"rule": [{"subject": "a", "repository": "x"}]},
        {"rule": [{"subject": "group:nope", "repository": "x", "actions": ["pull"]}]},
        {"rule": [{"subject": "a", "repository": "x", "actions": "pull"}]},
        {"rule": [{"subject": "a", "repository": "x", "actions": ["pull"], "deny": True}]},
        {"rules": [], "extra": 1},
    ],
)
def test_bad_rules(data: object) -> None:
    with pytest.raises(ConfigError):
        AccessRules.from_dict(data)


def test_unparseable_rules_file(tmp_path: Path) -> None:
    p = tmp_path / "r.toml"
    p.write_text("[[rule]\n")
    with pytest.raises(ConfigError):
        AccessRules.load(p)
