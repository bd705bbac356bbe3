"""The Export dialog's print options (sharpening), and an export from the window that uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from viewer.app.settings import AppSettings
from viewer.engine.sharpen import Sharpen

from .helpers import make_tiny_engine
from .test_export_gui import dialog
from .test_window import TIMEOUT, make_window, open_and_encode


def test_sharpening_is_off_by_default_and_remembered(qtbot: Any, settings: AppSettings) -> None:
    dlg = dialog(qtbot, settings)
    plan = dlg.plan()
    assert plan is not None and plan.sharpen is None
    assert not dlg.sharpen_strength.isEnabled()
    dlg.sharpen.setCurrentIndex(dlg.sharpen.findData("matte"))
    dlg.sharpen_strength.setCurrentIndex(dlg.sharpen_strength.findData("high"))
    plan = dlg.plan()
    assert plan is not None and plan.sharpen == Sharpen("matte", "high")
    assert dlg.sharpen_strength.isEnabled()
    assert "radius 1.2 px, amount 1.5" in dlg.mag_label.text()
    dlg.dpi.setValue(600)
    assert "radius 2.4 px" in dlg.mag_label.text()
    dlg.save_choices()
    again = dialog(qtbot, settings)
    assert again.sharpen_choice() == Sharpen("matte", "high")


def test_an_export_from_the_window_is_sharpened(
    qtbot: Any, settings: AppSettings, photo_path: Path, tmp_path: Path
) -> None:
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    open_and_encode(qtbot, w, photo_path)
    dlg = dialog(qtbot, settings, region=(96.0, 80.0))
    dlg.set_custom(120, 100, "px")
    dlg.dpi.setValue(600)
    plain = dlg.plan()
    dlg.sharpen.setCurrentIndex(dlg.sharpen.findData("glossy"))
    sharp = dlg.plan()
    assert plain is not None and sharp is not None and sharp.sharpen is not None
    outs = []
    for plan, name in ((plain, "plain.png"), (sharp, "sharp.png")):
        done: list[str] = []
        w.controller.export_finished.connect(lambda _id, path, _s, done=done: done.append(path))
        w.start_export(plan, tmp_path / name)
        qtbot.waitUntil(lambda done=done: bool(done), timeout=TIMEOUT)
        outs.append(np.asarray(Image.open(tmp_path / name)).astype(int))
    assert outs[0].shape == outs[1].shape == (100, 120, 3)
    assert np.abs(outs[1] - outs[0]).mean() > 0.5
    w.close()
