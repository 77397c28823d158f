"""Running storage calls without stalling the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from trustbox.registry.storage.base import StorageDriver

T = TypeVar("T")


async def run_io(driver: StorageDriver, fn: Callable[..., T], *args: object) -> T:
    """Call ``fn`` inline for cheap local storage, in a worker thread for remote storage."""
    if driver.cheap_io:
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args)


async def in_thread(fn: Callable[..., T], *args: object) -> T:
    """Always run ``fn`` in a worker thread (hashing, fsync, big copies)."""
    return await anyio.to_thread.run_sync(fn, *args)
