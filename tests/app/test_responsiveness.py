"""The GUI thread stays responsive while a refine and an export run (tiny model, CPU)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer

from viewer.app.settings import AppSettings
from viewer.engine.export import plan_export
from viewer.engine.printsize import PixelSize

from .test_window import TIMEOUT, make_window, open_and_encode

TICK_MS = 5
MEASURE_MS = 4000
BLOCKED_MS = 100.0
"""A p99 gap this long means the GUI thread was held up (here: about 10 ms p99, 18 ms at worst)."""


def test_event_loop_latency_during_refine_and_export(
    qtbot: Any, settings: AppSettings, tiny_factory: Any, big_photo_path: Path, tmp_path: Path
) -> None:
    w = make_window(qtbot, settings, tiny_factory)
    w.canvas.setFixedSize(640, 480)
    open_and_encode(qtbot, w, big_photo_path)

    export_progress: list[int] = []
    cancelled: list[int] = []
    finished: list[int] = []
    applied: list[object] = []
    w.controller.export_progress.connect(lambda i, d, t: export_progress.append(d))
    w.controller.export_cancelled.connect(cancelled.append)
    w.controller.export_finished.connect(lambda i, path, secs: finished.append(i))
    w.view.tile_applied.connect(lambda *a: applied.append(a))

    out = tmp_path / "big-export.png"
    # 48 MP: long enough to outlast the measurement and be cancelled (12 MP could finish within it)
    w.start_export(plan_export(400, 300, None, PixelSize(8000, 6000), 300, "crop"), out)
    w.view.zoom_to(3.0)
    w.view.flush()

    intervals: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        intervals.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)
    timer.timeout.connect(tick)
    # Interaction meanwhile: small pans repaint from the cache (within the prefetch ring: no new request).
    wiggle = QTimer()
    wiggle.setInterval(100)
    sign = [1.0]

    def pan() -> None:
        sign[0] = -sign[0]
        w.view.pan_by(4 * sign[0], 0)
        w.canvas.repaint()

    wiggle.timeout.connect(pan)
    last[0] = time.perf_counter()
    timer.start()
    wiggle.start()
    qtbot.wait(MEASURE_MS)
    timer.stop()
    wiggle.stop()

    assert not finished, "the export finished before the measurement ended; make it bigger"
    w.cancel_export()
    qtbot.waitUntil(lambda: bool(cancelled or finished), timeout=TIMEOUT)
    assert cancelled and not finished
    assert not out.exists()
    assert applied, "no tile was refined during the measurement"
    assert export_progress, "the export did not progress during the measurement"
    lat = np.array(intervals[1:]) * 1000
    p50, p99, worst = np.percentile(lat, 50), np.percentile(lat, 99), lat.max()
    print(f"event loop: {len(lat)} ticks, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms")
    assert len(lat) > MEASURE_MS / 50
    # A guard against blocking, not a speed goal (`liif-viewer bench --gui` measures the latency): work on
    # the GUI thread stalls it for hundreds of ms, while a loaded CI machine stretches a 5 ms tick to tens.
    assert p99 < BLOCKED_MS
