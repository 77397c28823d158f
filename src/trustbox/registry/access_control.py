"""Registry authentication: htpasswd Basic or docker token auth, configured as registry:2 does.

Both run in the shared :class:`trustbox.auth.middleware.AuthMiddleware` with registry:2's scopes
(:func:`~trustbox.auth.middleware.registry_scopes`), computed from the same parse of the request
the handlers use (:mod:`trustbox.registry.request`); every refusal carries
``Docker-Distribution-API-Version``.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware import Middleware

from trustbox.auth.middleware import ASGIScope, AuthMiddleware, authorizer_from_config, registry_scopes
from trustbox.auth.scopes import Scope
from trustbox.registry.config import RegistryConfig
from trustbox.registry.request import registry_request

REALM = "trustbox-registry"
API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def required_scopes(scope: ASGIScope) -> Sequence[Scope] | None:
    """What the request needs: ``pull``/``push``/``delete`` on the repository its handler will
    touch and ``pull`` on each mount source (``from``), read from the shared parse."""
    req = registry_request(scope)
    repo = req.route.name if req.route is not None else None
    return registry_scopes(req.method, req.path, repo, req.mount_sources)


def auth_middleware(config: RegistryConfig) -> list[Middleware]:
    """The Starlette middleware list for ``config``'s auth (empty when auth is off)."""
    section = config.auth_section()
    if section is None:
        return []
    return [
        Middleware(
            AuthMiddleware,
            authorizer=authorizer_from_config(section),
            requirements=required_scopes,
            extra_headers=API_VERSION_HEADER,
        )
    ]
