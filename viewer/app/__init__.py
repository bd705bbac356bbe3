"""The Qt desktop application (PySide6). Imports torch lazily."""

from __future__ import annotations

import sys

_HEADROOM = 1 << 40


def _guard_singleton_refcounts() -> None:
    """Work around a shiboken6 6.12 bug on CPython < 3.12: a call of a Qt method that returns void drops
    one reference to None it never took (about 9 per canvas repaint), and emitting a signal does the same
    to True, so after a few thousand frames or events CPython aborts with "none_dealloc: deallocating
    None" (or bool_dealloc). These singletons are static objects that are never freed, so giving them a
    large reference headroom is harmless; from 3.12 on they are immortal and this does nothing."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return
    import ctypes

    for obj in (None, True, False, Ellipsis, NotImplemented):
        refcnt = ctypes.c_ssize_t.from_address(id(obj))
        if refcnt.value < _HEADROOM:
            refcnt.value += _HEADROOM


_guard_singleton_refcounts()
