"""Throttling of failed password checks, per account and per client address.

Every password check that has to run bcrypt is charged, before it runs, to a *leaky bucket* for
the account name and one for the client address; a check that succeeds is refunded. A bucket
drains at ``limit / window`` per second, so an account (address) gets at most ``limit`` wrong
passwords in a burst and then ``limit`` per ``window``; while a bucket is full, checks for it are
refused with :class:`Throttled` (how many seconds until one more is allowed) without looking at
the password at all — a right password is refused too, so the lock cannot be used to confirm a
guess. Charging before the check bounds parallel guessing as well as sequential guessing, and a
refused request costs nothing, so an attacker who keeps knocking does not extend the lock.

Unknown account names are charged exactly like known ones (the throttle must not tell which
users exist). Memory is bounded: keys are stored as 16-byte digests (a user name can be kilobytes
long), each table keeps at most ``max_keys`` of them, dropping the longest-unchanged first, and a
bucket that has drained is forgotten. IPv6 clients are keyed by
their /64 (one host usually owns the whole prefix).

:class:`PasswordGate` puts the throttle in front of an :class:`HtpasswdFile`; the token server and
:class:`trustbox.auth.middleware.BasicAuthorizer` share it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.to_thread

from trustbox.auth.htpasswd import HtpasswdFile
from trustbox.errcode import TOOMANYREQUESTS
from trustbox.errors import ConfigError, TrustboxError

DEFAULT_ACCOUNT_FAILURES = 10
DEFAULT_ADDRESS_FAILURES = 30
DEFAULT_WINDOW = 60.0
DEFAULT_MAX_KEYS = 10_000
_EMPTY = 1e-9  # a bucket at or below this level holds nothing


class Throttled(TrustboxError):
    """Too many failed password checks for an account or address; retry in ``retry_after`` s."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed authentication attempts; retry in {retry_after} seconds",
            hint="wait, then try again with the right password",
        )
        self.retry_after = retry_after

    def body(self) -> bytes:
        """The errcode envelope of a 429 (``TOOMANYREQUESTS``, as distribution names it)."""
        return TOOMANYREQUESTS.body(self.message)

    def headers(self) -> dict[str, str]:
        """``Retry-After`` in whole seconds."""
        return {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class ThrottleLimits:
    """How many failures an account / an address may have per ``window`` seconds (0: no limit)."""

    account_failures: int = DEFAULT_ACCOUNT_FAILURES
    address_failures: int = DEFAULT_ADDRESS_FAILURES
    window: float = DEFAULT_WINDOW
    max_keys: int = DEFAULT_MAX_KEYS

    def __post_init__(self) -> None:
        """Raise ConfigError for negative limits, a window that is not positive or no room for keys."""
        if self.account_failures < 0 or self.address_failures < 0:
            raise ConfigError("failure limits must be 0 (off) or positive")
        if not self.window > 0 or not math.isfinite(self.window):
            raise ConfigError("the failure window must be a positive number of seconds")
        if self.max_keys < 1:
            raise ConfigError("the throttle must be able to track at least one key")


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class _Buckets:
    """Leaky buckets of failures by key: each drains at ``limit / window`` per second."""

    def __init__(self, limit: int, window: float, max_keys: int) -> None:
        self.limit = limit
        self.rate = limit / window
        self.max_keys = max_keys
        self._levels: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # digest -> (level, when)

    def __len__(self) -> int:
        return len(self._levels)

    def _level(self, digest: bytes, now: float) -> float:
        level, when = self._levels.get(digest, (0.0, now))
        return max(0.0, level - max(0.0, now - when) * self.rate)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` may be charged once more (0: now)."""
        excess = self._level(_digest(key), now) - (self.limit - 1)
        return excess / self.rate if excess > _EMPTY else 0.0

    def add(self, key: str, amount: float, now: float) -> None:
        """Charge (or refund, with a negative ``amount``) ``key``.

        Keys are kept in the order they last changed; drained keys at the old end are dropped, and
        the oldest ones beyond ``max_keys``.
        """
        digest = _digest(key)
        level = self._level(digest, now) + amount
        self._levels.pop(digest, None)
        if level > _EMPTY:
            self._levels[digest] = (level, now)
        while self._levels:
            oldest = next(iter(self._levels))
            if len(self._levels) <= self.max_keys and self._level(oldest, now) > _EMPTY:
                break
            del self._levels[oldest]


def address_key(host: str | None) -> str:
    """The throttle key of a client address: IPv6 by its /64, anything else as given."""
    if not host:
        return "-"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureThrottle:
    """Per-account and per-address failure buckets (see the module docstring); thread-safe."""

    def __init__(self, limits: ThrottleLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or ThrottleLimits()
        self.clock = clock
        lim = self.limits
        self.accounts = _Buckets(lim.account_failures, lim.window, lim.max_keys) if lim.account_failures else None
        self.addresses = _Buckets(lim.address_failures, lim.window, lim.max_keys) if lim.address_failures else None
        self._lock = threading.Lock()

    def _pairs(self, account: str, address: str | None) -> list[tuple[_Buckets, str]]:
        pairs: list[tuple[_Buckets, str]] = []
        if self.accounts is not None:
            pairs.append((self.accounts, account))
        if self.addresses is not None:
            pairs.append((self.addresses, address_key(address)))
        return pairs

    def check(self, account: str, address: str | None) -> None:
        """Raise Throttled if ``account`` or ``address`` has used up its failures."""
        with self._lock:
            self._check(self._pairs(account, address), self.clock())

    @staticmethod
    def _check(pairs: list[tuple[_Buckets, str]], now: float) -> None:
        wait = max((table.wait(key, now) for table, key in pairs), default=0.0)
        if wait > 0:
            raise Throttled(max(1, math.ceil(wait)))

    def charge(self, account: str, address: str | None) -> None:
        """Count one attempt against both keys before checking it; Throttled if either is full."""
        with self._lock:
            now = self.clock()
            pairs = self._pairs(account, address)
            self._check(pairs, now)
            for table, key in pairs:
                table.add(key, 1.0, now)

    def refund(self, account: str, address: str | None) -> None:
        """Take back the charge of an attempt that succeeded."""
        with self._lock:
            now = self.clock()
            for table, key in self._pairs(account, address):
                table.add(key, -1.0, now)


@dataclass
class _Flight:
    """A bcrypt check in progress, shared by identical concurrent requests.

    ``outcome`` stays None if the check was cancelled (its waiters then check for themselves).
    """

    done: anyio.Event
    outcome: bool | Exception | None = None


class PasswordGate:
    """htpasswd checks behind a :class:`FailureThrottle` (None: unthrottled).

    Identical concurrent checks (same user, same password) share one bcrypt run and one charge,
    so a client that opens many connections with the right password at once is not throttled.
    """

    def __init__(self, htpasswd: HtpasswdFile, throttle: FailureThrottle | None) -> None:
        self.htpasswd = htpasswd
        self.throttle = throttle
        self._flights: dict[tuple[str, str], _Flight] = {}

    async def check(self, user: str, password: str, address: str | None) -> bool:
        """Whether ``password`` is right for ``user``.

        Raises Throttled when the account or the address is locked (before looking at the
        password), and ConfigError when the htpasswd file can no longer be read.
        """
        while True:
            if self.throttle is not None:
                self.throttle.check(user, address)
            if self.htpasswd.remembered(user, password):
                return True
            flight = self._flights.get((user, password))
            if flight is None:
                break
            await flight.done.wait()
            if isinstance(flight.outcome, Exception):
                raise flight.outcome
            if flight.outcome is not None:
                return flight.outcome
        if self.throttle is not None:
            self.throttle.charge(user, address)
        return await self._run(user, password, address)

    async def _run(self, user: str, password: str, address: str | None) -> bool:
        """Run the charged check in a worker thread; refund it unless it found a wrong password."""
        flight = _Flight(anyio.Event())
        self._flights[(user, password)] = flight
        try:
            flight.outcome = await anyio.to_thread.run_sync(self.htpasswd.check, user, password)
        except Exception as exc:
            flight.outcome = exc
            raise
        finally:
            del self._flights[(user, password)]
            flight.done.set()
            if self.throttle is not None and flight.outcome is not False:
                self.throttle.refund(user, address)
        return flight.outcome
