"""TLS contexts of the trust client: built once per set of files and shared, rebuilt when a file
changes, and a broken file still refused with a message naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.certs import write_ca_and_server_cert
from trustbox.client.transport import make_http_client, ssl_context
from trustbox.errors import NetworkError


def ca_names(ctx: object) -> set[str]:
    certs = ctx.get_ca_certs()  # type: ignore[attr-defined]
    return {v for c in certs for rdn in c["subject"] for k, v in rdn if k == "commonName"}


def test_same_files_share_one_context(tmp_path: Path) -> None:
    files = write_ca_and_server_cert(tmp_path / "a", ca_name="cache test CA a")
    first = ssl_context([files.ca_cert])
    assert ssl_context([files.ca_cert]) is first
    assert "cache test CA a" in ca_names(first)
    assert ssl_context() is ssl_context()  # the system roots alone: loaded once
    assert ssl_context() is not first


def test_a_changed_ca_file_gets_a_new_context(tmp_path: Path) -> None:
    files = write_ca_and_server_cert(tmp_path / "a", ca_name="cache test CA old")
    old = ssl_context([files.ca_cert])
    other = write_ca_and_server_cert(tmp_path / "b", ca_name="cache test CA new with a longer name")
    files.ca_cert.write_bytes(other.ca_cert.read_bytes())
    st = files.ca_cert.stat()
    os.utime(files.ca_cert, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    new = ssl_context([files.ca_cert])
    assert new is not old
    assert "cache test CA new with a longer name" in ca_names(new)
    assert "cache test CA old" not in ca_names(new)


def test_a_broken_ca_file_is_refused_every_time(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    for _ in range(2):
        with pytest.raises(NetworkError, match="cannot load CA certificate .*bad.crt"):
            ssl_context([bad])
    with pytest.raises(NetworkError, match="cannot load CA certificate"):
        ssl_context([tmp_path / "missing.crt"])


def test_clients_share_the_context(tmp_path: Path) -> None:
    files = write_ca_and_server_cert(tmp_path / "a")
    with make_http_client([files.ca_cert]) as one, make_http_client([files.ca_cert]) as two:
        ctx1 = one._transport._pool._ssl_context  # type: ignore[attr-defined]
        ctx2 = two._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert ctx1 is ctx2 is ssl_context([files.ca_cert])
