"""One trustbox stack (trust server + registry, tests/e2e/stack.py) shared by the operations tests."""

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
