"""One parse of each registry request, shared by the auth layer and the handlers.

The route (repository, endpoint, reference) and the query parameters are parsed once and kept in
the ASGI scope (``scope["state"]``), so the access check and the handler read the same values:
the repository whose ``pull``/``push`` scope was checked is the one the handler touches, and a
mount's ``from`` is the repository whose ``pull`` was checked. A parameter the API defines with
one value (``digest``, ``mount``, ``from``, ``n``, ``last``, ``artifactType``) given more than once
is refused with 400 when a handler reads it, instead of one layer reading the first value and the
other the last.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from trustbox.registry.errors import (
    DigestInvalid,
    NameInvalid,
    PaginationInvalid,
    ParameterInvalid,
    RegistryError,
)

ROUTE = re.compile(
    r"^/v2/(?P<name>.+?)/(?P<kind>blobs/uploads|blobs|manifests|tags/list|referrers)(?:/(?P<ref>[^/]*))?$"
)
_STATE_KEY = "trustbox.registry.request"

#: parameters the API defines with one value, and the error answered when one comes twice
SINGLE_VALUED: Mapping[str, type[RegistryError]] = {
    "digest": DigestInvalid,
    "mount": DigestInvalid,
    "from": NameInvalid,
    "n": PaginationInvalid,
    "last": PaginationInvalid,
    "artifactType": ParameterInvalid,
}


@dataclass(frozen=True, slots=True)
class Route:
    """A repository endpoint: ``/v2/<name>/<kind>[/<ref>]``."""

    name: str
    kind: str
    ref: str | None


@dataclass(frozen=True, slots=True)
class RegistryRequest:
    """What a request asks for, parsed once: method, raw path, route and query parameters."""

    method: str
    path: str
    route: Route | None
    params: Mapping[str, tuple[str, ...]]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the query parameter ``name`` (``default`` when absent).

        Raises the parameter's RegistryError (400: ``DIGEST_INVALID``, ``NAME_INVALID``,
        ``PAGINATION_NUMBER_INVALID`` or ``UNSUPPORTED``) when a parameter the API defines with
        one value was given more than once.
        """
        values = self.params.get(name, ())
        if not values:
            return default
        if len(values) > 1 and name in SINGLE_VALUED:
            raise SINGLE_VALUED[name](
                f"query parameter {name!r} given {len(values)} times; it takes one value",
                detail={"parameter": name},
            )
        return values[0]

    def getlist(self, name: str) -> list[str]:
        """Every value of a repeatable query parameter (``tag``), in order."""
        return list(self.params.get(name, ()))

    @property
    def mount_sources(self) -> tuple[str, ...]:
        """Every distinct non-empty ``from`` value: the auth layer wants ``pull`` on each, so a
        request naming a repository the caller may not pull is refused whichever value a reader
        would take (a handler refuses a repeated ``from`` anyway)."""
        return tuple(dict.fromkeys(v for v in self.params.get("from", ()) if v))


def parse_request(scope: Mapping[str, Any]) -> RegistryRequest:
    """Parse an ASGI HTTP scope (no I/O, never raises for client input)."""
    path = str(scope.get("path", ""))
    m = ROUTE.fullmatch(path)
    route = Route(m.group("name"), m.group("kind"), m.group("ref")) if m is not None else None
    raw = scope.get("query_string", b"")
    query = raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else str(raw)
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return RegistryRequest(
        str(scope.get("method", "GET")), path, route, {k: tuple(v) for k, v in params.items()}
    )


def registry_request(scope: MutableMapping[str, Any]) -> RegistryRequest:
    """The request's parse, made on first use and kept in ``scope["state"]``."""
    state = scope.setdefault("state", {})
    parsed = state.get(_STATE_KEY)
    if not isinstance(parsed, RegistryRequest):
        parsed = state[_STATE_KEY] = parse_request(scope)
    return parsed
