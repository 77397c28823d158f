"""Access rules for the token issuer: who may do what on which repositories.

A rules file (TOML, or JSON with the same structure)::

    [groups]
    admins = ["alice"]

    [[rule]]
    subject = "*"                 # everyone, anonymous included
    repository = "public/*"
    actions = ["pull"]

    [[rule]]
    subject = "+"                 # any authenticated user
    repository = "${user}/*"      # ${user} is the authenticated user's name
    actions = ["pull", "push"]

    [[rule]]
    subject = "group:admins"
    repository = "*"
    actions = ["*"]               # every action, including "*" itself

    [[rule]]
    subject = "alice"
    type = "registry"             # default "repository"
    repository = "catalog"
    actions = ["*"]

Patterns are shell globs matched against the whole name (``*`` also crosses ``/``). The actions
allowed on a resource are the union over every matching rule; a grant is the intersection of
what was requested and what is allowed.
"""

from __future__ import annotations

import fnmatch
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustbox.auth.scopes import ALL, Scope
from trustbox.errors import ConfigError

EVERYONE = "*"
AUTHENTICATED = "+"


@dataclass(frozen=True)
class Rule:
    """One allow rule."""

    subject: str
    pattern: str
    actions: frozenset[str]
    type: str = "repository"

    def applies_to(self, user: str | None, groups: Mapping[str, frozenset[str]]) -> bool:
        """Whether the rule's subject covers ``user`` (None = anonymous)."""
        if self.subject == EVERYONE:
            return True
        if user is None:
            return False
        if self.subject == AUTHENTICATED:
            return True
        if self.subject.startswith("group:"):
            return user in groups.get(self.subject[6:], frozenset())
        return self.subject == user

    def matches(self, user: str | None, rtype: str, name: str) -> bool:
        """Whether the rule's type and pattern cover the resource (``${user}`` expanded)."""
        if rtype != self.type:
            return False
        pattern = self.pattern
        if "${user}" in pattern:
            if user is None:
                return False
            pattern = pattern.replace("${user}", _glob_escape(user))
        return fnmatch.fnmatchcase(name, pattern)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


class AccessRules:
    """A list of allow rules and named groups of users."""

    def __init__(self, rules: Iterable[Rule], groups: Mapping[str, Iterable[str]] | None = None) -> None:
        self.rules = list(rules)
        self.groups: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in (groups or {}).items()}

    @classmethod
    def load(cls, path: Path | str) -> AccessRules:
        """Read a rules file: TOML, or JSON when the name ends in ``.json``."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read access rules {path}: {exc}") from None
        try:
            data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot parse access rules {path}: {exc}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "rules") -> AccessRules:
        """Build rules from the parsed file structure, validating every field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a table with [[rule]] entries")
        unknown = set(data) - {"rule", "rules", "groups"}
        if unknown:
            raise ConfigError(f"{source}: unknown keys {sorted(unknown)}")
        groups = data.get("groups", {})
        if not isinstance(groups, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(u, str) for u in v) for k, v in groups.items()
        ):
            raise ConfigError(f"{source}: groups must map names to lists of users")
        raw_rules = data.get("rule", data.get("rules", []))
        if not isinstance(raw_rules, list):
            raise ConfigError(f"{source}: rule must be a list")
        rules: list[Rule] = []
        for i, r in enumerate(raw_rules, 1):
            where = f"{source}: rule {i}"
            if not isinstance(r, dict):
                raise ConfigError(f"{where}: must be a table")
            extra = set(r) - {"subject", "repository", "name", "actions", "type"}
            if extra:
                raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
            subject, pattern = r.get("subject"), r.get("repository", r.get("name"))
            actions, rtype = r.get("actions"), r.get("type", "repository")
            if not isinstance(subject, str) or not subject:
                raise ConfigError(f"{where}: subject must be a user, group:NAME, '+' or '*'")
            if subject.startswith("group:") and subject[6:] not in groups:
                raise ConfigError(f"{where}: unknown group {subject[6:]!r}")
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"{where}: repository must be a name pattern")
            if not isinstance(rtype, str) or not rtype:
                raise ConfigError(f"{where}: type must be a string")
            if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
                raise ConfigError(f"{where}: actions must be a list of action names")
            rules.append(Rule(subject, pattern, frozenset(actions), rtype))
        return cls(rules, groups)

    @property
    def allows_anonymous(self) -> bool:
        """Whether any rule applies to anonymous requests (subject ``*``)."""
        return any(r.subject == EVERYONE for r in self.rules)

    def allowed_actions(self, user: str | None, rtype: str, name: str) -> frozenset[str]:
        """The union of actions all matching rules allow ``user`` on the resource."""
        allowed: set[str] = set()
        for rule in self.rules:
            if rule.applies_to(user, self.groups) and rule.matches(user, rtype, name):
                allowed |= rule.actions
        return frozenset(allowed)

    def grant(self, user: str | None, requested: Sequence[Scope]) -> list[Scope]:
        """The requested scopes cut down to what is allowed; resources with nothing left are dropped."""
        out: list[Scope] = []
        for scope in requested:
            allowed = self.allowed_actions(user, scope.type, scope.name)
            actions = tuple(a for a in scope.actions if ALL in allowed or a in allowed)
            if actions:
                out.append(Scope(scope.type, scope.name, actions, scope.resource_class))
        return out
