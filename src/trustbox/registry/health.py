"""registry:2's storage health check (``health.storagedriver``): the storage is probed every
``interval``; after ``threshold`` failures in a row every request is answered ``503`` with
distribution's ``UNAVAILABLE`` error until a probe succeeds again."""

from __future__ import annotations

import logging
import threading

from trustbox.registry.storage.base import StorageDriver

log = logging.getLogger("trustbox.registry")


class StorageHealth:
    """Periodic probe of a storage driver in a daemon thread (started on first use)."""

    def __init__(self, driver: StorageDriver, interval: float, threshold: int) -> None:
        self.driver = driver
        self.interval = interval
        self.threshold = max(1, threshold)
        self.failures = 0
        self._started = False
        self._lock = threading.Lock()

    def probe(self) -> bool:
        """One check: list the storage root. Never raises."""
        try:
            self.driver.list_dir("")
        except Exception as exc:  # any failure of the store counts
            self.failures += 1
            log.error("storage health check failed (%d in a row): %s", self.failures, exc)
            return False
        self.failures = 0
        return True

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.interval):
            self.probe()

    @property
    def healthy(self) -> bool:
        """False once ``threshold`` probes in a row failed (starts the prober on first call)."""
        if not self._started:
            with self._lock:
                if not self._started:
                    self._started = True
                    threading.Thread(target=self._run, name="storage-health", daemon=True).start()
        return self.failures < self.threshold
