"""Keep freed memory in the process's heap for a one-shot command, so its tensors cost no page faults twice.

glibc serves an allocation above its mmap threshold (128 KB at start, raised on the fly to the largest
block freed, at most 32 MB) with a fresh mmap, and returns the heap's free top to the kernel above its trim
threshold. A render allocates tensors of a few megabytes for every band of rows (a 51,200-query decoder
batch in bf16 is 4.9 MB), so the kernel maps and zeroes the same amount again and again, one 4 KiB page
fault at a time. Fixing both thresholds (which also turns glibc's adjusting off) keeps those blocks in the
heap for the next band: on the 2-core AMD EPYC development machine, a `render --scale 8` of a 320 px photo
with `liif-lm` took 83 k instead of 150 k minor page faults and 0.35 instead of 0.53 s of system time
(6 alternating rounds with the same thresholds set through glibc's environment variables).

Only for commands that end when their job does (`render`, `export`, `batch`, `eval` and the others): the
viewer's window runs for hours and should give memory back when a big photo is closed. Linux with glibc
only (`mallopt` is glibc's); anywhere else, or if the call fails, nothing changes.
"""

from __future__ import annotations

import ctypes
import functools
import platform
from collections.abc import Sequence
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
"""Blocks below this come from the heap (glibc's largest allowed threshold on 64-bit systems)."""
TRIM_THRESHOLD = 1 << 30
"""The heap's free top is returned to the kernel only beyond this."""


@functools.cache
def _glibc(name: str) -> Any:
    """glibc's function `name` (looked up once), or None where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def keep_heap() -> bool:
    """Set glibc's mmap and trim thresholds (see the module doc); whether both calls succeeded."""
    mallopt = _glibc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok_mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok_trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return ok_mmap and ok_trim


def give_back() -> bool:
    """Return the heap's free memory to the kernel now (glibc's `malloc_trim`): for the viewer, which runs
    for hours, after a closed photo's buffers are freed (glibc keeps much of a freed 100 MP photo's memory
    in its arenas otherwise: 0.21 GiB after four big photos). Whether it ran; it holds no Python lock, so
    call it from a worker thread."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    trim(0)
    return True


def one_shot_command(args: Sequence[str]) -> bool:
    """Whether `args` run a command that ends with its job, not the viewer's window."""
    from viewer.hugepages import viewer_job

    return not viewer_job(args)
