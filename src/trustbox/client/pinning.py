"""Notary's ``trust_pinning`` for first contact with a repository: pinned certificate IDs per GUN,
pinned CA files per GUN prefix, and the switch that turns trust on first use off."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

from trustbox.errors import RootError, TrustboxError
from trustbox.tuf.keys import PublicKey
from trustbox.tuf.metadata import ROOT, Metadata, Root
from trustbox.tuf.verify import check_pinned_ids, check_pinned_root


@dataclass
class TrustPinning:
    """Notary's ``trust_pinning``: certificate IDs per GUN, CA files per GUN prefix, TOFU switch."""

    certs: dict[str, list[str]] = field(default_factory=dict)
    ca: dict[str, Path] = field(default_factory=dict)
    disable_tofu: bool = False

    def check(self, root: Metadata[Root], gun: str, now: datetime) -> None:
        """Raise RootError unless a first-contact root satisfies the pinning for ``gun``."""
        keys, _threshold = root.signed.role_keys(ROOT)
        pinned_ids = self.certs.get(gun)
        if pinned_ids:
            check_pinned_ids(root, gun, pinned_ids)
            return
        prefixes = [p for p in self.ca if gun.startswith(p)]
        if prefixes:
            ca_file = self.ca[max(prefixes, key=len)]
            try:
                cas = x509.load_pem_x509_certificates(Path(ca_file).read_bytes())
            except (OSError, ValueError, x509.InvalidVersion) as exc:
                raise RootError(f"cannot read trust pinning CA {ca_file}: {exc}") from exc
            check_pinned_root(
                root, {k: v for k, v in keys.items() if _issued_by_any(v, cas, now)},
                f"no root certificate of {gun} is issued by the pinned CA {ca_file}",
                f"root of {gun} is not signed by certificates of the pinned CA",
            )
            return
        if self.disable_tofu:
            raise RootError(f"trust on first use is disabled and no trust pinning is configured for {gun}")


def _issued_by_any(key: PublicKey, cas: list[x509.Certificate], now: datetime) -> bool:
    if not key.is_x509:
        return False
    try:
        leaf = key.certificate()
    except TrustboxError:
        return False
    if not (leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc):
        return False
    for ca in cas:
        try:
            leaf.verify_directly_issued_by(ca)
        except (ValueError, TypeError, Exception):  # noqa: BLE001 - any failure means "not issued by"
            continue
        if ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
            return True
    return False
