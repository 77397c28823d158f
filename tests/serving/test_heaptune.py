"""trustbox.heaptune: a process that streams large bodies keeps its chunk buffers.

Measured as the kernel sees it: the minor page faults of a fresh interpreter that allocates and
frees batches of 400 KiB buffers (what a registry does for every chunk of an upload it receives).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="the tuning is glibc's mallopt"
)

SRC = Path(__file__).resolve().parents[2] / "src"

# batches of 25 buffers of 400 KiB (10 MiB, a layer's worth of received chunks), each freed
# before the next is made; prints the page faults of 40 batches after two to warm up
_CHUNKS = """
import resource, sys
sys.path.insert(0, {src!r})
{setup}
def batches(n):
    for _ in range(n):
        batch = [bytes(400 * 1024) for _ in range(25)]
        del batch
batches(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
batches(40)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(setup: str) -> int:
    out = subprocess.run([sys.executable, "-c", _CHUNKS.format(src=str(SRC), setup=setup)],
                         capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.split()[-1])


def test_freed_chunk_buffers_are_reused_instead_of_faulted_in_again() -> None:
    untuned = _faults("")
    tuned = _faults("from trustbox.heaptune import keep_stream_buffers; assert keep_stream_buffers()")
    # glibc's defaults give 400 MiB of buffers back and fault them in again (~100 pages a batch)
    assert untuned > 40 * 100
    assert tuned < untuned / 10


def test_the_registry_app_tunes_its_process(tmp_path: Path) -> None:
    setup = ("from trustbox.registry.app import create_app\n"
             "from trustbox.registry.config import RegistryConfig\n"
             f"create_app(RegistryConfig(storage={str(tmp_path / 'store')!r}))")
    assert _faults(setup) < 40 * 10


def test_a_second_call_changes_nothing() -> None:
    from trustbox.heaptune import keep_stream_buffers

    assert keep_stream_buffers() is True
    assert keep_stream_buffers() is True
