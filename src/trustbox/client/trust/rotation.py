"""``trustbox trust key rotate``: replace the keys of a base role, with notary's semantics
(``notary key rotate``, notary ``client.RotateKey``).

* ``root``: a new root key (a key file, or a key on a PKCS#11 token) in a new self-signed
  certificate; the new root is signed by the trusted root's keys and the new one (cross-signed),
  the old certificate stays in the root's key list;
* ``targets``: a new targets key; targets is re-signed with it (version + 1);
* ``snapshot``: a new local key (the client signs snapshots from now on), or with
  ``server_managed`` a new key made by the trust server (``POST <role>.key``);
* ``timestamp``: only ``server_managed`` (notary keeps timestamp keys on the server).

The new root goes up in one update with whatever had to be re-signed; the server generates the
snapshot (when it holds that key) and the timestamp. The result reads like notary's: either client
can follow the other's rotations.
"""

from __future__ import annotations

from dataclasses import dataclass

from trustbox.client.errors import RepositoryNotExistError
from trustbox.client.trust.remote import PUSH_PULL
from trustbox.client.trust.repository import TrustClient
from trustbox.errors import RoleError
from trustbox.tuf.certs import make_root_public_key
from trustbox.tuf.keys import PublicKey, Signer
from trustbox.tuf.metadata import ROOT, SNAPSHOT, TARGETS, TIMESTAMP

ROTATABLE = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)


class RotationError(RoleError):
    """A rotation notary does not permit (role, or who manages the key)."""


def check_rotation(role: str, server_managed: bool) -> None:
    """notary's ``checkRotationInput``: the server may manage timestamp and snapshot keys, the
    client root, targets and snapshot keys; delegations are not rotated. Raises RotationError."""
    if role not in ROTATABLE:
        raise RotationError(f"notary does not currently permit rotating the {role} key")
    if server_managed and role not in (TIMESTAMP, SNAPSHOT):
        raise RotationError(f"notary does not permit the server managing the {role} key")
    if not server_managed and role == TIMESTAMP:
        raise RotationError(f"notary does not permit the client managing the {role} key", hint="use --server-managed")


@dataclass(frozen=True)
class RotationResult:
    """What a rotation published."""

    gun: str
    role: str
    #: the role's new public keys as listed in root (a certificate for root)
    keys: tuple[PublicKey, ...]
    server_managed: bool


def _new_local_key(client: TrustClient, role: str, key_uri: str | None) -> Signer:
    keystore = client.keystore
    gun = None if role == ROOT else client.gun
    if key_uri:
        return keystore.add_token_key(key_uri, role, gun, create=True)
    return keystore.generate_key(role, gun)


def rotate_key(client: TrustClient, role: str, *, server_managed: bool = False, key_uri: str | None = None) -> RotationResult:
    """Rotate ``role``'s key of the client's repository and publish the new root (see the module).
    ``key_uri``: the new key is the PKCS#11 key this URI names (made on the token if absent).

    Raises:
        RotationError: notary does not permit this rotation.
        RepositoryNotExistError: the trust server has no such repository.
        NoSigningKeysError / InsufficientSignaturesError: the root keys (or new keys) are not here.
        TrustboxError: the update, the key store or the server's answer failed.
    """
    check_rotation(role, server_managed)
    if server_managed and key_uri:
        raise RotationError("a server-managed key cannot be named by a PKCS#11 URI")
    client.update_for_write()
    if client.remote_missing:
        raise RepositoryNotExistError(client.remote.host, client.gun)
    draft = client.draft()
    if not draft.can_sign_root():
        raise RoleError(f"no root key for {client.gun} in the key store: a key rotation changes the root")
    if server_managed:
        client.remote.use_actions(PUSH_PULL)
        keys: list[PublicKey] = [client.remote.rotate_key(role)]
    else:
        signer = _new_local_key(client, role, key_uri)
        if role == ROOT:
            keys = [make_root_public_key(signer, client.gun, client.now)]
        else:
            keys = [signer.public_key()]
    draft.replace_base_keys(role, keys)
    client.publish(draft)
    return RotationResult(client.gun, role, tuple(keys), server_managed)


__all__ = ["ROTATABLE", "RotationError", "RotationResult", "check_rotation", "rotate_key"]
