"""The docker-trust client: trust data (TUF over a notary server), registries, images, login.

Declared API for the rest of trustbox and for scripts (see ``docs/client.md``): the trust client
(:class:`TrustClient`, :class:`SignedTarget`, :func:`trust_client_for`, :class:`TrustPinning`) and
the registry client (:class:`RegistryClient`, :class:`RegistryOptions`). Image references and
manifests are the OCI core's (:mod:`trustbox.oci`).
"""

from __future__ import annotations

from trustbox.client.images.distribution import RegistryClient, RegistryOptions
from trustbox.client.pinning import TrustPinning
from trustbox.client.trust.repository import SignedTarget, TrustClient, trust_client_for

__all__ = ["RegistryClient", "RegistryOptions", "SignedTarget", "TrustClient", "TrustPinning", "trust_client_for"]
