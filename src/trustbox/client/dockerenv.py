"""Docker's environment, read in one place: what the docker CLI reads, and trustbox's own variables.

* config dir: ``$DOCKER_CONFIG`` or ``~/.docker``; trust dir: ``<config dir>/trust``;
* trust server: ``$DOCKER_CONTENT_TRUST_SERVER`` (must be https), ``https://notary.docker.io`` for
  Docker Hub, else ``https://<registry host[:port]>``;
* TLS: ``<config dir>/tls/<host:port>/`` (trust servers, as docker's trust client) and also
  ``/etc/docker/certs.d/<host:port>/`` (registries, as the docker daemon): ``*.crt`` CA roots,
  ``*.cert`` + ``*.key`` client pairs; ``$TRUSTBOX_CA_CERT`` adds CA files;
* insecure registries: ``$TRUSTBOX_INSECURE_REGISTRIES`` plus the loopback rule of
  :func:`trustbox.oci.reference.is_loopback`;
* credentials in ``<config dir>/config.json``: ``credHelpers`` (per registry) and ``credsStore``
  (default helper) by running ``docker-credential-<helper> get``; otherwise
  ``auths.<registry>.auth`` = base64("user:password") (or ``username``/``password`` fields).
  Writing goes to the helper when one is configured, else to ``auths`` with every other key
  preserved, in a 0600 file replaced atomically;
* trust pinning: the JSON file named by ``$TRUSTBOX_TRUST_PINNING``;
* sigstore attachments written by ``trust sign``: ``$TRUSTBOX_SIGSTORE`` (on unless a false boolean).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trustbox.atomicfile import atomic_write
from trustbox.client.errors import TrustServerURLError
from trustbox.client.pinning import TrustPinning
from trustbox.errors import ConfigError, TrustboxError
from trustbox.oci.reference import ImageRef

NOTARY_SERVER = "https://notary.docker.io"
DOCKER_HUB = "https://index.docker.io/v1/"
DOCKER_HUB_AUTH_KEY = DOCKER_HUB
_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB})
HELPER_TIMEOUT = 30
TRUST_SERVER_ENV = "DOCKER_CONTENT_TRUST_SERVER"
CA_CERT_ENV = "TRUSTBOX_CA_CERT"
INSECURE_ENV = "TRUSTBOX_INSECURE_REGISTRIES"
PINNING_ENV = "TRUSTBOX_TRUST_PINNING"
SIGSTORE_ENV = "TRUSTBOX_SIGSTORE"
_FALSE = frozenset({"0", "f", "false", "no", "off"})
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
#: where the docker daemon looks for a registry's certificates
CERTS_D = Path("/etc/docker/certs.d")


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG`` or ``~/.docker``."""
    value = _env(environ).get("DOCKER_CONFIG", "")
    return Path(value) if value else Path.home() / ".docker"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``<config dir>/config.json``."""
    return config_dir(environ) / "config.json"


def trust_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The docker trust directory, ``<config dir>/trust``."""
    return config_dir(environ) / "trust"


def insecure_registries(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Hosts listed in ``$TRUSTBOX_INSECURE_REGISTRIES`` (comma-separated)."""
    raw = _env(environ).get(INSECURE_ENV, "")
    return tuple(h.strip() for h in raw.split(",") if h.strip())


def sigstore_attachments(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``trust sign`` also writes sigstore attachments: ``$TRUSTBOX_SIGSTORE`` (default on;
    ``0``/``false``/``no``/``off`` turn it off, ``1``/``true``/``yes``/``on`` or empty keep it on).

    Raises:
        ConfigError: another value.
    """
    raw = _env(environ).get(SIGSTORE_ENV, "").strip().lower()
    if raw in _FALSE:
        return False
    if not raw or raw in _TRUE:
        return True
    raise ConfigError(f"${SIGSTORE_ENV} must be a boolean (1/0, true/false, yes/no, on/off), not {raw[:40]!r}")


def registry_key(registry: str) -> str:
    """The key docker files a registry under: ``host[:port]``, or Docker Hub's v1 URL."""
    value = registry.strip()
    if value in _HUB_NAMES:
        return DOCKER_HUB
    for prefix in ("https://", "http://"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
            break
    host = value.split("/", 1)[0]
    if host in _HUB_NAMES:
        return DOCKER_HUB
    if not host:
        raise ConfigError(f"invalid registry address {registry!r}")
    return host


def _key_matches(key: str, wanted: str) -> bool:
    try:
        return registry_key(key) == wanted
    except ConfigError:
        return False


def load_config(path: Path) -> dict[str, Any]:
    """The parsed config file, ``{}`` if it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return data


def save_config(path: Path, data: Mapping[str, Any]) -> None:
    """Write the config as docker does (tab-indented JSON), 0600, atomically."""
    atomic_write(path, json.dumps(data, indent="\t").encode("utf-8"), 0o600)


def helper_for(config: Mapping[str, Any], key: str) -> str | None:
    """The credential helper for a registry: ``credHelpers[key]``, else ``credsStore``."""
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for k, v in helpers.items():
            if isinstance(v, str) and v and _key_matches(k, key):
                return v
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _run_helper(helper: str, verb: str, data: str) -> subprocess.CompletedProcess[str]:
    program = f"docker-credential-{helper}"
    if shutil.which(program) is None:
        raise ConfigError(f"credential helper {program} not found in PATH")
    try:
        return subprocess.run(
            [program, verb], input=data, capture_output=True, text=True, timeout=HELPER_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"credential helper {program} failed: {exc}") from None


def helper_get(helper: str, server: str) -> tuple[str, str] | None:
    """Ask ``docker-credential-<helper> get``; None when it has nothing for ``server``."""
    proc = _run_helper(helper, "get", server)
    if proc.returncode != 0:
        if "credentials not found" in (proc.stdout + proc.stderr).lower():
            return None
        raise ConfigError(f"credential helper {helper} failed: {proc.stdout.strip() or proc.stderr.strip()}")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise ConfigError(f"credential helper {helper} returned invalid JSON") from None
    user, secret = (data.get("Username"), data.get("Secret")) if isinstance(data, dict) else (None, None)
    if not isinstance(user, str) or not isinstance(secret, str) or not secret or user == "<token>":
        return None
    return user, secret


def helper_store(helper: str, server: str, user: str, password: str) -> None:
    """``docker-credential-<helper> store``."""
    payload = json.dumps({"ServerURL": server, "Username": user, "Secret": password})
    proc = _run_helper(helper, "store", payload)
    if proc.returncode != 0:
        raise ConfigError(f"credential helper {helper} could not store credentials: {proc.stdout.strip() or proc.stderr.strip()}")


def helper_erase(helper: str, server: str) -> None:
    """``docker-credential-<helper> erase``."""
    proc = _run_helper(helper, "erase", server)
    if proc.returncode != 0 and "credentials not found" not in (proc.stdout + proc.stderr).lower():
        raise ConfigError(f"credential helper {helper} could not erase credentials: {proc.stdout.strip() or proc.stderr.strip()}")


def _decode_entry(entry: object) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep and user else None
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(secret, str):
        return name, secret
    return None


def credentials_for(registry_host: str, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """``(user, password)`` docker stored for a registry (helper first, then ``auths``), or None."""
    key = registry_key(registry_host)
    path = config_path(environ)
    config = load_config(path)
    helper = helper_for(config, key)
    if helper is not None:
        found = helper_get(helper, key)
        if found is not None:
            return found
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    if key in auths:
        found = _decode_entry(auths[key])
        if found is not None:
            return found
    for k, entry in auths.items():
        if _key_matches(k, key):
            found = _decode_entry(entry)
            if found is not None:
                return found
    return None


def store_credentials(registry_host: str, user: str, password: str, environ: Mapping[str, str] | None = None) -> Path:
    """Remember credentials as ``docker login`` does; return the config file path."""
    key = registry_key(registry_host)
    path = config_path(environ)
    config = load_config(path)
    helper = helper_for(config, key)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    if helper is not None:
        helper_store(helper, key, user, password)
        auths[key] = {}
    else:
        auths[key] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode("ascii")}
    config["auths"] = auths
    save_config(path, config)
    return path


def erase_credentials(registry_host: str, environ: Mapping[str, str] | None = None) -> bool:
    """Forget credentials for a registry (``docker logout``); True if any were stored."""
    key = registry_key(registry_host)
    path = config_path(environ)
    config = load_config(path)
    helper = helper_for(config, key)
    found = False
    if helper is not None:
        found = helper_get(helper, key) is not None
        helper_erase(helper, key)
    auths = config.get("auths")
    if isinstance(auths, dict):
        for k in [k for k in auths if _key_matches(k, key)]:
            del auths[k]
            found = True
        if found:
            save_config(path, config)
    return found


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


def env_ca_files(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Extra CA files from ``$TRUSTBOX_CA_CERT`` (paths separated by ``:``), e.g. the sandbox CA."""
    value = _env(environ).get(CA_CERT_ENV, "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def tls_dir_files(hostport: str, dirs: Sequence[Path]) -> TLSFiles:
    """CA roots (``*.crt``) and client pairs (``*.cert`` + ``*.key``) in ``<dir>/<host:port>/`` of each dir."""
    out = TLSFiles()
    for parent in dirs:
        d = parent / hostport
        if not d.is_dir():
            continue
        for f in sorted(d.iterdir()):
            if f.suffix == ".crt":
                out.ca_files.append(f)
            elif f.suffix == ".cert" and f.with_suffix(".key").exists():
                out.client_pairs.append((f, f.with_suffix(".key")))
    return out


def registry_tls_dirs(environ: Mapping[str, str] | None = None, config: Path | None = None) -> list[Path]:
    """Where a registry's certificates are looked up: ``<config dir>/tls`` and ``/etc/docker/certs.d``."""
    return [(config or config_dir(environ)) / "tls", CERTS_D]


def tls_files(server_url: str, environ: Mapping[str, str] | None = None, extra_cas: Sequence[Path] = ()) -> TLSFiles:
    """A trust server's TLS files, as docker's trust client finds them: ``extra_cas``,
    ``$TRUSTBOX_CA_CERT``, then ``<config dir>/tls/<host:port>/``."""
    found = tls_dir_files(server_hostport(server_url), [config_dir(environ) / "tls"])
    return TLSFiles([Path(p) for p in extra_cas] + env_ca_files(environ) + found.ca_files, found.client_pairs)


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
    host = DOCKER_HUB_AUTH_KEY if ref.official else ref.domain
    try:
        found = credentials_for(host, environ)
    except TrustboxError:
        return Credentials()
    return Credentials(*found) if found else Credentials()


def trust_pinning(environ: Mapping[str, str] | None = None) -> TrustPinning | None:
    """Notary-style ``trust_pinning`` from the JSON file named by ``$TRUSTBOX_TRUST_PINNING``.

    The file holds either a notary client config (``{"trust_pinning": {...}}``) or the section
    itself: ``{"certs": {GUN: [cert IDs]}, "ca": {GUN prefix: CA file}, "disable_tofu": bool}``.
    Relative CA paths are taken relative to the file. None when the variable is unset.
    """
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


def load_credentials(host: str, config: Path | None = None) -> tuple[str, str] | None:
    """Username and password docker stored for ``host`` (credential helper first, then ``auths``),
    in the config folder ``config`` (default: :func:`config_dir`)."""
    environ = dict(os.environ)
    if config is not None:
        environ["DOCKER_CONFIG"] = str(config)
    return credentials_for(host, environ)
