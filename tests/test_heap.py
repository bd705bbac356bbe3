"""`viewer.heap`: a one-shot command keeps freed blocks in its heap, so reusing them costs no page faults."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys

import pytest

from viewer import heap

_RENDERS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from viewer.heap import keep_heap
    assert keep_heap()
from viewer.engine.render import Engine
engine = Engine.from_name("liif-lm")
photo = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
features = engine.encode(photo)
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    engine.render_scale(features, 512, 512)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(" ".join(map(str, faults)))
"""


def _faults(mode: str) -> list[int]:
    """Minor page faults of three x8 renders of a 64 px photo in one fresh process."""
    out = subprocess.run([sys.executable, "-c", _RENDERS, mode], capture_output=True, text=True, check=True)
    return [int(v) for v in out.stdout.split()]


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
)
def test_kept_heap_renders_again_without_page_faults() -> None:
    """A render's band tensors, freed, stay in the heap for the next render: with glibc's own adjusting,
    each of these renders faulted about 80,000 pages (320 MB) in again on the development machine; with
    the thresholds, the second and third almost none (0 to 2,200 in CI runs: a thread's first arena, say).
    Measured against the same renders without the thresholds in another fresh process."""
    kept = _faults("keep")
    default = _faults("default")
    assert max(kept[1:]) * 5 < min(default[1:]), (kept, default)  # at least 80% fewer
    assert kept[0] > max(kept[1:])  # the first render did fault its memory in (the count is real)


def test_only_one_shot_commands_keep_their_heap() -> None:
    assert heap.one_shot_command(["render", "in.png", "-o", "out.png"])
    assert heap.one_shot_command(["export", "in.png", "--size", "8x10"])
    assert heap.one_shot_command(["models"])
    assert not heap.one_shot_command([])  # the viewer's window
    assert not heap.one_shot_command(["--feature-memory", "2"])


def test_give_back_returns_free_heap_memory_to_the_kernel() -> None:
    """On Linux with glibc, `give_back` runs malloc_trim: a freed heap block's pages leave the process."""
    import platform

    from viewer.heap import give_back

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert give_back() is False
        return

    def resident() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = (ctypes.c_void_p,)
    blocks = [libc.malloc(64 << 10) for _ in range(1600)]  # 100 MB in blocks under the mmap threshold
    for b in blocks:
        ctypes.memset(b, 1, 64 << 10)
    keep = libc.malloc(64)  # above them, so the heap's top cannot shrink by itself
    before = resident()
    for b in blocks:
        libc.free(b)
    assert give_back() is True
    after = resident()
    libc.free(keep)
    assert before - after > 50 << 20
