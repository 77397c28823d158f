"""registry:2's notification events (distribution 2.8 ``notifications/event.go`` and ``bridge.go``).

An event is a JSON object with registry:2's fields in its order: ``id``, ``timestamp``,
``action`` (``push``, ``pull``, ``mount``, ``delete``), ``target`` (the descriptor's
``mediaType``/``size``/``digest``, then ``length``, ``repository``, ``fromRepository``, ``url``,
``tag``, ``references``; empty ones left out), ``request`` (``id``, ``addr``, ``host``,
``method``, ``useragent``), ``actor`` (``name``) and ``source`` (``addr``, ``instanceID``).
Blob events carry ``application/octet-stream`` as registry:2's blob descriptors do; manifest
events the manifest's media type, sha256 digest and size. Endpoints receive one event per POST,
in the envelope ``{"events": [...]}`` indented by three spaces, with the media type
:data:`EVENTS_MEDIA_TYPE`.
"""

from __future__ import annotations

import json
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

from trustbox.oci.digest import Digest, digest_bytes
from trustbox.tuf.timefmt import format_time

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
BLOB_MEDIA_TYPE = "application/octet-stream"
PUSH, PULL, MOUNT, DELETE = "push", "pull", "mount", "delete"
_DESCRIPTOR_FIELDS = ("mediaType", "size", "digest", "urls", "annotations", "platform")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Who asked and how: the ``request`` and ``actor`` parts of every event of a request,
    plus the base URL events' ``url`` fields start with."""

    id: str
    addr: str
    host: str
    method: str
    useragent: str
    actor: str | None
    base_url: str  # "" (relative URLs) or "http://host:port", then the prefix


def remote_addr(forwarded_for: str | None, real_ip: str | None, peer: str) -> str:
    """The client address as registry:2 reports it: the first ``X-Forwarded-For`` entry, else
    ``X-Real-Ip``, when it is an IP address; else the connection's ``host:port``."""
    for candidate in ((forwarded_for or "").split(",")[0].strip(), (real_ip or "").strip()):
        if candidate:
            try:
                ip_address(candidate)
            except ValueError:
                continue
            return candidate
    return peer


def source_record(listen: str) -> dict[str, str]:
    """This process as an event ``source``: ``<hostname>:<port of the listen address>`` and a
    random instance id (as registry:2 names itself)."""
    port = listen.rpartition(":")[2]
    host = socket.gethostname()
    return {"addr": f"{host}:{port}" if port.isdigit() else host, "instanceID": str(uuid.uuid4())}


def _envelope_fields(action: str, target: dict[str, Any], req: RequestRecord, source: dict[str, str]) -> dict[str, Any]:
    request: dict[str, Any] = {"id": req.id}
    if req.addr:
        request["addr"] = req.addr
    if req.host:
        request["host"] = req.host
    request["method"] = req.method
    request["useragent"] = req.useragent
    return {
        "id": str(uuid.uuid4()),
        "timestamp": format_time(datetime.now(UTC)),
        "action": action,
        "target": target,
        "request": request,
        "actor": {"name": req.actor} if req.actor else {},
        "source": {k: v for k, v in source.items() if v},
    }


def _descriptor(raw: Any) -> dict[str, Any]:
    """A descriptor as distribution 2.8's ``Descriptor`` serialises it (its fields only)."""
    if not isinstance(raw, dict):
        return {}
    return {k: raw[k] for k in _DESCRIPTOR_FIELDS if raw.get(k) not in (None, "", 0, [], {})}


def references(body: bytes) -> list[dict[str, Any]]:
    """What a manifest references (config then layers, or an index's manifests)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    if not isinstance(doc, dict):
        return []
    if isinstance(doc.get("manifests"), list):
        return [_descriptor(m) for m in doc["manifests"]]
    out = [_descriptor(doc["config"])] if isinstance(doc.get("config"), dict) else []
    out.extend(_descriptor(x) for x in doc.get("layers") or [] if isinstance(x, dict))
    return out


def manifest_event(action: str, req: RequestRecord, source: dict[str, str], repo: str, body: bytes,
                   media_type: str, tag: str | None, include_references: bool) -> dict[str, Any]:
    """A manifest ``push`` or ``pull`` (registry:2's digest: sha256 of the bytes)."""
    d = digest_bytes(body)
    target: dict[str, Any] = {"mediaType": media_type, "size": len(body), "digest": str(d), "length": len(body),
              "repository": repo, "url": f"{req.base_url}/v2/{repo}/manifests/{d}"}
    if tag:
        target["tag"] = tag
    if include_references:
        refs = references(body)
        if refs:
            target["references"] = refs
    return _envelope_fields(action, target, req, source)


def blob_event(action: str, req: RequestRecord, source: dict[str, str], repo: str, d: Digest, size: int,
               from_repo: str | None = None) -> dict[str, Any]:
    """A blob ``push``, ``pull`` or ``mount``."""
    target: dict[str, Any] = {"mediaType": BLOB_MEDIA_TYPE}
    if size:
        target["size"] = size
    target["digest"] = str(d)
    if size:
        target["length"] = size
    target["repository"] = repo
    if from_repo:
        target["fromRepository"] = from_repo
    target["url"] = f"{req.base_url}/v2/{repo}/blobs/{d}"
    return _envelope_fields(action, target, req, source)


def delete_event(req: RequestRecord, source: dict[str, str], repo: str, d: Digest | None = None,
                 tag: str | None = None) -> dict[str, Any]:
    """A manifest or blob ``delete`` (``digest``) or a tag's (``tag``)."""
    target: dict[str, Any] = {}
    if d is not None:
        target["digest"] = str(d)
    target["repository"] = repo
    if tag:
        target["tag"] = tag
    return _envelope_fields(DELETE, target, req, source)


def envelope_bytes(events: list[dict[str, Any]]) -> bytes:
    """The POST body: ``{"events": [...]}`` as Go's ``json.MarshalIndent(v, "", "   ")``
    writes it (HTML-safe escaping included)."""
    text = json.dumps({"events": events}, indent=3, ensure_ascii=False)
    for raw, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                     ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text.encode("utf-8", "replace")
