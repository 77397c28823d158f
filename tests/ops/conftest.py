"""Stacks (trust server + registry, tests/e2e/stack.py) shared by the operations tests: trustbox's
own servers for every test, and notary-server 0.7 + docker-registry 2.8 for the rotation test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack, missing, start_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    why = missing("trustbox")
    if why:
        pytest.skip(why)
    with start_stack("trustbox", tmp_path_factory.mktemp("ops-stack")) as s:
        yield s


@pytest.fixture(scope="package")
def upstream_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    why = missing("upstream")
    if why:
        pytest.skip(why)
    with start_stack("upstream", tmp_path_factory.mktemp("ops-upstream")) as s:
        yield s


@pytest.fixture(params=["trustbox", "upstream"])
def either_stack(request: pytest.FixtureRequest) -> Stack:
    """The trustbox stack, then the upstream one."""
    return request.getfixturevalue("stack" if request.param == "trustbox" else "upstream_stack")
