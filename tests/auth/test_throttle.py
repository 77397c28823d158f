"""The failure throttle on its own: buckets, locks, memory bound, addresses, concurrent checks."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import anyio
import pytest

from trustbox.auth import htpasswd as htpasswd_mod
from trustbox.auth.htpasswd import HtpasswdFile, add_user
from trustbox.auth.throttle import FailureThrottle, PasswordGate, Throttled, ThrottleLimits, address_key
from trustbox.errors import ConfigError


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(throttle: FailureThrottle, account: str, address: str, times: int) -> None:
    for _ in range(times):
        throttle.charge(account, address)


def test_account_locks_after_its_failures_and_drains_with_time() -> None:
    clock = Clock()
    t = FailureThrottle(ThrottleLimits(account_failures=3, address_failures=100, window=60), clock)
    _fail(t, "alice", "10.0.0.1", 3)
    with pytest.raises(Throttled) as exc:
        t.check("alice", "10.0.0.2")  # another address: the account itself is locked
    assert exc.value.retry_after == 20  # one failure drains every 60/3 s
    assert b'"code":"TOOMANYREQUESTS"' in exc.value.body() and exc.value.headers() == {"Retry-After": "20"}
    t.check("bob", "10.0.0.1")  # other accounts are not
    with pytest.raises(Throttled):
        t.charge("alice", "10.0.0.1")  # a refused attempt is not counted...
    clock.now += 19
    with pytest.raises(Throttled) as exc:
        t.check("alice", "10.0.0.1")
    assert exc.value.retry_after == 1
    clock.now += 1  # ...so the lock ends when announced
    t.charge("alice", "10.0.0.1")  # one more attempt, then locked again
    with pytest.raises(Throttled):
        t.check("alice", "10.0.0.1")
    clock.now += 60
    for _ in range(3):
        t.charge("alice", "10.0.0.1")  # a full window later the whole burst is allowed again


def test_address_locks_when_spraying_user_names() -> None:
    clock = Clock()
    t = FailureThrottle(ThrottleLimits(account_failures=3, address_failures=5, window=60), clock)
    for n in range(5):
        t.charge(f"user{n}", "192.0.2.7")
    with pytest.raises(Throttled) as exc:
        t.check("fresh-name", "192.0.2.7")
    assert exc.value.retry_after == 12
    t.check("fresh-name", "192.0.2.8")


def test_success_refunds_its_charge_only() -> None:
    clock = Clock()
    t = FailureThrottle(ThrottleLimits(account_failures=3, address_failures=3, window=60), clock)
    _fail(t, "alice", "10.0.0.1", 2)
    for _ in range(10):  # the right password any number of times: charged and refunded
        t.charge("alice", "10.0.0.1")
        t.refund("alice", "10.0.0.1")
    t.charge("alice", "10.0.0.1")  # the two earlier failures still count: this is the third
    with pytest.raises(Throttled):
        t.check("alice", "10.0.0.1")


def test_memory_is_bounded_and_drained_keys_are_forgotten() -> None:
    clock = Clock()
    t = FailureThrottle(ThrottleLimits(account_failures=10, address_failures=10, window=60, max_keys=100), clock)
    for n in range(5000):
        t.charge(f"random-{n}", f"2001:db8:{n:x}::1")
    assert t.accounts is not None and t.addresses is not None
    assert len(t.accounts) == 100 and len(t.addresses) == 100
    t.check("random-0", "2001:db8:0::1")  # the oldest were dropped
    clock.now += 6  # one failure drains from each bucket every 6 s: all are empty now
    t.charge("x", "192.0.2.1")  # and are forgotten when the table next changes
    assert len(t.accounts) == 1 and len(t.addresses) == 1
    t.refund("x", "192.0.2.1")
    assert len(t.accounts) == 0 and len(t.addresses) == 0


def test_long_user_names_do_not_grow_memory() -> None:
    """Names kilobytes long (a Basic header or a form allows them) are kept as fixed-size keys."""
    t = FailureThrottle(ThrottleLimits(account_failures=10, address_failures=10, max_keys=1000), Clock())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(3000):
            t.charge(f"{n:08d}" + "x" * 4096, f"198.51.{n // 256}.{n % 256}")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert t.accounts is not None and len(t.accounts) == 1000
    assert held < 1024 * 1024, held  # 1000 names of 4 KiB would hold 4 MiB


def test_address_keys() -> None:
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "192.0.2.1"
    assert address_key(None) == "-" and address_key("testclient") == "testclient"


def test_limits_validation_and_off() -> None:
    for bad in ({"account_failures": -1}, {"window": 0}, {"window": float("nan")}, {"max_keys": 0}):
        with pytest.raises(ConfigError):
            ThrottleLimits(**bad)  # type: ignore[arg-type]
    t = FailureThrottle(ThrottleLimits(account_failures=0, address_failures=0))
    _fail(t, "alice", "10.0.0.1", 1000)
    t.check("alice", "10.0.0.1")


@pytest.fixture()
def users(tmp_path: Path) -> HtpasswdFile:
    f = tmp_path / "htpasswd"
    add_user(f, "alice", "alice-pw", cost=4)
    return HtpasswdFile(f)


def _count_bcrypt(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = htpasswd_mod.bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(htpasswd_mod.bcrypt, "checkpw", counting)
    return calls


def test_gate_parallel_guesses_are_charged_before_they_run(
    users: HtpasswdFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 different wrong passwords at once: only the account's 10 are checked, 50 refused."""
    calls = _count_bcrypt(monkeypatch)
    gate = PasswordGate(users, FailureThrottle(ThrottleLimits(10, 100, 60), Clock()))
    outcomes: list[str] = []

    async def guess(n: int) -> None:
        try:
            outcomes.append("ok" if await gate.check("alice", f"guess-{n}", "10.0.0.1") else "wrong")
        except Throttled:
            outcomes.append("throttled")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(60):
                tg.start_soon(guess, n)

    anyio.run(main)
    assert outcomes.count("wrong") == 10 and outcomes.count("throttled") == 50
    assert len(calls) == 10


def test_gate_identical_parallel_logins_share_one_check(
    users: HtpasswdFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many connections with the right password at once (a CI farm) are not throttled."""
    calls = _count_bcrypt(monkeypatch)
    throttle = FailureThrottle(ThrottleLimits(2, 2, 60), Clock())
    gate = PasswordGate(users, throttle)
    results: list[bool] = []

    async def login() -> None:
        results.append(await gate.check("alice", "alice-pw", "10.0.0.1"))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(login)

    anyio.run(main)
    assert results == [True] * 20 and len(calls) == 1
    assert throttle.accounts is not None and len(throttle.accounts) == 0  # charged once, refunded


def test_gate_locked_account_refuses_even_the_right_password(users: HtpasswdFile) -> None:
    clock = Clock()
    gate = PasswordGate(users, FailureThrottle(ThrottleLimits(2, 100, 60), clock))

    async def main() -> None:
        assert await gate.check("alice", "alice-pw", "10.0.0.1")  # remembered from now on
        assert not await gate.check("alice", "x", "10.0.0.1")
        assert not await gate.check("alice", "y", "10.0.0.1")
        with pytest.raises(Throttled):
            await gate.check("alice", "alice-pw", "10.0.0.1")  # not even from the memo
        clock.now += 30
        assert await gate.check("alice", "alice-pw", "10.0.0.1")

    anyio.run(main)
