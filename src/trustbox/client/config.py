"""Where the docker CLI finds its trust settings: config dir, trust dir, trust server, TLS files, auth.

* config dir: ``$DOCKER_CONFIG`` or ``~/.docker``; trust dir: ``<config dir>/trust``;
* trust server: ``$DOCKER_CONTENT_TRUST_SERVER`` (must be https), ``https://notary.docker.io`` for
  Docker Hub, else ``https://<registry host[:port]>``;
* TLS: ``<config dir>/tls/<server host:port>/``: ``*.crt`` CA roots, ``*.cert`` + ``*.key`` client pairs;
* credentials: ``auths`` of ``<config dir>/config.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trustbox.client.errors import TrustServerURLError
from trustbox.errors import ConfigError, TrustboxError
from trustbox.oci.reference import ImageRef

if TYPE_CHECKING:
    from trustbox.client.tufclient import TrustPinning

NOTARY_SERVER = "https://notary.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
TRUST_SERVER_ENV = "DOCKER_CONTENT_TRUST_SERVER"


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``."""
    value = _env(environ).get("DOCKER_CONFIG", "")
    return Path(value) if value else Path.home() / ".docker"


def trust_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The docker trust directory, ``<config dir>/trust``."""
    return config_dir(environ) / "trust"


def trust_server(ref: ImageRef, environ: Mapping[str, str] | None = None) -> str:
    """The trust server URL for an image, as docker's ``trust.Server`` computes it."""
    value = _env(environ).get(TRUST_SERVER_ENV, "")
    if value:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc:
            raise TrustServerURLError(value)
        return value
    if ref.official:
        return NOTARY_SERVER
    return "https://" + ref.domain


def server_hostport(server_url: str) -> str:
    """``host[:port]`` of a server URL as it names the TLS directory."""
    return urlsplit(server_url).netloc


@dataclass
class TLSFiles:
    """Extra CA files and client certificate pairs for one server."""

    ca_files: list[Path] = field(default_factory=list)
    client_pairs: list[tuple[Path, Path]] = field(default_factory=list)


CA_CERT_ENV = "TRUSTBOX_CA_CERT"


def env_ca_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Extra CA files from ``$TRUSTBOX_CA_CERT`` (paths separated by ``:``), e.g. the sandbox CA."""
    value = _env(environ).get(CA_CERT_ENV, "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def tls_files(server_url: str, environ: Mapping[str, str] | None = None, extra_cas: Sequence[Path] = ()) -> TLSFiles:
    """CA roots and client pairs from ``<config dir>/tls/<host:port>/`` plus ``extra_cas``."""
    out = TLSFiles(ca_files=[Path(p) for p in extra_cas] + env_ca_files(environ))
    d = config_dir(environ) / "tls" / server_hostport(server_url)
    if d.is_dir():
        for f in sorted(d.iterdir()):
            if f.suffix == ".crt":
                out.ca_files.append(f)
            elif f.suffix == ".cert":
                key = f.with_suffix(".key")
                if key.exists():
                    out.client_pairs.append((f, key))
    return out


@dataclass
class Credentials:
    """Username/password (or an identity token) for a registry."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token)


def registry_credentials(ref: ImageRef, environ: Mapping[str, str] | None = None) -> Credentials:
    """Credentials docker stored for the image's registry (credential helper first, then ``auths``)."""
    from trustbox.auth.dockerconfig import credentials_for

    host = DOCKER_HUB_AUTH_KEY if ref.official else ref.domain
    try:
        found = credentials_for(host, environ)
    except TrustboxError:
        return Credentials()
    return Credentials(*found) if found else Credentials()


PINNING_ENV = "TRUSTBOX_TRUST_PINNING"


def trust_pinning(environ: Mapping[str, str] | None = None) -> TrustPinning | None:
    """Notary-style ``trust_pinning`` from the JSON file named by ``$TRUSTBOX_TRUST_PINNING``.

    The file holds either a notary client config (``{"trust_pinning": {...}}``) or the section
    itself: ``{"certs": {GUN: [cert IDs]}, "ca": {GUN prefix: CA file}, "disable_tofu": bool}``.
    Relative CA paths are taken relative to the file. None when the variable is unset.
    """
    import json

    from trustbox.client.tufclient import TrustPinning

    name = _env(environ).get(PINNING_ENV, "")
    if not name:
        return None
    path = Path(name)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read trust pinning file {path} (${PINNING_ENV}): {exc}") from None
    section = doc.get("trust_pinning", doc) if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: trust_pinning must be a JSON object")
    certs, ca, tofu = section.get("certs", {}), section.get("ca", {}), section.get("disable_tofu", False)
    if not (isinstance(certs, dict) and all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in certs.values())):
        raise ConfigError(f"{path}: trust_pinning.certs must map GUNs to lists of certificate IDs")
    if not (isinstance(ca, dict) and all(isinstance(v, str) for v in ca.values())):
        raise ConfigError(f"{path}: trust_pinning.ca must map GUN prefixes to CA file paths")
    if not isinstance(tofu, bool):
        raise ConfigError(f"{path}: trust_pinning.disable_tofu must be true or false")
    return TrustPinning(
        certs={str(k): list(v) for k, v in certs.items()},
        ca={str(k): (path.parent / v) for k, v in ca.items()},
        disable_tofu=tofu,
    )
