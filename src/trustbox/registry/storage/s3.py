"""S3-compatible object storage via boto3 (tested against moto's ThreadedMotoServer and Ceph's
radosgw; ``docs/registry.md``, *S3 stores*).

The store is not trusted with the data: every blob is hashed by the registry itself. The one
place the driver leans on a store's checksum (:meth:`S3Driver.adopt`) is used only on a store
that has been seen to check them: stores differ there. AWS S3 refuses a PUT whose
``x-amz-checksum-sha256`` does not match the bytes; Ceph 16's radosgw accepts the header and
ignores it (nothing is checked or kept); moto keeps whatever value it was sent.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trustbox.registry.storage.base import ObjectInfo


@dataclass(frozen=True)
class S3Options:
    """Connection and object settings beyond bucket, prefix, endpoint and region (what a
    registry:2 ``storage.s3`` section can say); None leaves boto3's default chain and choices."""

    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    path_style: bool | None = None
    verify_tls: bool = True
    chunk_size: int | None = None
    sse: str | None = None  # "AES256" or "aws:kms"
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    object_acl: str | None = None

    def put_args(self) -> dict[str, str]:
        """Extra arguments of every PutObject / CopyObject / upload."""
        out: dict[str, str] = {}
        if self.sse:
            out["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            out["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.storage_class:
            out["StorageClass"] = self.storage_class
        if self.object_acl:
            out["ACL"] = self.object_acl
        return out


class S3Driver:
    """Keys are objects under ``prefix`` in ``bucket``; S3 PUTs are atomic by nature."""

    name = "s3"
    cheap_io = False

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        spool_dir: Path | None = None,
        client: Any = None,
        options: S3Options | None = None,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
        from botocore.config import Config

        opts = options or S3Options()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            # Responses are not checked against the store's checksums: the registry hashes
            # every byte it reads itself, and botocore's check would fail a read of bytes that
            # do not match a stored claim with an exception outside ClientError (moto keeps
            # unchecked claims) instead of the registry's digest error; it also hashed every
            # download a second time.
            addressing = {"addressing_style": "path" if opts.path_style else "virtual"} if opts.path_style is not None else {}
            config = Config(response_checksum_validation="when_required", s3=addressing or None)
            client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region,
                aws_access_key_id=opts.access_key, aws_secret_access_key=opts.secret_key,
                aws_session_token=opts.session_token, verify=opts.verify_tls, config=config,
            )
        self.client = client
        self._conditional = True
        self._checksums = True  # the store takes x-amz-checksum-sha256 on PUT
        self._verifies: bool | None = None  # whether it checks them (None: not probed yet)
        part = opts.chunk_size or 64 << 20
        self._transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part)
        # object settings every write carries (registry:2's encrypt/keyid, storageclass, objectacl)
        self._put_args: dict[str, str] = opts.put_args()
        base = spool_dir or Path(tempfile.gettempdir()) / f"trustbox-registry-spool-{bucket}"
        self._spool = Path(base) / "uploads"
        self._spool.mkdir(parents=True, exist_ok=True)

    @property
    def spool_dir(self) -> Path:
        """Local staging directory for uploads."""
        return self._spool

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _is_missing(self, exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            return code in ("404", "NoSuchKey", "NotFound")
        return False

    def read(self, key: str) -> bytes | None:
        """GET the whole object."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._is_missing(exc):
                return None
            raise
        data: bytes = resp["Body"].read()
        return data

    def write(self, key: str, data: bytes) -> None:
        """PUT the object (atomic)."""
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **self._put_args)

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file (multipart for big ones; the object appears only when complete)."""
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer,
                                    ExtraArgs=self._put_args or None)
        finally:
            Path(path).unlink(missing_ok=True)

    # single PUTs carry If-None-Match; S3 takes up to 5 GiB in one
    _CONDITIONAL_MAX = 5 << 30

    def put_file_if_absent(self, key: str, path: Path, sha256: bytes | None = None) -> bool:
        """PUT with ``If-None-Match: *`` (S3 since 2024, MinIO, radosgw, moto): False on 412. A
        store that answers 501 to the condition, or a file over 5 GiB, is stored
        unconditionally. With ``sha256`` the PUT carries it as the object's SHA-256 checksum
        (AWS S3 refuses the PUT if the bytes it received do not match and keeps the value for
        :meth:`adopt`; a store seen not to check it is not sent it). Raises botocore's
        ClientError for any other refusal (a checksum mismatch included)."""
        from botocore.exceptions import ClientError

        try:
            while self._conditional and Path(path).stat().st_size <= self._CONDITIONAL_MAX:
                extra: dict[str, str] = {}
                if sha256 is not None and self._checksums and self._verifies is not False:
                    extra = {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": base64.b64encode(sha256).decode()}
                try:
                    with open(path, "rb") as body:
                        self.client.put_object(
                            Bucket=self.bucket, Key=self._key(key), Body=body, IfNoneMatch="*", **extra,
                            **self._put_args,
                        )
                    return True
                except ClientError as exc:
                    err = exc.response.get("Error", {})
                    code = err.get("Code")
                    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                    if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                        return False
                    if extra and status in (400, 501) and code not in ("BadDigest", "InvalidDigest"):
                        # a store that refuses (SHA-256) checksums: store chunks without them from
                        # now on (nothing is adopted then); a digest mismatch is a real error
                        self._checksums = False
                        continue
                    if status != 501 and code != "NotImplemented":
                        raise
                    self._conditional = False  # this store has no conditional writes
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer,
                                    ExtraArgs=self._put_args or None)
            return True
        finally:
            Path(path).unlink(missing_ok=True)

    def adopt(self, src: str, dst: str, sha256_hex: str, size: int) -> bool:
        """Server-side copy of ``src`` to ``dst`` when the store checks SHA-256 checksums
        (:meth:`checks_checksums`) and holds one of ``src`` equal to ``sha256_hex``, and ``size``
        matches: the copy is pinned to the version that was checked (``CopySourceIfMatch`` on
        its ETag; a store may ignore that header, radosgw 16 does) and the store computes the
        checksum of the copy again, which must match too. False otherwise (``dst`` then holds
        nothing new, except when the store ignored the pin and the copy's checksum differs:
        the caller overwrites it)."""
        from botocore.exceptions import ClientError

        if size > self._CONDITIONAL_MAX:  # one CopyObject takes up to 5 GiB
            return False
        if not self.checks_checksums():
            return False  # a stored value would be a claim nobody checked
        want = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(src), ChecksumMode="ENABLED")
            if head.get("ChecksumSHA256") != want or int(head["ContentLength"]) != size:
                return False  # no checksum (written without one, or multipart: composite), or another one
            resp = self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(dst),
                CopySource={"Bucket": self.bucket, "Key": self._key(src)},
                CopySourceIfMatch=head["ETag"],
                ChecksumAlgorithm="SHA256",
                **self._put_args,
            )
        except ClientError:
            return False  # changed since the HEAD (412), gone, or no server-side copy here
        return bool(resp.get("CopyObjectResult", {}).get("ChecksumSHA256") == want)

    #: where :meth:`checks_checksums` writes its probe (outside every key the registry uses)
    PROBE_PREFIX = "_trustbox/checksum-probe-"

    def checks_checksums(self) -> bool:
        """Whether the store checks the SHA-256 checksum a PUT claims, found out once per
        driver: a probe object is PUT with its right checksum (which must be taken) and then
        with a wrong one (which must be refused, 400), and removed. True on AWS S3; False on
        radosgw 16 (takes and ignores the header), on moto (keeps the claim unchecked) and on
        a store that refuses checksum headers. Raises only what the client raises for a
        store that cannot be reached (nothing is remembered then)."""
        if self._verifies is None:
            self._verifies = self._probe_checksums()
        return self._verifies

    def _probe_checksums(self) -> bool:
        from botocore.exceptions import ClientError

        key = self._key(f"{self.PROBE_PREFIX}{uuid.uuid4().hex}")
        body = b"trustbox: does this store check x-amz-checksum-sha256?"
        right = base64.b64encode(hashlib.sha256(body).digest()).decode()
        wrong = base64.b64encode(hashlib.sha256(body + b"!").digest()).decode()
        try:
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                       ChecksumAlgorithm="SHA256", ChecksumSHA256=right)
            except ClientError:
                return False  # no checksums here (or no right to write the probe): never adopt
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                       ChecksumAlgorithm="SHA256", ChecksumSHA256=wrong)
            except ClientError as exc:
                return bool(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 400)
            return False  # a wrong checksum was taken: stored values are unchecked claims
        finally:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except ClientError:
                pass

    def stat(self, key: str) -> ObjectInfo | None:
        """HEAD the object: ETag and LastModified are its identity."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._is_missing(exc):
                return None
            raise
        modified = resp.get("LastModified")
        mtime = modified.timestamp() if modified is not None else 0.0
        return ObjectInfo(int(resp["ContentLength"]), (resp.get("ETag"), mtime), mtime)

    def delete(self, key: str) -> bool:
        """DELETE the object; False if it was not there."""
        if self.stat(key) is None:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        return True

    def delete_tree(self, prefix: str) -> None:
        """Delete every object under ``prefix`` (listed, then removed in batches of 1000)."""
        keys = [self._key(k) for k, _info in self.walk(prefix)]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def list_dir(self, prefix: str) -> list[str]:
        """Children via a delimited listing."""
        full = self._key(prefix).rstrip("/")
        full = full + "/" if full else ""  # the bucket's top level when there is no prefix
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full, Delimiter="/"):
            for cp in page.get("CommonPrefixes", []):
                names.append(cp["Prefix"][len(full):].rstrip("/"))
            for obj in page.get("Contents", []):
                names.append(obj["Key"][len(full):])
        return [n for n in names if n]

    def walk(self, prefix: str) -> Iterator[tuple[str, ObjectInfo]]:
        """Every object under ``prefix``."""
        full = self._key(prefix).rstrip("/")
        full = full + "/" if full else ""  # the bucket's top level when there is no prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                mtime = obj["LastModified"].timestamp()
                yield obj["Key"][strip:], ObjectInfo(int(obj["Size"]), (obj.get("ETag"), mtime), mtime)

    def local_path(self, key: str) -> Path | None:
        """Remote: no local file."""
        return None

    def iter_range(self, key: str, start: int, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Ranged GET, streamed."""
        if length <= 0:
            return
        resp = self.client.get_object(
            Bucket=self.bucket, Key=self._key(key), Range=f"bytes={start}-{start + length - 1}"
        )
        body = resp["Body"]
        try:
            while True:
                data = body.read(chunk)
                if not data:
                    break
                yield data
        finally:
            body.close()

    def move(self, src: str, dst: str) -> None:
        """Server-side copy then delete."""
        self.client.copy_object(
            Bucket=self.bucket, Key=self._key(dst), CopySource={"Bucket": self.bucket, "Key": self._key(src)},
            **self._put_args,
        )
        self.client.delete_object(Bucket=self.bucket, Key=self._key(src))
