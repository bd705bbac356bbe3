"""Memory sizing that needs no torch, so the GUI can show it before the model has loaded."""

from __future__ import annotations

import os


def default_memory_budget(total_bytes: int | None = None) -> int:
    """Default bytes of encoded tiles to keep in memory: 1/24 of the machine's memory (1 GiB on a 24 GiB
    machine), between 256 MiB and 4 GiB, so a 100 MP photo stays within a few GiB in all."""
    if total_bytes is None:
        try:
            total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            total_bytes = 16 << 30
    return int(min(4 << 30, max(256 << 20, total_bytes // 24)))


__all__ = ["default_memory_budget"]
