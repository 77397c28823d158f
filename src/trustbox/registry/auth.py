"""Registry authentication: htpasswd Basic or docker token auth, configured as registry:2 does.

Both run in the shared :class:`trustbox.auth.middleware.AuthMiddleware` with registry:2's scopes
(``registry_required_scopes``); every refusal carries ``Docker-Distribution-API-Version``.
"""

from __future__ import annotations

from starlette.middleware import Middleware

from trustbox.auth.middleware import AuthMiddleware, authorizer_from_config, registry_required_scopes
from trustbox.registry.config import RegistryConfig

REALM = "trustbox-registry"
API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def auth_middleware(config: RegistryConfig) -> list[Middleware]:
    """The Starlette middleware list for ``config``'s auth (empty when auth is off)."""
    section = config.auth_section()
    if section is None:
        return []
    return [
        Middleware(
            AuthMiddleware,
            authorizer=authorizer_from_config(section),
            required_scopes=registry_required_scopes,
            extra_headers=API_VERSION_HEADER,
        )
    ]
