"""The Export dialog's print options (sharpening), and an export from the window that uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from viewer.app.settings import AppSettings
from viewer.engine.printsize import Length
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


def test_a_border_or_a_bleed_from_the_dialog(qtbot: Any, settings: AppSettings) -> None:
    dlg = dialog(qtbot, settings)  # a portrait 600 x 900 region
    dlg.select_preset("4x6in")
    plan = dlg.plan()
    assert plan is not None and plan.pad == (0, 0, 0, 0) and not dlg.margin_mm.isEnabled()
    dlg.margin.setCurrentIndex(dlg.margin.findData("border"))
    assert dlg.margin_mm.value() == 5.0 and dlg.margin_mm.isEnabled()
    plan = dlg.plan()
    assert plan is not None and dlg.pixel_size() == (1200, 1800)  # the page
    assert (plan.out_w, plan.out_h, plan.border) == (1200 - 118, 1800 - 118, 59)
    assert "inside a 59 px white border" in dlg.pixels_label.text()
    dlg.fit.setCurrentIndex(dlg.fit.findData("fit"))  # fit inside the bordered page: still the page
    assert dlg.pixel_size() == (1200, 1800)
    dlg.margin.setCurrentIndex(dlg.margin.findData("bleed"))
    assert dlg.margin_mm.value() == 3.0
    dlg.fit.setCurrentIndex(dlg.fit.findData("crop"))
    assert dlg.pixel_size() == (1270, 1870) and "35 px bleed" in dlg.pixels_label.text()
    dlg.margin_mm.setValue(200)  # more border than page is an error, not a crash
    dlg.margin.setCurrentIndex(dlg.margin.findData("border"))
    dlg.margin_mm.setValue(80)
    assert dlg.plan() is None and "no room" in dlg.error_label.text()
    assert not dlg.export_button.isEnabled()
    dlg.margin_mm.setValue(4)
    dlg.save_choices()
    again = dialog(qtbot, settings)
    assert again.margin_choice() == {"border": Length(4, "mm")}


def test_a_bordered_export_from_the_window(
    qtbot: Any, settings: AppSettings, photo_path: Path, tmp_path: Path
) -> None:
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    open_and_encode(qtbot, w, photo_path)
    dlg = dialog(qtbot, settings, region=(96.0, 80.0))
    dlg.set_custom(1.0, 0.8, "in")
    dlg.dpi.setValue(150)
    dlg.margin.setCurrentIndex(dlg.margin.findData("border"))
    dlg.margin_mm.setValue(2.54)  # 15 px at 150 DPI
    plan = dlg.plan()
    assert plan is not None and plan.pad == (15, 15, 15, 15)
    done: list[str] = []
    w.controller.export_finished.connect(lambda _id, path, _s: done.append(path))
    w.start_export(plan, tmp_path / "framed.tif")
    qtbot.waitUntil(lambda: bool(done), timeout=TIMEOUT)
    got = np.asarray(Image.open(tmp_path / "framed.tif"))
    assert got.shape == (120, 150, 3)
    assert np.all(got[:15] == 255) and np.all(got[:, -15:] == 255) and got[15:105, 15:135].mean() < 230
    w.close()
