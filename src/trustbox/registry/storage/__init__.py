"""Storage drivers and the URL-style selector ``open_storage``."""

from __future__ import annotations

from pathlib import Path

from trustbox.errors import ConfigError
from trustbox.registry.storage.base import ObjectInfo, StorageDriver
from trustbox.registry.storage.filesystem import FilesystemDriver
from trustbox.registry.storage.s3 import S3Driver, S3Options

__all__ = ["FilesystemDriver", "ObjectInfo", "S3Options", "StorageDriver", "open_storage"]


def open_storage(
    spec: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
    spool_dir: Path | None = None,
    s3_options: S3Options | None = None,
) -> StorageDriver:
    """Open ``PATH`` (filesystem) or ``s3://BUCKET/PREFIX`` (S3-compatible).

    Raises:
        ConfigError: an unknown scheme or an S3 URL without a bucket.
    """
    if spec.startswith("s3://"):

        rest = spec[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"invalid S3 storage {spec!r}", hint="use s3://BUCKET/PREFIX")
        return S3Driver(bucket, prefix, endpoint_url=s3_endpoint_url, region=s3_region, spool_dir=spool_dir,
                        options=s3_options)
    if "://" in spec:
        raise ConfigError(f"unknown storage scheme in {spec!r}", hint="use a directory path or s3://BUCKET/PREFIX")
    return FilesystemDriver(Path(spec))
