"""Shared test configuration. ``tests`` is a package: test modules import shared pieces fully
qualified (``tests.helpers.net``, ``tests.testdata``), with the repository root on the path.

Also the session's Ceph cluster (a real S3 store, ``tests/helpers/ceph.py``) for every test
folder that asks for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.ceph import PACKAGES, CephCluster, S3Account, attach_or_start, missing_tools, start_cluster

TESTS_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def ceph_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephCluster]:
    """One Ceph cluster (monitor, OSD, radosgw on loopback) for the whole session, started on
    first use (1-5 s) and stopped and removed at the end. With ``TRUSTBOX_CEPH_DIR=DIR`` the
    cluster running in DIR is used (started there if none is) and left running for the next
    run (``python3 -m tests.helpers.ceph down DIR`` stops it). Skipped only when the Ceph
    programs are not installed."""
    missing = missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install {' '.join(PACKAGES)})")
    kept = os.environ.get("TRUSTBOX_CEPH_DIR")
    if kept:
        yield attach_or_start(Path(kept))
        return
    cluster = start_cluster(tmp_path_factory.mktemp("ceph"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ceph_s3(ceph_cluster: CephCluster) -> S3Account:
    """An S3 account (endpoint, keys) on the session's radosgw whose keys are the test
    process's ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (``testing`` unless set, as
    for moto): in-process registries find them through boto3's default credential chain,
    which resolves them once per process, so moto and radosgw must share them."""
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    return ceph_cluster.account(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
