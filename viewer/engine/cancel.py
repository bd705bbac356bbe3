"""Cooperative cancellation for long renders.

A token is created per request by whoever submits it; the worker checks it between chunks. Setting it
from any thread is safe (a threading.Event underneath).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from viewer.errors import Cancelled

ProgressCallback = Callable[[int, int], None]
"""Called as progress(done, total) from the thread doing the work."""


class CancelToken:
    """A flag a running render polls between chunks."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise Cancelled if cancel() has been called."""
        if self._event.is_set():
            raise Cancelled()


def check(token: CancelToken | None) -> None:
    """Raise Cancelled if the (optional) token is set."""
    if token is not None:
        token.raise_if_cancelled()
