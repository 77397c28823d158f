"""The cross-server comparison masks only what is random, and still catches real differences."""

from __future__ import annotations

import pytest

from .clitools import Result, Transcript, assert_same_transcript

pytestmark = pytest.mark.interop

A, B, C = "a" * 64, "b" * 64, "c" * 64
KEEP = "d" * 64


def transcript(server: str, steps: list[tuple[int, str, str]], tmp: str = "/tmp/x1") -> Transcript:
    tr = Transcript(server=server, tmp_roots=[tmp], keep_hex={KEEP})
    for i, (rc, out, err) in enumerate(steps):
        tr.add(Result(f"step{i}", ["cmd"], rc, out, err))
    return tr


def test_random_ids_ports_paths_and_times_are_masked():
    ref = transcript("upstream", [
        (0, f"key {A} at /tmp/x1/k, short {A[:12]}", 'time="2026-11-22T07:00:00Z" msg=x'),
        (1, f"127.0.0.1:4443 does not have trust data; {A} {B} {KEEP}", ""),
    ])
    got = transcript("trustbox", [
        (0, f"key {C} at /tmp/y2/k, short {C[:12]}", 'time="2026-11-22T08:00:01Z" msg=x'),
        (1, f"127.0.0.1:39999 does not have trust data; {C} {A} {KEEP}", ""),
    ], tmp="/tmp/y2")
    assert_same_transcript(ref, got)


@pytest.mark.parametrize(
    "change",
    [
        (0, f"key {A} {A}", ""),  # the same id twice where upstream had two different ids
        (0, f"key {A} {B} {'e' * 64}", ""),  # a kept digest (payload hash) must not be masked
        (1, f"key {A} {B} {KEEP}", ""),  # exit status
        (0, f"key {A} {B} {KEEP}", "warning"),  # stderr
    ],
)
def test_real_differences_are_reported(change):
    ref = transcript("upstream", [(0, f"key {A} {B} {KEEP}", "")])
    got = transcript("trustbox", [change])
    with pytest.raises(AssertionError, match="differ"):
        assert_same_transcript(ref, got)


def test_missing_steps_are_reported():
    ref = transcript("upstream", [(0, "a", ""), (0, "b", "")])
    got = transcript("trustbox", [(0, "a", "")])
    with pytest.raises(AssertionError):
        assert_same_transcript(ref, got)
