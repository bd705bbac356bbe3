"""The one place where worker threads talk to Qt: a signal that carries plain event values.

A worker calls `bridge.post(event)` from its own thread; Qt queues the signal to the thread the bridge
lives in (the GUI thread), where the controller's slot runs. Events are immutable values from
`viewer.app.messages`, so nothing is shared between threads after the hand-over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal


class WorkerBridge(QObject):
    """Forwards worker events to the GUI thread."""

    posted = Signal(object)

    def post(self, event: object) -> None:
        """Any thread: queue `event` for the GUI thread."""
        self.posted.emit(event)


def run_in_thread(name: str, fn: Callable[[], object], post: Callable[[object], None]) -> threading.Thread:
    """Run `fn` in a new daemon thread and `post` its return value (an event) from that thread.

    For short one-off jobs (loading a photo); every exception must be turned into an event by `fn`.
    """
    thread = threading.Thread(target=lambda: post(fn()), name=name, daemon=True)
    thread.start()
    return thread
