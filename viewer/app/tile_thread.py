"""The tile thread that both workers build on: the newest request wins, tile by tile, centre first.

No Qt here: a worker reports by calling `emit(event)` from its own thread with a value from
`viewer.app.messages`. Scheduling is "latest wins": a new request replaces the queue of the previous one
(level 1 of cancellation) and sets the cancellation token of the tile in progress, which the renderer
checks between chunks (level 2), unless the new request wants that very tile too, in which case it is
adopted and delivered under the new generation instead of being thrown away.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.app.messages import RequestDone, RequestProgress, TileKind, TileRequest, TileResult, WorkerError
from viewer.app.planning import TileKey, TileSpec
from viewer.engine.cancel import CancelToken
from viewer.errors import Cancelled, ViewerError

log = logging.getLogger(__name__)

Emit = Callable[[object], None]
"""Called from a worker thread with one event value."""

PROGRESS_INTERVAL_S = 0.05


def to_bgra(rgb: np.ndarray) -> np.ndarray:
    """float [0, 1] (rows, cols, 3) -> uint8 (rows, cols, 4) laid out as QImage.Format_RGB32 expects."""
    rows, cols = rgb.shape[:2]
    out = np.empty((rows, cols, 4), dtype=np.uint8)
    q = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    out[..., 0] = q[..., 2]
    out[..., 1] = q[..., 1]
    out[..., 2] = q[..., 0]
    out[..., 3] = 255
    return out


WORKER_NICENESS = 5
"""How much lower than the GUI thread the workers run (Linux), so a paint never waits for a render."""


def lower_thread_priority(by: int = WORKER_NICENESS) -> None:
    """Calling thread: run at a lower CPU priority than the GUI thread (Linux: per-thread nice value).

    Threads this thread starts later (torch's OpenMP team, export threads) inherit it. Renders still use
    every core when nothing else wants them; when the GUI thread paints, it wins. Elsewhere: no-op.
    """
    if not sys.platform.startswith("linux") or by <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except (OSError, AttributeError):  # not permitted, or not supported: priority is an optimisation
        pass


def is_oom(exc: BaseException) -> bool:
    """Out of device memory, on CUDA (torch.OutOfMemoryError) or MPS (a RuntimeError saying so)."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class Throttle:
    """Lets a progress report through at most every `interval` seconds, and always the last one."""

    def __init__(self, interval: float = PROGRESS_INTERVAL_S) -> None:
        self._interval = interval
        self._last = 0.0

    def ready(self, done: int, total: int) -> bool:
        now = time.perf_counter()
        if done >= total or now - self._last >= self._interval:
            self._last = now
            return True
        return False


@dataclass
class Running:
    spec: TileSpec
    generation: int
    content: int
    token: CancelToken


@dataclass
class TileQueue:
    """The current request, its pending tiles, and the tile in progress. The owner holds the lock."""

    request: TileRequest | None = None
    pending: deque[TileSpec] = field(default_factory=deque)
    running: Running | None = None
    outstanding: set[tuple[TileKey, tuple[int, int, int, int]]] = field(default_factory=set)
    """(key, window) of the visible tiles of the current request not delivered yet; when it empties, the
    request is done."""
    delivered: int = 0

    def replace(self, req: TileRequest) -> None:
        """Make `req` current: drop the old queue; cancel or adopt the running tile."""
        self.request = req
        tiles = list(req.tiles)
        run = self.running
        if run is not None:
            same = [t for t in tiles if (t.key, t.window) == (run.spec.key, run.spec.window)]
            if run.content == req.content and same:
                tiles.remove(same[0])
            else:
                run.token.cancel()
        self.pending = deque(tiles)
        self.outstanding = {(t.key, t.window) for t in req.tiles if t.visible}
        self.delivered = 0

    def clear(self) -> None:
        self.request = None
        self.pending.clear()
        self.outstanding.clear()
        if self.running is not None:
            self.running.token.cancel()

    def take(self) -> Running | None:
        """Pop the next tile and mark it running."""
        if self.request is None or not self.pending:
            return None
        spec = self.pending.popleft()
        self.running = Running(spec, self.request.generation, self.request.content, CancelToken())
        return self.running

    def finish(self, run: Running, ok: bool) -> tuple[int | None, RequestDone | None, RequestProgress | None]:
        """Close the running tile. Returns the generation to deliver it under (None: drop it), the
        request-done event if this was the last visible tile, and a progress event."""
        self.running = None
        req = self.request
        if not ok or req is None or req.content != run.content:
            return None, None, None
        if req.generation != run.generation and run.spec.key not in req.key_set:
            return None, None, None
        self.delivered += 1
        done_event = None
        if (run.spec.key, run.spec.window) in self.outstanding:
            self.outstanding.discard((run.spec.key, run.spec.window))
            if not self.outstanding:
                done_event = RequestDone(
                    req.generation, req.kind, time.perf_counter() - req.submitted, len(req.tiles)
                )
        progress = RequestProgress(req.generation, req.kind, self.delivered, len(req.tiles))
        return req.generation, done_event, progress


class TileThread:
    """A thread that renders the newest tile request, tile by tile, centre first."""

    kind: TileKind = "liif"

    def __init__(self, emit: Emit, name: str) -> None:
        self._emit = emit
        self._cond = threading.Condition()
        self._stop = False
        self._tiles = TileQueue()
        self._display: Any = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def set_display(self, display: Any) -> None:
        """Convert every tile from now on with `display` (a `DisplayTransform` of the open photo; None: as
        they are), in this worker thread, before it goes to the GUI. Called from the GUI thread."""
        with self._cond:
            self._display = display

    # -- any thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, request: TileRequest) -> None:
        """Make `request` the one to work on (called from the GUI thread)."""
        with self._cond:
            self._tiles.replace(request)
            self._cond.notify_all()

    def cancel_tiles(self) -> None:
        """Drop the queued tiles and stop the one in progress (called from the GUI thread)."""
        with self._cond:
            self._tiles.clear()
            self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread and wait for it; True if it ended (called from the GUI thread)."""
        with self._cond:
            self._stop = True
            self._tiles.clear()
            self._on_close_locked()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- worker thread ---------------------------------------------------------------------------------
    def _main(self) -> None:
        """Runs in the worker thread: wait for work, do it, report every failure as an event."""
        lower_thread_priority()
        while True:
            try:
                with self._cond:
                    while not self._stop and not self._has_work_locked():
                        self._cond.wait()
                    if self._stop:
                        return
                    action = self._take_work_locked()
                action()
            except Exception as exc:  # a bug: report it, keep the thread alive for the next request
                log.exception("worker failure")
                self._emit(
                    WorkerError(
                        "Internal error",
                        f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=6)}",
                        internal=True,
                    )
                )

    def _has_work_locked(self) -> bool:
        return self._tiles_ready_locked() and bool(self._tiles.pending)

    def _take_work_locked(self) -> Callable[[], None]:
        run = self._tiles.take()
        assert run is not None
        return lambda: self._do_tile(run)

    def _tiles_ready_locked(self) -> bool:
        return True

    def _on_close_locked(self) -> None:
        pass

    def _render(self, run: Running) -> np.ndarray:
        raise NotImplementedError

    def _do_tile(self, run: Running) -> None:
        """Render one tile (worker thread) and deliver it if it is still wanted."""
        t0 = time.perf_counter()
        pixels: np.ndarray | None = None
        try:
            pixels = self._render(run)
        except Cancelled:
            pass
        except Exception as exc:
            # Do not retry the rest of this request tile after tile: one message, then wait for the next.
            with self._cond:
                self._tiles.finish(run, False)
                self._tiles.clear()
            if isinstance(exc, ViewerError):
                self._emit(WorkerError("Cannot render the view", str(exc)))
                return
            raise
        with self._cond:
            generation, done, progress = self._tiles.finish(run, pixels is not None)
            display = self._display
        if generation is None or pixels is None:
            return
        shown = pixels if display is None else display.bgra(pixels)
        raw = None if display is None else pixels
        self._emit(
            TileResult(
                generation,
                run.content,
                self.kind,
                run.spec.key,
                shown,
                time.perf_counter() - t0,
                run.spec,
                raw,
            )
        )
        if progress is not None:
            self._emit(progress)
        if done is not None:
            self._emit(done)
