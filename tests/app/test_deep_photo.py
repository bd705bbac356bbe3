"""A 48-bit scan in the window: the navigator says 16-bit, and an export to TIFF keeps 16 bits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from viewer.app.settings import AppSettings
from viewer.engine.export import plan_export
from viewer.engine.printsize import PixelSize

from .helpers import make_tiny_engine, textured
from .test_window import TIMEOUT, make_window, open_and_encode


def test_a_48_bit_scan_says_16_bit_and_exports_16_bits(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    rgb16 = textured(40, 30).astype(np.uint16) * 257 + np.uint16(100)
    src = tmp_path / "scan.tif"
    tifffile.imwrite(src, rgb16, photometric="rgb")
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    w.nav_dock.show()
    open_and_encode(qtbot, w, src)
    assert "16-bit" in w.nav_panel.info.text()
    done: list[str] = []
    w.controller.export_finished.connect(lambda _id, path, _s: done.append(path))
    w.start_export(plan_export(40, 30, None, PixelSize(60, 45), 300, "stretch"), tmp_path / "out.tif")
    qtbot.waitUntil(lambda: bool(done), timeout=TIMEOUT)
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.uint16 and out.shape == (45, 60, 3)
    assert np.mean(out % 257 != 0) > 0.5  # real 16-bit values, not 8-bit ones widened
    w.close()
