"""The notary/TUF client library and docker-trust operations.

Stable API for other parts of trustbox: :class:`TrustClient`, :class:`SignedTarget` and
:func:`trust_client_for` (see ``docs/client.md``). They are imported lazily so that modules
of this package do not pull in the whole client when imported on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trustbox.client.trustclient import SignedTarget, TrustClient, trust_client_for

__all__ = ["SignedTarget", "TrustClient", "trust_client_for"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from trustbox.client import trustclient

        return getattr(trustclient, name)
    raise AttributeError(f"module 'trustbox.client' has no attribute {name!r}")
