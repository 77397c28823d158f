"""Platforms of a multi-arch image (``os/arch[/variant]``) and the choice of one child manifest.

Pure: the caller passes the platform it wants (the client derives the host's from the machine).
Architecture names follow Go's ``GOARCH`` as OCI indexes use them; the machine names Linux and
Python report are mapped onto them (``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``).
"""

from __future__ import annotations

from dataclasses import dataclass

from trustbox.errors import FormatError
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.manifest import Manifest

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
}
_VARIANTS = {"armv7l": "v7", "armv6l": "v6"}


@dataclass(frozen=True)
class Platform:
    """An ``os/arch[/variant]`` platform."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join([self.os, self.architecture] + ([self.variant] if self.variant else []))


def parse_platform(text: str) -> Platform:
    """Parse ``os/arch[/variant]`` (arch aliases normalised).

    Raises:
        FormatError: not two or three non-empty parts.
    """
    parts = text.strip().lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise FormatError(f"platform {text!r} must be OS/ARCH[/VARIANT], e.g. linux/amd64")
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else _VARIANTS.get(parts[1])
    return Platform(parts[0], arch, variant)


def machine_platform(system: str, machine: str) -> Platform:
    """The platform of a machine as ``platform.system()`` / ``platform.machine()`` name it."""
    arch = machine.lower()
    return Platform(system.lower() or "linux", _ARCH_ALIASES.get(arch, arch), _VARIANTS.get(arch))


def _matches(desc: Descriptor, want: Platform) -> bool:
    p = desc.platform or {}
    if str(p.get("os", "")).lower() != want.os or str(p.get("architecture", "")).lower() != want.architecture:
        return False
    have_variant = str(p.get("variant", "") or "").lower() or None
    return want.variant is None or have_variant is None or have_variant == want.variant


def select_platform(index: Manifest, want: Platform) -> Descriptor:
    """The child manifest of ``index`` for ``want`` (the first one listed, as docker picks; a
    wanted variant must match when the child names one).

    Raises:
        FormatError: ``index`` is no index, or has no manifest for the platform (the message
            lists the platforms it has).
    """
    if not index.is_index:
        raise FormatError("not an image index: there is no platform to choose")
    for desc in index.manifests:
        if _matches(desc, want):
            return desc
    have = ", ".join(d.platform_string() for d in index.manifests) or "none"
    raise FormatError(f"the image has no manifest for platform {want} (it has: {have})")


__all__ = ["Platform", "machine_platform", "parse_platform", "select_platform"]
