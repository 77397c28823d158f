"""Docker token-auth scopes, challenges and the JSON error bodies that go with them.

A scope names a resource and the actions wanted on it: ``repository:library/alpine:pull,push``,
``repository:localhost:5000/team/app:*``, ``registry:catalog:*`` (grammar in distribution's
``docs/spec/auth/scope.md``). The resource type may carry a class: ``repository(plugin):name:pull``.
Names may contain ``:`` (a registry port), so the type ends at the first colon and the actions start
after the last one.

The 401 bodies and ``WWW-Authenticate`` values are byte-identical to what notary-server 0.7 and
registry 2.8 send (Go's ``%q`` quoting, ``encoding/json`` escaping and trailing newline).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trustbox.errcode import DENIED, UNAUTHORIZED
from trustbox.errors import FormatError

_TYPE_RE = re.compile(r"^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$")
_ACTION_RE = re.compile(r"^(?:[a-z]+|\*)$")
MAX_SCOPE_LENGTH = 1024

PULL = "pull"
PUSH = "push"
DELETE = "delete"
ALL = "*"


@dataclass(frozen=True)
class Scope:
    """A resource (type, optional class, name) and the actions wanted or granted on it."""

    type: str
    name: str
    actions: tuple[str, ...]
    resource_class: str = ""

    @property
    def resource(self) -> tuple[str, str, str]:
        """``(type, class, name)``: what two scopes must share to be merged."""
        return (self.type, self.resource_class, self.name)

    def __str__(self) -> str:
        return format_scope(self)


def repository(name: str, *actions: str) -> Scope:
    """``repository:<name>:<actions>``."""
    return Scope("repository", name, tuple(actions))


CATALOG = Scope("registry", "catalog", (ALL,))


def parse_scope(text: str) -> Scope:
    """Parse one ``type[(class)]:name:action[,action...]`` scope; raise FormatError if malformed."""
    if len(text) > MAX_SCOPE_LENGTH:
        raise FormatError("scope is too long")
    first = text.find(":")
    last = text.rfind(":")
    if first <= 0 or last == first:
        raise FormatError(f"malformed scope {text!r}: want type:name:actions")
    type_part, name, action_part = text[:first], text[first + 1 : last], text[last + 1 :]
    m = _TYPE_RE.match(type_part)
    if m is None:
        raise FormatError(f"malformed scope {text!r}: bad resource type")
    if not name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise FormatError(f"malformed scope {text!r}: bad resource name")
    actions: list[str] = []
    for action in action_part.split(","):
        if action == "":
            continue
        if not _ACTION_RE.match(action):
            raise FormatError(f"malformed scope {text!r}: bad action {action!r}")
        if action not in actions:
            actions.append(action)
    return Scope(m.group(1), name, tuple(actions), m.group(2) or "")


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Parse ``scope`` query values, each possibly holding several space-separated scopes."""
    out: list[Scope] = []
    for value in values:
        out.extend(parse_scope(part) for part in value.split(" ") if part)
    return out


def format_scope(scope: Scope, with_class: bool = True) -> str:
    """``type[(class)]:name:a,b`` (the class only when present and ``with_class``)."""
    rtype = f"{scope.type}({scope.resource_class})" if with_class and scope.resource_class else scope.type
    return f"{rtype}:{scope.name}:{','.join(scope.actions)}"


def merge_scopes(scopes: Iterable[Scope]) -> list[Scope]:
    """Merge scopes on the same resource, keeping first-seen order of resources and actions."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    first: dict[tuple[str, str, str], Scope] = {}
    for s in scopes:
        actions = merged.setdefault(s.resource, [])
        first.setdefault(s.resource, s)
        for a in s.actions:
            if a not in actions:
                actions.append(a)
    return [Scope(first[r].type, first[r].name, tuple(a), first[r].resource_class) for r, a in merged.items()]


def satisfies(granted: Iterable[Scope], required: Iterable[Scope]) -> list[Scope]:
    """The required scopes (with only the missing actions) that ``granted`` does not cover.

    As in distribution's token access controller, the class is ignored for matching and a granted
    ``*`` covers every action.
    """
    have: dict[tuple[str, str], set[str]] = {}
    for g in granted:
        have.setdefault((g.type, g.name), set()).update(g.actions)
    missing: list[Scope] = []
    for r in required:
        acts = have.get((r.type, r.name), set())
        lacking = tuple(a for a in r.actions if ALL not in acts and a not in acts)
        if lacking:
            missing.append(Scope(r.type, r.name, lacking, r.resource_class))
    return missing


# --- challenges -------------------------------------------------------------------------------


def go_quote(value: str) -> str:
    """Go's ``strconv.Quote`` for the printable strings found in challenges."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def scope_param(scopes: Sequence[Scope]) -> str:
    """The ``scope`` challenge parameter: merged resources, space-separated, no classes."""
    return " ".join(format_scope(s, with_class=False) for s in merge_scopes(scopes))


def bearer_challenge(realm: str, service: str, scopes: Sequence[Scope] = (), error: str | None = None) -> str:
    """``Bearer realm="..",service="..",scope=".."[,error=".."]`` as distribution writes it.

    ``error`` is ``invalid_token`` or ``insufficient_scope`` (RFC 6750); omitted when no token was sent.
    """
    value = f"Bearer realm={go_quote(realm)},service={go_quote(service)}"
    param = scope_param(scopes)
    if param:
        value += f",scope={go_quote(param)}"
    if error:
        value += f",error={go_quote(error)}"
    return value


def basic_challenge(realm: str) -> str:
    """``Basic realm=".."``."""
    return f"Basic realm={go_quote(realm)}"


# --- bodies -----------------------------------------------------------------------------------


def access_records(scopes: Sequence[Scope]) -> list[dict[str, str]]:
    """One ``{"Type","Class","Name","Action"}`` record per action, in order (``auth.Access`` JSON)."""
    return [
        {"Type": s.type, "Class": s.resource_class, "Name": s.name, "Action": a}
        for s in scopes
        for a in s.actions
    ]


def unauthorized_body(scopes: Sequence[Scope]) -> bytes:
    """The 401 ``UNAUTHORIZED`` body with one access record per required action.

    With no required scopes (registry ``/v2/``) the detail is ``null``, as registry:2 sends it.
    """
    records = access_records(scopes)
    return UNAUTHORIZED.body(detail=records or None)


def denied_body() -> bytes:
    """The registry's 403 ``DENIED`` body."""
    return DENIED.body()


JSON_CONTENT_TYPE = "application/json; charset=utf-8"
