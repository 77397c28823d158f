"""Fixtures of the client tests: a fake notary server, a test repository, a client factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.client.fakeserver import FakeNotary
from tests.helpers.simulator import GUN, NOW, RepositorySimulator
from trustbox.client.trust.repository import TrustClient
from trustbox.keystore.passphrase import constant_retriever

SERVER = "https://notary.example.test"


@pytest.fixture
def fake() -> FakeNotary:
    return FakeNotary(NOW)


@pytest.fixture
def repo(fake: FakeNotary) -> RepositorySimulator:
    r = RepositorySimulator().initial()
    r.serve(fake)
    return r


@pytest.fixture
def make_client(fake: FakeNotary, tmp_path: Path) -> Iterator[Callable[..., TrustClient]]:
    clients: list[TrustClient] = []

    def factory(gun: str = GUN, now: datetime = NOW, trust_dir: Path | None = None, **kw: object) -> TrustClient:
        c = TrustClient(gun, SERVER, trust_dir or tmp_path / "trust", now=now, http=fake.client(),
                        passphrase_retriever=constant_retriever("test-passphrase"), **kw)  # type: ignore[arg-type]
        clients.append(c)
        return c

    yield factory
    for c in clients:
        c.close()
