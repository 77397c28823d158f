"""The storage driver contract (``registry/storage/base.py``) on every store: the filesystem,
S3 on moto, and S3 on a real store, Ceph's radosgw. Plus what radosgw 16 does differently from
AWS S3 (it ignores ``x-amz-checksum-sha256`` and the AWS name of the copy condition), pinned, and
what the driver makes of it."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from trustbox.registry.storage import FilesystemDriver, StorageDriver, open_storage

from .conftest import s3_store


@pytest.fixture(params=["fs", "moto", "ceph"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> StorageDriver:
    """A driver on a fresh filesystem root, moto bucket or radosgw bucket."""
    if request.param == "fs":
        return FilesystemDriver(tmp_path / "fs")
    store = s3_store(request, request.param)
    return open_storage(f"s3://{store.bucket}/pre", s3_endpoint_url=store.endpoint, spool_dir=tmp_path / "spool")


def _staged(tmp_path: Path, data: bytes, name: str = "staged") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_write_read_stat_delete(driver: StorageDriver) -> None:
    assert driver.read("a/b") is None and driver.stat("a/b") is None
    driver.write("a/b", b"one")
    assert driver.read("a/b") == b"one"
    first = driver.stat("a/b")
    assert first is not None and first.size == 3
    driver.write("a/b", b"two!")
    second = driver.stat("a/b")
    assert driver.read("a/b") == b"two!"
    assert second is not None and second.size == 4 and second.identity != first.identity
    assert driver.delete("a/b") is True
    assert driver.delete("a/b") is False
    assert driver.read("a/b") is None


def test_listing_walk_ranges_and_move(driver: StorageDriver) -> None:
    for key in ("d/x", "d/sub/y", "d/sub/z", "e/w"):
        driver.write(key, key.encode() * 3)
    assert sorted(driver.list_dir("d")) == ["sub", "x"]
    assert sorted(driver.list_dir("d/sub")) == ["y", "z"]
    assert driver.list_dir("nothing") == []
    walked = dict(driver.walk("d"))
    assert sorted(walked) == ["d/sub/y", "d/sub/z", "d/x"]
    assert walked["d/x"].size == 9
    assert b"".join(driver.iter_range("d/x", 2, 5, chunk=2)) == (b"d/x" * 3)[2:7]
    assert b"".join(driver.iter_range("d/x", 0, 0)) == b""
    driver.move("d/x", "q/x")
    assert driver.read("q/x") == b"d/x" * 3 and driver.stat("d/x") is None


def test_put_file_consumes_the_file_and_big_files_go_in_parts(driver: StorageDriver, tmp_path: Path) -> None:
    data = os.urandom((11 << 20) + 5)
    if not isinstance(driver, FilesystemDriver):  # multipart from 5 MiB on, as for a 64 MiB+ blob
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

        drv: Any = driver
        drv._transfer = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    staged = _staged(tmp_path, data)
    driver.put_file("big", staged)
    assert not staged.exists()
    assert driver.read("big") == data
    info = driver.stat("big")
    assert info is not None and info.size == len(data)
    assert b"".join(driver.iter_range("big", (5 << 20) - 3, 10)) == data[(5 << 20) - 3:(5 << 20) + 7]


def test_put_file_if_absent_keeps_the_first(driver: StorageDriver, tmp_path: Path) -> None:
    data = b"first chunk"
    assert driver.put_file_if_absent("c/0", _staged(tmp_path, data), hashlib.sha256(data).digest()) is True
    later = _staged(tmp_path, b"second", "later")
    assert driver.put_file_if_absent("c/0", later) is False
    assert not later.exists()
    assert driver.read("c/0") == data


def test_adopt_only_where_the_store_checks_checksums(driver: StorageDriver, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    """No store here checks a claimed SHA-256 (the filesystem has none, moto keeps claims
    unchecked, radosgw 16 drops them), so nothing is ever adopted: the registry uploads its own
    verified copy instead. Adoption on a store that checks (AWS S3) is emulated in
    test_shared_uploads.py."""
    data = os.urandom(4096)
    assert driver.put_file_if_absent("u/0", _staged(tmp_path, data), hashlib.sha256(data).digest()) is True
    assert driver.adopt("u/0", "blob", hashlib.sha256(data).hexdigest(), len(data)) is False
    assert driver.stat("blob") is None
    if request.node.callspec.params["driver"] != "fs":
        drv: Any = driver
        assert drv.checks_checksums() is False
        assert list(driver.walk("_trustbox")) == []  # the probe left nothing behind


# --- radosgw 16 (Ceph pacific), as observed: the premise of the driver's care --------------------


def test_radosgw_ignores_sha256_claims_and_the_aws_copy_condition(ceph_s3: Any) -> None:
    """If a later Ceph checks these, this fails and docs/registry.md's S3 section is to update."""
    from botocore.exceptions import ClientError

    s3 = ceph_s3.client()
    bucket = ceph_s3.new_bucket("facts")
    data = os.urandom(1000)
    wrong = base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode()
    s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA256", ChecksumSHA256=wrong)  # taken
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256") is None  # and nothing kept
    with pytest.raises(ClientError) as bad_md5:  # Content-MD5 is checked
        s3.put_object(Bucket=bucket, Key="m", Body=data, ContentMD5=base64.b64encode(b"\0" * 16).decode())
    assert bad_md5.value.response["Error"]["Code"] == "BadDigest"
    copied = s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"},
                            CopySourceIfMatch='"00000000000000000000000000000000"')
    assert copied["ResponseMetadata"]["HTTPStatusCode"] == 200  # the AWS-named condition is ignored
    with pytest.raises(ClientError) as cond:  # If-None-Match on PUT is honoured
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch="*")
    assert cond.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data
