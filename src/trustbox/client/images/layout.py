"""Local image sources and destinations in skopeo's transport syntax.

* ``oci:DIR[:REF]`` — an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/``);
  ``REF`` selects the ``org.opencontainers.image.ref.name`` annotation.
* ``oci-archive:FILE[:REF]`` — a tar of such a layout.
* ``docker-archive:FILE[:NAME:TAG|:@N]`` — what ``docker save`` writes (``manifest.json`` with
  ``Config``/``RepoTags``/``Layers``). Read: like skopeo, the image becomes a Docker
  schema 2 manifest: the config keeps its exact bytes and uncompressed layers are gzip-compressed
  (deterministically: no name, mtime 0) while already compressed layers are used as they are.
  Written (``trustbox pull``, :class:`DockerArchiveDestination`): one image, config bytes as
  pulled, layers uncompressed and checked against the config's ``diff_ids``, for ``docker load``.

Every destination writes into a staging directory and only moves complete, verified content into
place in ``commit()``; ``abort()`` leaves the target exactly as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from trustbox.client.images.blobio import VerifyingWriter, copy_verified, file_chunks, verified_reader
from trustbox.oci.descriptor import Descriptor
from trustbox.oci.digest import check_sha256, sha256_digest
from trustbox.oci.errors import ImageError
from trustbox.oci.manifest import Manifest, dump_json, parse_manifest
from trustbox.oci.mediatypes import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    REF_NAME_ANNOTATION,
)

Progress = Callable[[int], None]


class ImageSource(Protocol):
    """Where an image is read from."""

    def describe(self) -> str:
        """Human-readable name of the source."""
        ...

    def top(self) -> Manifest:
        """The top-level manifest or index (verified against its descriptor)."""
        ...

    def manifest(self, desc: Descriptor) -> Manifest:
        """A child manifest of an index, verified against ``desc``."""
        ...

    def open_blob(self, desc: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        """Chunks of a blob; raises DigestMismatchError at the end if they do not match ``desc``."""
        ...

    def close(self) -> None:
        """Release temporary files."""
        ...


class ImageDestination(Protocol):
    """Where an image is written to."""

    def describe(self) -> str:
        """Human-readable name of the destination."""
        ...

    def has_blob(self, desc: Descriptor) -> bool:
        """True if the destination already holds this blob."""
        ...

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes], progress: Progress | None = None) -> None:
        """Store a blob (verified against ``desc``)."""
        ...

    def put_manifest(self, m: Manifest, top: bool) -> None:
        """Store a manifest; ``top`` marks the one the destination reference names."""
        ...

    def commit(self) -> None:
        """Make everything written visible."""
        ...

    def abort(self) -> None:
        """Discard everything written."""
        ...


# --- transport parsing ------------------------------------------------------------------

LOCAL_TRANSPORTS = ("oci", "oci-archive", "docker-archive")


@dataclass(frozen=True)
class LocalRef:
    """A parsed ``transport:path[:ref]``."""

    transport: str
    path: Path
    ref: str | None


def parse_local_ref(text: str) -> LocalRef | None:
    """Parse ``oci:DIR[:REF]``, ``oci-archive:FILE[:REF]``, ``docker-archive:FILE[:REF]``.

    Returns None for anything else (e.g. a registry reference). Like containers/image, the path
    ends at the first ``:`` after the transport, so paths must not contain ``:``.
    """
    transport, sep, rest = text.partition(":")
    if not sep or transport not in LOCAL_TRANSPORTS:
        return None
    path, sep2, ref = rest.partition(":")
    if not path:
        raise ImageError(f"{text!r}: missing path after {transport}:")
    return LocalRef(transport, Path(path), ref if sep2 and ref else None)


def open_source(text: str) -> ImageSource:
    """Open a local image source from its transport string."""
    lr = parse_local_ref(text)
    if lr is None:
        raise ImageError(f"{text!r} is not a local image (use oci:DIR[:REF], oci-archive:FILE or docker-archive:FILE)")
    if lr.transport == "oci":
        return OCILayoutSource(lr.path, lr.ref)
    if lr.transport == "oci-archive":
        return OCIArchiveSource(lr.path, lr.ref)
    return DockerArchiveSource(lr.path, lr.ref)


def open_destination(text: str) -> ImageDestination:
    """Open a local image destination (``oci:`` or ``oci-archive:``) from its transport string."""
    lr = parse_local_ref(text)
    if lr is None or lr.transport == "docker-archive":
        raise ImageError(f"{text!r}: destination must be oci:DIR[:REF] or oci-archive:FILE[:REF]")
    if lr.transport == "oci":
        return OCILayoutDestination(lr.path, lr.ref)
    return OCIArchiveDestination(lr.path, lr.ref)


# --- OCI image layout -------------------------------------------------------------------

#: Exactly the bytes skopeo writes, so layouts written by either tool compare equal.
OCI_LAYOUT_BYTES = b'{"imageLayoutVersion": "1.0.0"}'



def _blob_path(root: Path, digest: str) -> Path:
    alg, hexd = check_sha256(digest).split(":", 1)
    return root / "blobs" / alg / hexd


def _read_json(path: Path, what: str) -> Any:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(4 * 1024 * 1024 + 1))
    except FileNotFoundError:
        raise ImageError(f"{what} not found: {path}") from None
    except ValueError as exc:
        raise ImageError(f"{what} {path} is not valid JSON: {exc}") from None


def select_from_index(index: Any, ref: str | None, where: str) -> Descriptor:
    """Pick the descriptor named ``ref`` (or the only one) from an ``index.json`` document."""
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageError(f"{where}: index.json has no manifests list")
    descs = [Descriptor.from_json(m, f"{where} index.json manifests[{i}]") for i, m in enumerate(index["manifests"])]
    if ref is None:
        if len(descs) == 1:
            return descs[0]
        if not descs:
            raise ImageError(f"{where}: the layout holds no image")
        names = sorted({(d.annotations or {}).get(REF_NAME_ANNOTATION, "") for d in descs} - {""})
        raise ImageError(f"{where}: the layout holds {len(descs)} images; name one with :REF (known: {', '.join(names) or 'none'})")
    for d in descs:
        if (d.annotations or {}).get(REF_NAME_ANNOTATION) == ref:
            return d
    raise ImageError(f"{where}: no image named {ref!r} in index.json")


class OCILayoutSource:
    """Read an image from an OCI image layout directory, verifying every byte read."""

    def __init__(self, root: Path, ref: str | None) -> None:
        self.root = root
        self.ref = ref
        if not (root / "index.json").is_file():
            raise ImageError(f"{root} is not an OCI image layout (no index.json)")
        layout = _read_json(root / "oci-layout", "oci-layout file")
        if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
            raise ImageError(f"{root}: unsupported oci-layout version")
        self._top = select_from_index(_read_json(root / "index.json", "index.json"), ref, str(root))

    def describe(self) -> str:
        """``oci:DIR[:REF]``."""
        return f"oci:{self.root}" + (f":{self.ref}" if self.ref else "")

    def _read_manifest(self, desc: Descriptor) -> Manifest:
        path = _blob_path(self.root, desc.digest)
        try:
            with open(path, "rb") as fh, verified_reader(fh, desc, "manifest") as chunks:
                raw = b"".join(chunks)
        except FileNotFoundError:
            raise ImageError(f"manifest {desc.digest} is missing from {self.root}") from None
        return parse_manifest(raw, desc.media_type)

    def top(self) -> Manifest:
        """The manifest or index named by REF."""
        return self._read_manifest(self._top)

    def manifest(self, desc: Descriptor) -> Manifest:
        """A child manifest by descriptor."""
        return self._read_manifest(desc)

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        """Verified chunks of a blob file."""
        path = _blob_path(self.root, desc.digest)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise ImageError(f"blob {desc.digest} is missing from {self.root}") from None
        with fh, verified_reader(fh, desc) as chunks:
            yield chunks

    def close(self) -> None:
        """Nothing to release."""


class OCILayoutDestination:
    """Write an image into an OCI image layout directory, atomically.

    Blobs go to a staging directory next to the target; ``commit()`` renames it into place
    (new layout) or moves the new blobs in and replaces ``index.json`` (existing layout).
    """

    def __init__(self, root: Path, ref: str | None) -> None:
        self.root = root
        self.ref = ref
        if root.exists() and not root.is_dir():
            raise ImageError(f"{root} exists and is not a directory")
        self._existing = root.is_dir() and any(root.iterdir())
        if self._existing and not (root / "index.json").is_file():
            raise ImageError(f"{root} is not empty and is not an OCI image layout")
        root.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{root.name or 'oci'}.tmp-", dir=root.parent))
        (self.staging / "blobs" / "sha256").mkdir(parents=True)
        self._top: Descriptor | None = None
        self._done = False

    def describe(self) -> str:
        """``oci:DIR[:REF]``."""
        return f"oci:{self.root}" + (f":{self.ref}" if self.ref else "")

    def has_blob(self, desc: Descriptor) -> bool:
        """True if the blob is already in the target layout or staged."""
        return _blob_path(self.staging, desc.digest).is_file() or (
            self._existing and _blob_path(self.root, desc.digest).is_file()
        )

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes], progress: Progress | None = None) -> None:
        """Stage a blob, verifying it as it streams."""
        copy_verified(chunks, desc, _blob_path(self.staging, desc.digest), "blob", progress)

    def put_manifest(self, m: Manifest, top: bool) -> None:
        """Stage a manifest blob; remember the top one for index.json."""
        copy_verified([m.raw], m.descriptor(), _blob_path(self.staging, m.digest), "manifest")
        if top:
            ann = {REF_NAME_ANNOTATION: self.ref} if self.ref else None
            self._top = Descriptor(m.media_type, m.digest, m.size, annotations=ann)

    def _index_doc(self, previous: Any) -> bytes:
        assert self._top is not None
        kept: list[Any] = []
        if isinstance(previous, dict) and isinstance(previous.get("manifests"), list):
            for d in previous["manifests"]:
                name = (d.get("annotations") or {}).get(REF_NAME_ANNOTATION) if isinstance(d, dict) else None
                same_name = self.ref is not None and name == self.ref
                same_unnamed = self.ref is None and name is None and isinstance(d, dict) and d.get("digest") == self._top.digest
                if not (same_name or same_unnamed):
                    kept.append(d)
        kept.append(self._top.to_json())
        doc: dict[str, Any] = {"schemaVersion": 2, "manifests": kept}  # as skopeo writes it
        if isinstance(previous, dict) and isinstance(previous.get("annotations"), dict):
            doc["annotations"] = previous["annotations"]
        return dump_json(doc)

    def commit(self) -> None:
        """Move the staged image into place."""
        if self._top is None:
            raise ImageError("internal error: no manifest written")
        try:
            if not self._existing:
                (self.staging / "oci-layout").write_bytes(OCI_LAYOUT_BYTES)
                (self.staging / "index.json").write_bytes(self._index_doc(None))
                if self.root.is_dir():
                    self.root.rmdir()  # empty directory
                os.replace(self.staging, self.root)
            else:
                previous = _read_json(self.root / "index.json", "index.json")
                target = self.root / "blobs" / "sha256"
                target.mkdir(parents=True, exist_ok=True)
                for blob in (self.staging / "blobs" / "sha256").iterdir():
                    if not blob.name.startswith(".tmp-"):
                        os.replace(blob, target / blob.name)
                tmp = self.staging / "index.json"
                tmp.write_bytes(self._index_doc(previous))
                os.replace(tmp, self.root / "index.json")
                shutil.rmtree(self.staging, ignore_errors=True)
        finally:
            self._done = True

    def abort(self) -> None:
        """Remove the staging directory; the target is untouched."""
        if not self._done:
            shutil.rmtree(self.staging, ignore_errors=True)
            self._done = True


# --- OCI archive ------------------------------------------------------------------------


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    for member in tar.getmembers():
        name = member.name
        if name.startswith("/") or ".." in Path(name).parts:
            raise ImageError(f"archive member {name!r} escapes the archive")
        if not (member.isfile() or member.isdir()):
            continue
        tar.extract(member, dest, filter="data")


class OCIArchiveSource(OCILayoutSource):
    """An OCI layout inside a tar file (extracted to a temporary directory)."""

    def __init__(self, path: Path, ref: str | None) -> None:
        self.archive = path
        try:
            tar = tarfile.open(path, "r:*")
        except (OSError, tarfile.TarError) as exc:
            raise ImageError(f"cannot read OCI archive {path}: {exc}") from None
        self._tmp = Path(tempfile.mkdtemp(prefix="trustbox-oci-archive-"))
        try:
            with tar:
                _safe_extract(tar, self._tmp)
            super().__init__(self._tmp, ref)
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise

    def describe(self) -> str:
        """``oci-archive:FILE[:REF]``."""
        return f"oci-archive:{self.archive}" + (f":{self.ref}" if self.ref else "")

    def close(self) -> None:
        """Remove the extracted copy."""
        shutil.rmtree(self._tmp, ignore_errors=True)


def _tar_add(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    else:
        info.size = path.stat().st_size
        info.mode = 0o644
        with open(path, "rb") as fh:
            tar.addfile(info, fh)


class OCIArchiveDestination:
    """Write an OCI layout into a tar file (replaced atomically on commit)."""

    def __init__(self, path: Path, ref: str | None) -> None:
        self.archive = path
        self.ref = ref
        path.parent.mkdir(parents=True, exist_ok=True)
        self._work = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        self._layout = OCILayoutDestination(self._work / "layout", ref)

    def describe(self) -> str:
        """``oci-archive:FILE[:REF]``."""
        return f"oci-archive:{self.archive}" + (f":{self.ref}" if self.ref else "")

    def has_blob(self, desc: Descriptor) -> bool:
        """True if already staged."""
        return self._layout.has_blob(desc)

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes], progress: Progress | None = None) -> None:
        """Stage a blob."""
        self._layout.put_blob(desc, chunks, progress)

    def put_manifest(self, m: Manifest, top: bool) -> None:
        """Stage a manifest."""
        self._layout.put_manifest(m, top)

    def commit(self) -> None:
        """Write the tar next to the target and rename it into place."""
        try:
            self._layout.commit()
            root = self._work / "layout"
            tmp = self._work / "archive.tar"
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                for name in ("oci-layout", "index.json"):
                    _tar_add(tar, root / name, name)
                _tar_add(tar, root / "blobs", "blobs")
                _tar_add(tar, root / "blobs" / "sha256", "blobs/sha256")
                for blob in sorted((root / "blobs" / "sha256").iterdir()):
                    _tar_add(tar, blob, f"blobs/sha256/{blob.name}")
            os.replace(tmp, self.archive)
        finally:
            shutil.rmtree(self._work, ignore_errors=True)

    def abort(self) -> None:
        """Discard the staged image."""
        self._layout.abort()
        shutil.rmtree(self._work, ignore_errors=True)


# --- docker-archive (docker save) -------------------------------------------------------


def _is_gzip(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


class DockerArchiveSource:
    """Read an image from a ``docker save`` tarball as a Docker schema 2 image."""

    def __init__(self, path: Path, ref: str | None) -> None:
        self.archive = path
        self.ref = ref
        try:
            self._tar = tarfile.open(path, "r:")
        except (OSError, tarfile.TarError) as exc:
            raise ImageError(f"cannot read docker archive {path}: {exc}") from None
        self._tmp = Path(tempfile.mkdtemp(prefix="trustbox-docker-archive-"))
        try:
            self._manifest = self._build()
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        """``docker-archive:FILE[:REF]``."""
        return f"docker-archive:{self.archive}" + (f":{self.ref}" if self.ref else "")

    def _member(self, name: str) -> tarfile.TarInfo:
        if name.startswith("./"):
            name = name[2:]
        try:
            info = self._tar.getmember(name)
        except KeyError:
            raise ImageError(f"{self.archive}: {name!r} is listed in manifest.json but missing") from None
        while info.issym() or info.islnk():  # docker save links identical layers
            target = info.linkname if info.islnk() else str(Path(name).parent / info.linkname)
            name = os.path.normpath(target)
            try:
                info = self._tar.getmember(name)
            except KeyError:
                raise ImageError(f"{self.archive}: broken link {name!r}") from None
        if not info.isfile():
            raise ImageError(f"{self.archive}: {name!r} is not a file")
        return info

    def _open_member(self, name: str) -> IO[bytes]:
        fh = self._tar.extractfile(self._member(name))
        if fh is None:
            raise ImageError(f"{self.archive}: cannot read {name!r}")
        return fh

    def _select(self, entries: list[Any]) -> dict[str, Any]:
        if not entries:
            raise ImageError(f"{self.archive}: manifest.json lists no image")
        if self.ref is None:
            if len(entries) != 1:
                raise ImageError(f"{self.archive}: holds {len(entries)} images; name one with :NAME:TAG or :@N")
            return dict(entries[0])
        if self.ref.startswith("@"):
            try:
                return dict(entries[int(self.ref[1:])])
            except (ValueError, IndexError):
                raise ImageError(f"{self.archive}: no image number {self.ref[1:]!r}") from None
        for e in entries:
            tags = e.get("RepoTags") or []
            if self.ref in tags or any(t.endswith("/" + self.ref) for t in tags):
                return dict(e)
        raise ImageError(f"{self.archive}: no image tagged {self.ref!r}")

    def _build(self) -> Manifest:
        with self._open_member("manifest.json") as fh:
            try:
                entries = json.loads(fh.read(4 * 1024 * 1024))
            except ValueError as exc:
                raise ImageError(f"{self.archive}: manifest.json is not valid JSON: {exc}") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ImageError(f"{self.archive}: manifest.json is not a list of images")
        entry = self._select(entries)
        config_name, layer_names = entry.get("Config"), entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list):
            raise ImageError(f"{self.archive}: manifest.json entry lacks Config or Layers")
        with self._open_member(config_name) as fh:
            self._config = fh.read(4 * 1024 * 1024)
        try:
            config_doc = json.loads(self._config)
        except ValueError as exc:
            raise ImageError(f"{self.archive}: image config is not valid JSON: {exc}") from None
        diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") if isinstance(config_doc, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_names):
            raise ImageError(f"{self.archive}: config rootfs.diff_ids does not match the {len(layer_names)} layers")
        self._blobs: dict[str, tuple[str | None, Path | None]] = {}
        layers: list[dict[str, Any]] = []
        for name, diff_id in zip(layer_names, diff_ids, strict=True):
            desc = self._prepare_layer(str(name), str(diff_id))
            layers.append({"mediaType": desc.media_type, "size": desc.size, "digest": desc.digest})
        config_digest = sha256_digest(self._config)
        doc = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(self._config), "digest": config_digest},
            "layers": layers,
        }
        return parse_manifest(dump_json(doc), DOCKER_MANIFEST)

    def _prepare_layer(self, name: str, diff_id: str) -> Descriptor:
        """Hash (and if needed compress) one layer; check the uncompressed bytes against diff_id."""
        import hashlib
        import zlib

        with self._open_member(name) as fh:
            head = fh.read(2)
            fh.seek(0)
            if _is_gzip(head):
                h = hashlib.sha256()
                raw_hash = hashlib.sha256()
                n = 0
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                for b in file_chunks(fh):
                    h.update(b)
                    n += len(b)
                    raw_hash.update(d.decompress(b))
                digest = "sha256:" + h.hexdigest()
                if diff_id and "sha256:" + raw_hash.hexdigest() != diff_id:
                    raise ImageError(f"{self.archive}: layer {name} does not match diff_id {diff_id}")
                self._blobs[digest] = (name, None)
                return Descriptor(DOCKER_LAYER_GZIP, digest, n)
            raw_hash = hashlib.sha256()
            with VerifyingWriter(None, None, self._tmp, "layer") as w:
                with gzip.GzipFile(filename="", mode="wb", fileobj=_Sink(w), mtime=0) as gz:
                    for b in file_chunks(fh):
                        raw_hash.update(b)
                        gz.write(b)
                tmp = w.finish()
            if diff_id and "sha256:" + raw_hash.hexdigest() != diff_id:
                tmp.unlink()
                raise ImageError(f"{self.archive}: layer {name} does not match diff_id {diff_id}")
            final = self._tmp / w.digest.split(":", 1)[1]
            os.replace(tmp, final)
            self._blobs[w.digest] = (None, final)
            return Descriptor(DOCKER_LAYER_GZIP, w.digest, w.size)

    def top(self) -> Manifest:
        """The generated Docker schema 2 manifest."""
        return self._manifest

    def manifest(self, desc: Descriptor) -> Manifest:
        """docker archives hold single-platform images only."""
        raise ImageError(f"{self.archive}: docker archives have no child manifests")

    @contextmanager
    def open_blob(self, desc: Descriptor) -> Iterator[Iterator[bytes]]:
        """Config bytes, a layer from the tar, or a compressed layer from the work directory."""
        if self._manifest.config is not None and desc.digest == self._manifest.config.digest:
            import io

            with verified_reader(io.BytesIO(self._config), desc, "config") as chunks:
                yield chunks
            return
        member, path = self._blobs.get(desc.digest, (None, None))
        if member is not None:
            with self._open_member(member) as fh, verified_reader(fh, desc) as chunks:
                yield chunks
        elif path is not None:
            with open(path, "rb") as fh2, verified_reader(fh2, desc) as chunks:
                yield chunks
        else:
            raise ImageError(f"{self.archive}: no blob {desc.digest}")

    def close(self) -> None:
        """Close the tar and remove compressed layers."""
        self._tar.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


_GZIP_LAYERS = frozenset({DOCKER_LAYER_GZIP, OCI_LAYER_GZIP})
_PLAIN_LAYERS = frozenset({DOCKER_LAYER, OCI_LAYER})


class DockerArchiveDestination:
    """Write one image as a ``docker save`` tarball that ``docker load`` and ``podman load`` read:
    ``manifest.json`` (``Config``, ``RepoTags``, ``Layers``), the config as ``<hex>.json`` (its
    exact bytes) and each layer uncompressed as ``<diff_id hex>.tar`` (the layout skopeo writes).

    Blobs are staged (verified) beside the target; ``commit()`` decompresses each layer, checks it
    against the config's ``rootfs.diff_ids``, writes the tar next to the target and renames it into
    place, so a failure leaves the target as it was.
    """

    def __init__(self, path: Path, repo_tags: Iterable[str] = ()) -> None:
        self.archive = path
        self.repo_tags = list(repo_tags)
        if path.is_dir():
            raise ImageError(f"{path} is a directory; docker-archive needs a file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._work = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        self._image: Manifest | None = None

    def describe(self) -> str:
        """``docker-archive:FILE[:NAME:TAG]``."""
        return f"docker-archive:{self.archive}" + (f":{self.repo_tags[0]}" if self.repo_tags else "")

    def _blob(self, digest: str) -> Path:
        return self._work / ("blob-" + check_sha256(digest).split(":", 1)[1])

    def has_blob(self, desc: Descriptor) -> bool:
        """True if already staged."""
        return self._blob(desc.digest).is_file()

    def put_blob(self, desc: Descriptor, chunks: Iterable[bytes], progress: Progress | None = None) -> None:
        """Stage a blob, verifying it as it streams."""
        copy_verified(chunks, desc, self._blob(desc.digest), "blob", progress)

    def put_manifest(self, m: Manifest, top: bool) -> None:
        """Remember the image manifest (a docker archive holds one platform: no index)."""
        if m.is_index:
            raise ImageError("a docker archive holds one platform; choose one of the index's manifests")
        if top:
            self._image = m

    def _layer_file(self, desc: Descriptor, diff_id: str) -> Path:
        """The uncompressed layer of ``desc``, checked against ``diff_id``."""
        if desc.media_type not in _GZIP_LAYERS | _PLAIN_LAYERS:
            raise ImageError(f"layer {desc.digest}: media type {desc.media_type!r} cannot go into a docker archive")
        hexd = check_sha256(diff_id).split(":", 1)[1]
        out = self._work / f"{hexd}.tar"
        if out.is_file():
            return out
        h = hashlib.sha256()
        tmp = self._work / f".{hexd}.tmp"
        with open(self._blob(desc.digest), "rb") as src, open(tmp, "wb") as dst:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS) if desc.media_type in _GZIP_LAYERS else None
            for b in file_chunks(src):
                raw = d.decompress(b) if d is not None else b
                h.update(raw)
                dst.write(raw)
            if d is not None:
                tail = d.flush()
                h.update(tail)
                dst.write(tail)
        if "sha256:" + h.hexdigest() != diff_id:
            raise ImageError(f"layer {desc.digest} does not match its diff_id {diff_id} in the image config")
        os.replace(tmp, out)
        return out

    def commit(self) -> None:
        """Write the archive beside the target and rename it into place."""
        try:
            m = self._image
            if m is None or m.config is None:
                raise ImageError("internal error: no image manifest written")
            config = self._blob(m.config.digest).read_bytes()
            try:
                doc = json.loads(config)
            except ValueError as exc:
                raise ImageError(f"image config {m.config.digest} is not valid JSON: {exc}") from None
            diff_ids = (doc.get("rootfs") or {}).get("diff_ids") if isinstance(doc, dict) else None
            if not isinstance(diff_ids, list) or len(diff_ids) != len(m.layers):
                raise ImageError(f"image config rootfs.diff_ids does not match the manifest's {len(m.layers)} layers")
            config_name = m.config.digest.split(":", 1)[1] + ".json"
            layer_files = [self._layer_file(desc, str(diff_id)) for desc, diff_id in zip(m.layers, diff_ids, strict=True)]
            entry = {"Config": config_name, "RepoTags": self.repo_tags or None, "Layers": [f.name for f in layer_files]}
            (self._work / "manifest.json").write_bytes(dump_json([entry]))
            os.replace(self._blob(m.config.digest), self._work / config_name)
            tmp = self._work / ".archive.tar"
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                for f in sorted(set(layer_files), key=lambda p: p.name):
                    _tar_add(tar, f, f.name)
                _tar_add(tar, self._work / config_name, config_name)
                _tar_add(tar, self._work / "manifest.json", "manifest.json")
            os.replace(tmp, self.archive)
        finally:
            shutil.rmtree(self._work, ignore_errors=True)

    def abort(self) -> None:
        """Discard the staged image; the target is untouched."""
        shutil.rmtree(self._work, ignore_errors=True)


class _Sink:
    """A write-only file object feeding a VerifyingWriter (for GzipFile)."""

    def __init__(self, w: VerifyingWriter) -> None:
        self._w = w

    def write(self, b: bytes) -> int:
        self._w.write(bytes(b))
        return len(b)

    def flush(self) -> None:
        pass


__all__ = [
    "DOCKER_LAYER",
    "DockerArchiveDestination",
    "DockerArchiveSource",
    "ImageDestination",
    "ImageSource",
    "LocalRef",
    "OCIArchiveDestination",
    "OCIArchiveSource",
    "OCILayoutDestination",
    "OCILayoutSource",
    "open_destination",
    "open_source",
    "parse_local_ref",
]
