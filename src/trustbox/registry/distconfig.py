"""registry:2's configuration file (distribution 2.8 ``config.yml``) and its ``REGISTRY_*``
environment overrides, read into :class:`~trustbox.registry.config.RegistryConfig` fields.

The file is YAML, ``version: 0.1``. Every variable named ``REGISTRY_<SECTION>_<KEY>...`` is
applied on top as distribution's ``configuration/parser.go`` does: the name is split at ``_``;
struct fields are matched by their upper-cased Go field name (``REGISTRY_HTTP_TLS_CERTIFICATE``,
``REGISTRY_NOTIFICATIONS_EVENTCONFIG_INCLUDEREFERENCES``), map keys case-insensitively, new map
keys are stored lower-cased, the value is read as YAML into the field's type, a variable naming
no field is ignored with a warning, and variables are applied in sorted order.

Options trustbox honours become configuration; an option it cannot honour is refused with a
:class:`~trustbox.errors.ConfigError` naming it; keys registry:2 itself does not know are
ignored with a warning, as registry:2 (yaml.v2, not strict) ignores them silently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trustbox.errors import ConfigError

log = logging.getLogger("trustbox.registry")

ENV_PREFIX = "REGISTRY_"

# Field schema of distribution 2.8's Configuration: env name (upper-cased Go field name) ->
# (yaml key, kind); a kind is a nested schema (struct), "map" (string keys, any values),
# "list", "str", "bool", "int" or "duration".
_Schema = dict[str, tuple[str, Any]]

_LOG: _Schema = {
    "ACCESSLOG": ("accesslog", {"DISABLED": ("disabled", "bool")}),
    "LEVEL": ("level", "str"), "FORMATTER": ("formatter", "str"), "FIELDS": ("fields", "map"),
    "HOOKS": ("hooks", "list"),
}
_HTTP: _Schema = {
    "ADDR": ("addr", "str"), "NET": ("net", "str"), "HOST": ("host", "str"), "PREFIX": ("prefix", "str"),
    "SECRET": ("secret", "str"), "RELATIVEURLS": ("relativeurls", "bool"), "DRAINTIMEOUT": ("draintimeout", "duration"),
    "TLS": ("tls", {
        "CERTIFICATE": ("certificate", "str"), "KEY": ("key", "str"), "CLIENTCAS": ("clientcas", "list"),
        "MINIMUMTLS": ("minimumtls", "str"), "CIPHERSUITES": ("ciphersuites", "list"),
        "LETSENCRYPT": ("letsencrypt", {"CACHEFILE": ("cachefile", "str"), "EMAIL": ("email", "str"),
                                        "HOSTS": ("hosts", "list")}),
    }),
    "HEADERS": ("headers", "strmap"),
    "DEBUG": ("debug", {"ADDR": ("addr", "str"),
                        "PROMETHEUS": ("prometheus", {"ENABLED": ("enabled", "bool"), "PATH": ("path", "str")})}),
    "HTTP2": ("http2", {"DISABLED": ("disabled", "bool")}),
}
_SCHEMA: _Schema = {
    "VERSION": ("version", "str"),
    "LOG": ("log", _LOG),
    "LOGLEVEL": ("loglevel", "str"),
    "STORAGE": ("storage", "map"),
    "AUTH": ("auth", "map"),
    "MIDDLEWARE": ("middleware", "map"),
    "REPORTING": ("reporting", {
        "BUGSNAG": ("bugsnag", {"APIKEY": ("apikey", "str"), "RELEASESTAGE": ("releasestage", "str"),
                                "ENDPOINT": ("endpoint", "str")}),
        "NEWRELIC": ("newrelic", {"LICENSEKEY": ("licensekey", "str"), "NAME": ("name", "str"),
                                  "VERBOSE": ("verbose", "bool")}),
    }),
    "HTTP": ("http", _HTTP),
    "NOTIFICATIONS": ("notifications", {
        "EVENTCONFIG": ("events", {"INCLUDEREFERENCES": ("includereferences", "bool")}),
        "ENDPOINTS": ("endpoints", "list"),
    }),
    "REDIS": ("redis", {
        "ADDR": ("addr", "str"), "PASSWORD": ("password", "str"), "DB": ("db", "int"),
        "DIALTIMEOUT": ("dialtimeout", "duration"), "READTIMEOUT": ("readtimeout", "duration"),
        "WRITETIMEOUT": ("writetimeout", "duration"),
        "POOL": ("pool", {"MAXIDLE": ("maxidle", "int"), "MAXACTIVE": ("maxactive", "int"),
                          "IDLETIMEOUT": ("idletimeout", "duration")}),
    }),
    "HEALTH": ("health", {
        "FILECHECKERS": ("file", "list"), "HTTPCHECKERS": ("http", "list"), "TCPCHECKERS": ("tcp", "list"),
        "STORAGEDRIVER": ("storagedriver", {"ENABLED": ("enabled", "bool"), "INTERVAL": ("interval", "duration"),
                                            "THRESHOLD": ("threshold", "int")}),
    }),
    "CATALOG": ("catalog", {"MAXENTRIES": ("maxentries", "int")}),
    "PROXY": ("proxy", {"REMOTEURL": ("remoteurl", "str"), "USERNAME": ("username", "str"),
                        "PASSWORD": ("password", "str")}),
    "COMPATIBILITY": ("compatibility", {
        "SCHEMA1": ("schema1", {"TRUSTKEY": ("signingkeyfile", "str"), "ENABLED": ("enabled", "bool")}),
    }),
    "VALIDATION": ("validation", {
        "ENABLED": ("enabled", "bool"), "DISABLED": ("disabled", "bool"),
        "MANIFESTS": ("manifests", {"URLS": ("urls", {"ALLOW": ("allow", "list"), "DENY": ("deny", "list")})}),
    }),
    "POLICY": ("policy", {"REPOSITORY": ("repository", {"CLASSES": ("classes", "list")})}),
}
_STORAGE_SPECIAL = ("maintenance", "cache", "delete", "redirect")


# --- YAML and the environment ---------------------------------------------------------------

def _yaml_value(text: str, kind: Any) -> Any:
    """``text`` read as YAML into a field of ``kind`` (a string field keeps the text itself,
    as yaml.v2 does for a scalar that resolves to another type; so do the string lists of
    header maps, ``strmap``)."""
    import yaml  # loaded by registries configured from YAML only

    try:
        if kind == "strmap":
            return yaml.load(text, Loader=yaml.BaseLoader) if text.strip() else None  # noqa: S506 (no objects)
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML value {text[:80]!r}: {exc}") from None
    if kind == "str" and value is not None and not isinstance(value, str):
        return text.strip()
    return value


def _set_struct(doc: dict[str, Any], schema: _Schema, path: list[str], payload: str, name: str) -> None:
    entry = schema.get(path[0])
    if entry is None:
        log.warning("ignoring unrecognized environment variable %s", name)
        return
    key, kind = entry
    if len(path) == 1:
        value = _yaml_value(payload, kind)
        if key in ("storage", "auth") and isinstance(value, str):
            value = {value: {}}  # "REGISTRY_STORAGE=s3": a driver without parameters
        doc[key] = value
        return
    if isinstance(kind, dict):
        child = doc.get(key)
        if not isinstance(child, dict):
            child = doc[key] = {}
        _set_struct(child, kind, path[1:], payload, name)
    elif kind in ("map", "strmap"):
        child = doc.get(key)
        if not isinstance(child, dict):
            child = doc[key] = {}
        _set_map(child, path[1:], payload, "strmap" if kind == "strmap" else "any")
    # a longer name below a scalar or a list sets nothing (as distribution's parser)


def _set_map(m: dict[Any, Any], path: list[str], payload: str, kind: str) -> None:
    if len(path) > 1:
        for k, v in m.items():
            if str(k).upper() == path[0] and v is not None:
                if isinstance(v, dict):
                    _set_map(v, path[1:], payload, kind)
                return
        child: dict[Any, Any] = {}
        _set_map(child, path[1:], payload, kind)
        m[path[0].lower()] = child
        return
    m[path[0].lower()] = _yaml_value(payload, kind)


def apply_environment(doc: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Apply every ``REGISTRY_*`` variable of ``env`` to the parsed file ``doc`` (in place,
    returned), in sorted order, as distribution's configuration parser does."""
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            _set_struct(doc, _SCHEMA, name.split("_")[1:], env[name], name)
    return doc


def _warn_unknown(doc: Mapping[str, Any], schema: _Schema, where: str) -> None:
    known = {key: kind for key, kind in schema.values()}
    for key, value in doc.items():
        kind = known.get(str(key))
        if kind is None:
            log.warning("%s: unknown option %s%s ignored (registry:2 ignores it too)", "config", where, key)
        elif isinstance(kind, dict) and isinstance(value, dict):
            _warn_unknown(value, kind, f"{where}{key}.")


# --- values ------------------------------------------------------------------------------------

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def go_duration(value: Any, option: str) -> float:
    """Seconds of a Go ``time.Duration`` as yaml.v2 reads one: a string in Go's syntax
    (``300ms``, ``1h30m``, ``-1.5s``, ``0``) or an integer of nanoseconds.

    Raises:
        ConfigError: anything else (naming ``option``).
    """
    if isinstance(value, bool):
        raise ConfigError(f"{option}: expected a duration such as 10s, got {value!r}")
    if isinstance(value, int):
        return value / 1e9
    if not isinstance(value, str):
        raise ConfigError(f"{option}: expected a duration such as 10s, got {value!r}")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None or m.group(1) in ("", "."):
            raise ConfigError(f"{option}: invalid duration {value!r}", hint="use Go's syntax, e.g. 10s, 1h30m")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ConfigError(f"{option}: invalid duration {value!r}")
    return sign * total


def _bool(value: Any, option: str) -> bool:
    """A boolean as registry:2's drivers read parameters: a YAML bool or a string strconv.ParseBool takes."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false",
                                            "False"):
        return value in ("1", "t", "T", "TRUE", "true", "True")
    raise ConfigError(f"{option}: expected true or false, got {value!r}")


def _int(value: Any, option: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{option}: expected an integer, got {value!r}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{option}: expected an integer, got {value!r}") from None


def _section(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key} must be a mapping")
    return {str(k): v for k, v in value.items()}


def _refuse(option: str, why: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"registry:2 option {option} is not supported by trustbox: {why}", hint=hint)


def _only(section: Mapping[str, Any], allowed: set[str], where: str, why: str) -> None:
    for key, value in section.items():
        if key not in allowed and value not in (None, "", [], {}, False):
            raise _refuse(f"{where}{key}", why)


# --- sections --------------------------------------------------------------------------------

_S3_HONOURED = {"accesskey", "secretkey", "region", "regionendpoint", "bucket", "rootdirectory", "secure",
                "v4auth", "chunksize", "forcepathstyle", "skipverify", "encrypt", "keyid", "storageclass",
                "objectacl", "useragent", "multipartcopychunksize", "multipartcopymaxconcurrency",
                "multipartcopythresholdsize", "sessiontoken"}


def _storage(storage: dict[str, Any], out: dict[str, Any]) -> None:
    drivers = [k for k in storage if k not in _STORAGE_SPECIAL]
    if len(drivers) > 1:
        raise ConfigError(f"storage: exactly one storage driver is allowed, found {', '.join(sorted(drivers))}")
    if not drivers:
        raise ConfigError("no storage configuration provided", hint="add storage.filesystem or storage.s3")
    kind = drivers[0]
    params = storage[kind] or {}
    if not isinstance(params, dict):
        raise ConfigError(f"storage.{kind} must be a mapping")
    params = {str(k).lower(): v for k, v in params.items()}
    if kind == "filesystem":
        _only(params, {"rootdirectory", "maxthreads"}, "storage.filesystem.", "unknown filesystem parameter")
        out["storage"] = str(params.get("rootdirectory") or "/var/lib/registry")
        if params.get("maxthreads") not in (None, ""):
            out["storage_max_threads"] = max(25, _int(params["maxthreads"], "storage.filesystem.maxthreads"))
    elif kind == "s3":
        _s3(params, out)
    else:
        raise _refuse(f"storage.{kind}", "trustbox stores on a filesystem or S3",
                      hint="use storage.filesystem or storage.s3")
    _storage_extras(storage, out)


def _s3(params: dict[str, Any], out: dict[str, Any]) -> None:
    _only(params, _S3_HONOURED, "storage.s3.", "unknown S3 parameter")
    bucket, region = params.get("bucket"), params.get("region")
    if not bucket:
        raise ConfigError("storage.s3: no bucket parameter provided")
    if not region:
        raise ConfigError("storage.s3: no region parameter provided")
    root = str(params.get("rootdirectory") or "").strip("/")
    out["storage"] = f"s3://{bucket}/{root}" if root else f"s3://{bucket}"
    out["s3_region"] = str(region)
    secure = _bool(params["secure"], "storage.s3.secure") if params.get("secure") is not None else True
    endpoint = str(params.get("regionendpoint") or "")
    if endpoint:
        if "://" not in endpoint:
            endpoint = ("https://" if secure else "http://") + endpoint
        out["s3_endpoint_url"] = endpoint
        out["s3_path_style"] = True  # registry:2 2.8 always addresses a custom endpoint by path
    elif not secure:
        out["s3_endpoint_url"] = f"http://s3.{region}.amazonaws.com"
    if params.get("forcepathstyle") is not None:
        out["s3_path_style"] = _bool(params["forcepathstyle"], "storage.s3.forcepathstyle")
    if params.get("accesskey"):
        out["s3_access_key"] = str(params["accesskey"])
        out["s3_secret_key"] = str(params.get("secretkey") or "")
    if params.get("sessiontoken"):
        out["s3_session_token"] = str(params["sessiontoken"])
    if params.get("v4auth") is not None and not _bool(params["v4auth"], "storage.s3.v4auth"):
        raise _refuse("storage.s3.v4auth: false", "S3 signature version 2 is not available", hint="remove v4auth")
    if params.get("skipverify") is not None and _bool(params["skipverify"], "storage.s3.skipverify"):
        out["s3_verify_tls"] = False
    if params.get("chunksize") not in (None, ""):
        size = _int(params["chunksize"], "storage.s3.chunksize")
        if size < 5 << 20:
            raise ConfigError(f"storage.s3.chunksize {size} is below S3's minimum part size of 5 MiB")
        out["s3_chunk_size"] = size
    if params.get("encrypt") is not None and _bool(params["encrypt"], "storage.s3.encrypt"):
        out["s3_sse"] = "aws:kms" if params.get("keyid") else "AES256"
        if params.get("keyid"):
            out["s3_sse_kms_key_id"] = str(params["keyid"])
    if params.get("storageclass") not in (None, ""):
        sc = str(params["storageclass"]).upper()
        if sc == "NONE":
            sc = ""
        out["s3_storage_class"] = sc
    acl = params.get("objectacl")
    if acl not in (None, "", "private"):
        out["s3_object_acl"] = str(acl)


def _storage_extras(storage: dict[str, Any], out: dict[str, Any]) -> None:
    delete = _section(storage, "delete", "storage.")
    out["delete_enabled"] = _bool(delete.get("enabled", False), "storage.delete.enabled")
    maintenance = _section(storage, "maintenance", "storage.")
    _only(maintenance, {"uploadpurging", "readonly"}, "storage.maintenance.", "unknown maintenance option")
    purging = _section(maintenance, "uploadpurging", "storage.maintenance.")
    enabled = _bool(purging.get("enabled", True), "storage.maintenance.uploadpurging.enabled")
    dry_run = _bool(purging.get("dryrun", False), "storage.maintenance.uploadpurging.dryrun")
    if not enabled or dry_run:
        out["upload_idle_timeout"] = 10 * 365 * 86400  # never purged (a dry run only logs in registry:2)
    else:
        age = go_duration(purging.get("age", "168h"), "storage.maintenance.uploadpurging.age")
        out["upload_idle_timeout"] = max(1, int(age))
    if purging.get("interval") is not None:
        go_duration(purging["interval"], "storage.maintenance.uploadpurging.interval")
    readonly = _section(maintenance, "readonly", "storage.maintenance.")
    if readonly.get("enabled") is not None:
        out["read_only"] = _bool(readonly["enabled"], "storage.maintenance.readonly.enabled")
    cache = _section(storage, "cache", "storage.")
    _only(cache, {"blobdescriptor", "blobdescriptorsize"}, "storage.cache.", "unknown cache option")
    kind = cache.get("blobdescriptor")
    if kind not in (None, "", "inmemory", "redis"):
        raise ConfigError(f"storage.cache.blobdescriptor: unknown cache {kind!r}", hint="use inmemory")
    if kind == "redis":
        log.warning("storage.cache.blobdescriptor redis: trustbox keeps its descriptor cache in process "
                    "(content-addressed, so replicas never disagree); redis is not used")
    redirect = _section(storage, "redirect", "storage.")
    _only(redirect, {"disable"}, "storage.redirect.", "unknown redirect option")
    # trustbox never redirects blob reads to the store: it verifies what it serves


def _http(http: dict[str, Any], out: dict[str, Any]) -> None:
    addr = str(http.get("addr") or ":5000")
    out["listen"] = ("0.0.0.0" + addr) if addr.startswith(":") else addr
    net = str(http.get("net") or "tcp")
    if net != "tcp":
        raise _refuse(f"http.net: {net}", "trustbox listens on TCP only")
    if http.get("host"):
        host = str(http["host"]).rstrip("/")
        if not re.match(r"^https?://[^/]+", host):
            raise ConfigError(f"http.host {host!r} must be an absolute URL such as https://registry.example.com")
        out["http_host"] = host
    prefix = str(http.get("prefix") or "").strip()
    if prefix and prefix != "/":
        out["http_prefix"] = "/" + prefix.strip("/")
    out["relative_urls"] = _bool(http.get("relativeurls", False), "http.relativeurls")
    if http.get("draintimeout") is not None:
        go_duration(http["draintimeout"], "http.draintimeout")  # granian drains in-flight requests itself
    tls = _section(http, "tls", "http.")
    _only(tls, {"certificate", "key", "minimumtls"}, "http.tls.", "trustbox serves TLS from a certificate and key")
    if tls.get("certificate"):
        out["tls_cert"] = str(tls["certificate"])
        out["tls_key"] = str(tls.get("key") or "")
        minimum = str(tls.get("minimumtls") or "tls1.2").lower()
        if minimum not in ("tls1.2", "tls1.3"):
            raise _refuse(f"http.tls.minimumtls: {minimum}", "TLS below 1.2 is not offered", hint="use tls1.2")
        out["tls_min_version"] = minimum[3:]
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError("http.headers must map header names to lists of values")
    out["http_headers"] = {
        str(k): [str(v) for v in (vals if isinstance(vals, list) else [vals])] for k, vals in headers.items()
    }
    debug = _section(http, "debug", "http.")
    if any(v not in (None, "", {}, False) for v in debug.values()):
        raise _refuse("http.debug", "no debug server (pprof, expvar, prometheus) in trustbox")
    h2 = _section(http, "http2", "http.")
    if _bool(h2.get("disabled", False), "http.http2.disabled"):
        out["http1_only"] = True


def _auth(auth: dict[str, Any], out: dict[str, Any]) -> None:
    if not auth:
        return
    if len(auth) != 1:
        raise ConfigError(f"auth: must provide exactly one type, found {', '.join(sorted(auth))}")
    kind, params = next(iter(auth.items()))
    params = {str(k).lower(): v for k, v in (params or {}).items()}
    if kind == "htpasswd":
        _only(params, {"realm", "path"}, "auth.htpasswd.", "unknown htpasswd option")
        if not params.get("path"):
            raise ConfigError("auth.htpasswd: no path given")
        out["htpasswd"] = str(params["path"])
        out["htpasswd_realm"] = str(params.get("realm") or "")
    elif kind == "token":
        _only(params, {"realm", "service", "issuer", "rootcertbundle", "autoredirect"}, "auth.token.",
              "unknown token option")
        if params.get("autoredirect") is not None and _bool(params["autoredirect"], "auth.token.autoredirect"):
            raise _refuse("auth.token.autoredirect", "the realm is used as configured")
        for k in ("realm", "service", "issuer", "rootcertbundle"):
            if not params.get(k):
                raise ConfigError(f"auth.token: {k} is required")
            out[f"auth_token_{k}"] = str(params[k])
    elif kind == "none":
        return
    else:
        raise _refuse(f"auth.{kind}", "trustbox authenticates with htpasswd or tokens",
                      hint="use auth.htpasswd or auth.token")


def _endpoint(raw: Any, i: int) -> dict[str, Any] | None:
    where = f"notifications.endpoints[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    ep = {str(k).lower(): v for k, v in raw.items()}
    _only(ep, {"name", "disabled", "url", "headers", "timeout", "threshold", "backoff", "ignoredmediatypes", "ignore"},
          where + ".", "unknown endpoint option")
    if _bool(ep.get("disabled", False), f"{where}.disabled"):
        log.info("endpoint %s disabled, skipping", ep.get("name"))
        return None
    url = str(ep.get("url") or "")
    if not re.match(r"^https?://", url):
        raise ConfigError(f"{where}.url {url!r} must be an http(s) URL")
    headers = ep.get("headers") or {}
    if not isinstance(headers, dict):
        raise ConfigError(f"{where}.headers must map header names to lists of values")
    ignore = ep.get("ignore") or {}
    if not isinstance(ignore, dict):
        raise ConfigError(f"{where}.ignore must be a mapping")
    timeout = go_duration(ep.get("timeout") or 0, f"{where}.timeout")
    backoff = go_duration(ep.get("backoff") or 0, f"{where}.backoff")
    threshold = _int(ep.get("threshold") or 0, f"{where}.threshold")
    return {
        "name": str(ep.get("name") or ""),
        "url": url,
        "headers": {str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in headers.items()},
        # distribution's defaults for zero values: 1 s timeout, threshold 10, 1 s backoff
        "timeout": timeout if timeout > 0 else 1.0,
        "threshold": threshold if threshold > 0 else 10,
        "backoff": backoff if backoff > 0 else 1.0,
        "ignored_media_types": [str(x) for x in (ep.get("ignoredmediatypes") or [])]
        + [str(x) for x in (ignore.get("mediatypes") or [])],
        "ignored_actions": [str(x) for x in (ignore.get("actions") or [])],
    }


def _notifications(section: dict[str, Any], out: dict[str, Any]) -> None:
    endpoints = section.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise ConfigError("notifications.endpoints must be a list")
    out["notifications"] = [e for i, raw in enumerate(endpoints) if (e := _endpoint(raw, i)) is not None]
    events = _section(section, "events", "notifications.")
    out["notify_include_references"] = _bool(events.get("includereferences", False),
                                              "notifications.events.includereferences")


def _log(doc: dict[str, Any], out: dict[str, Any]) -> None:
    section = _section(doc, "log", "")
    level = str(section.get("level") or doc.get("loglevel") or "info").lower()
    if level not in ("error", "warn", "info", "debug"):
        raise ConfigError(f"invalid loglevel {level} Must be one of [error, warn, info, debug]")
    out["log_level"] = "warning" if level == "warn" else level
    formatter = str(section.get("formatter") or "text")
    if formatter not in ("text", "json", "logstash"):
        raise ConfigError(f"log.formatter: unsupported log formatter {formatter!r}", hint="use text, json or logstash")
    out["log_formatter"] = formatter
    fields = section.get("fields") or {}
    if not isinstance(fields, dict):
        raise ConfigError("log.fields must be a mapping")
    out["log_fields"] = {str(k): str(v) for k, v in fields.items()}
    if section.get("hooks"):
        raise _refuse("log.hooks", "no mail hooks; send trustbox's log lines to your log collector")
    access = _section(section, "accesslog", "log.")
    if _bool(access.get("disabled", False), "log.accesslog.disabled"):
        out["access_log"] = False


def _validation(section: dict[str, Any], out: dict[str, Any]) -> None:
    # distribution 2.8: validation is on unless disabled and not (deprecated) explicitly enabled
    enabled = _bool(section.get("enabled", False), "validation.enabled")
    if not enabled and _bool(section.get("disabled", False), "validation.disabled"):
        raise _refuse("validation.disabled", "trustbox always checks that a manifest's blobs are in the repository")
    out["manifest_urls_checked"] = True  # without allow/deny patterns registry:2 allows no layer URL
    urls = _section(_section(section, "manifests", "validation."), "urls", "validation.manifests.")
    for key in ("allow", "deny"):
        patterns = [str(p) for p in (urls.get(key) or [])]
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ConfigError(f"validation.manifests.urls.{key}: invalid pattern {p!r}: {exc}") from None
        out[f"manifest_urls_{key}"] = patterns


def _health(section: dict[str, Any], out: dict[str, Any]) -> None:
    for kind in ("file", "http", "tcp"):
        if section.get(kind):
            raise _refuse(f"health.{kind}", "only the storage driver check is available",
                          hint="use health.storagedriver")
    sd = _section(section, "storagedriver", "health.")
    if _bool(sd.get("enabled", False), "health.storagedriver.enabled"):
        out["health_interval"] = go_duration(sd.get("interval") or "10s", "health.storagedriver.interval") or 10.0
        out["health_threshold"] = max(1, _int(sd.get("threshold") or 1, "health.storagedriver.threshold"))


def translate(doc: dict[str, Any]) -> dict[str, Any]:
    """RegistryConfig fields for a parsed registry:2 configuration (environment applied).

    Raises:
        ConfigError: a wrong version or value, or an option trustbox cannot honour (named).
    """
    version = str(doc.get("version", "")).strip()
    if version != "0.1":
        raise ConfigError(f"unsupported version: {version!r}", hint="registry:2 configuration files say version: 0.1")
    _warn_unknown(doc, _SCHEMA, "")
    out: dict[str, Any] = {"layout": "registry2"}
    storage = doc.get("storage")
    if isinstance(storage, str):
        storage = {storage: {}}
    if not isinstance(storage, dict):
        raise ConfigError("no storage configuration provided", hint="add storage.filesystem or storage.s3")
    _storage({str(k): v for k, v in storage.items()}, out)
    _http(_section(doc, "http", ""), out)
    _auth(_section(doc, "auth", ""), out)
    _notifications(_section(doc, "notifications", ""), out)
    _log(doc, out)
    _validation(_section(doc, "validation", ""), out)
    _health(_section(doc, "health", ""), out)
    catalog = _section(doc, "catalog", "")
    out["catalog_max_entries"] = _int(catalog.get("maxentries") or 1000, "catalog.maxentries")
    if out["catalog_max_entries"] <= 0:
        out["catalog_max_entries"] = 1000
    for key, why in (("middleware", "no registry, repository or storage middleware (cloudfront, redirect...)"),
                     ("reporting", "no bugsnag or newrelic reporting"),
                     ("proxy", "trustbox is not a pull-through cache")):
        section = doc.get(key)
        if section and any(v not in (None, "", {}, []) for v in (section.values() if isinstance(section, dict)
                                                                else [section])):
            raise _refuse(key, why)
    schema1 = _section(_section(doc, "compatibility", ""), "schema1", "compatibility.")
    if _bool(schema1.get("enabled", False), "compatibility.schema1.enabled"):
        raise _refuse("compatibility.schema1.enabled", "Docker schema 1 manifests are not accepted")
    classes = _section(_section(doc, "policy", ""), "repository", "policy.").get("classes")
    if classes:
        raise _refuse("policy.repository.classes", "no repository classes")
    redis = _section(doc, "redis", "")
    if redis.get("addr") and _section(_section(doc, "storage", ""), "cache", "storage.").get("blobdescriptor") != "redis":
        raise _refuse("redis", "trustbox uses no redis")
    return out


def _headers_as_text(doc: dict[Any, Any], raw: Any) -> None:
    """Header values as the file wrote them (``[yes]`` is the text ``yes``, as yaml.v2 decodes
    it into ``http.Header``), taken from ``raw``, the file read without type resolution."""
    if not isinstance(raw, dict):
        return
    http, raw_http = doc.get("http"), raw.get("http")
    if isinstance(http, dict) and isinstance(raw_http, dict) and "headers" in raw_http:
        http["headers"] = raw_http["headers"]
    notes, raw_notes = doc.get("notifications"), raw.get("notifications")
    if isinstance(notes, dict) and isinstance(raw_notes, dict):
        eps, raw_eps = notes.get("endpoints"), raw_notes.get("endpoints")
        if isinstance(eps, list) and isinstance(raw_eps, list) and len(eps) == len(raw_eps):
            for ep, raw_ep in zip(eps, raw_eps, strict=True):
                if isinstance(ep, dict) and isinstance(raw_ep, dict) and "headers" in raw_ep:
                    ep["headers"] = raw_ep["headers"]


def read_distribution_config(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Read registry:2's ``config.yml`` plus the ``REGISTRY_*`` variables of ``env`` into
    RegistryConfig fields.

    Raises:
        ConfigError: unreadable file, invalid YAML, or anything :func:`translate` refuses.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import yaml  # loaded by registries configured from YAML only

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid config file {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path} must hold a mapping")
    _headers_as_text(doc, yaml.load(text, Loader=yaml.BaseLoader))  # noqa: S506 (BaseLoader makes no objects)
    doc = apply_environment({str(k): v for k, v in doc.items()}, env)
    try:
        return translate(doc)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from None
