"""Compare mode's "Source pixels": the right side shows the photo's own pixels (nearest neighbour)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from viewer.app.main_window import MainWindow
from viewer.app.settings import AppSettings

from .helpers import make_tiny_engine
from .test_window import TIMEOUT, grab_rgb, make_window, open_and_encode

ROWS = slice(40, 230)
COLS = slice(172, 318)
"""Part of the right side clear of the divider, its handle and the labels."""


def nearest_expected(photo: Path, w: MainWindow) -> np.ndarray:
    """The canvas's device pixels as the photo pixels under their centres."""
    vp = w.view.viewport
    assert vp is not None
    src = np.asarray(Image.open(photo).convert("RGB"))
    zd = vp.device_zoom
    ox, oy = vp.origin
    dw, dh = vp.device_size
    cols = np.clip(np.floor((ox + np.arange(dw) + 0.5) / zd).astype(int), 0, src.shape[1] - 1)
    rows = np.clip(np.floor((oy + np.arange(dh) + 0.5) / zd).astype(int), 0, src.shape[0] - 1)
    return src[rows][:, cols]


def _settle(qtbot: Any, w: MainWindow) -> None:
    w.view.flush()
    qtbot.waitUntil(lambda: w.view.is_settled("bicubic") and w.view.is_settled("liif"), timeout=TIMEOUT)
    qtbot.wait(50)


def test_source_pixels_show_the_photo_unchanged_beside_liif(
    qtbot: Any, settings: AppSettings, photo_path: Path
) -> None:
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    open_and_encode(qtbot, w, photo_path)
    w.view.zoom_to(4.0)
    qtbot.keyClick(w.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    assert w.act_compare.isChecked() and w.view.compare_method == "nearest"
    assert w.act_compare.text().replace("&", "") == "Compare with Source Pixels"
    _settle(qtbot, w)
    want = nearest_expected(photo_path, w)
    got = grab_rgb(w.canvas)
    assert np.array_equal(got[ROWS, COLS], want[ROWS, COLS])

    w.act_compare_methods["bicubic"].trigger()  # back to bicubic: the same place looks smoother
    assert w.view.compare_method == "bicubic" and settings.compare_method() == "bicubic"
    _settle(qtbot, w)
    smooth = grab_rgb(w.canvas)[ROWS, COLS].astype(int)
    assert np.abs(smooth - want[ROWS, COLS]).mean() > 3
    w.close()


def test_the_choice_is_remembered(qtbot: Any, settings: AppSettings, photo_path: Path) -> None:
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    open_and_encode(qtbot, w, photo_path)
    w.act_compare_methods["nearest"].trigger()
    w.close()
    again = make_window(qtbot, settings, lambda c: make_tiny_engine())
    assert again.act_compare_methods["nearest"].isChecked() and again.act_compare.isChecked()
    assert again.view.compare_method == "nearest"
    assert again.controller.bicubic_worker.method == "nearest"
    again.close()
