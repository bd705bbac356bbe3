"""The Export dialog (sizes, orientation, fit, warnings) and the background export run (progress, Cancel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QPushButton

from viewer.app import main_window as mw
from viewer.app.export_dialog import ExportDialog
from viewer.app.main_window import MainWindow
from viewer.app.settings import AppSettings
from viewer.engine.printsize import PixelSize

from .helpers import make_tiny_engine
from .test_window import TIMEOUT, make_window, mouse, open_and_encode

PORTRAIT = (600.0, 900.0)

# Pixel sizes at 300 DPI, portrait: inches x 300, and ISO A sizes from millimetres (rounded half up).
PRESET_PIXELS = {
    "4x6in": (1200, 1800),
    "5x7in": (1500, 2100),
    "8x10in": (2400, 3000),
    "11x14in": (3300, 4200),
    "16x20in": (4800, 6000),
    "24x36in": (7200, 10800),
    "A4": (2480, 3508),
    "A3": (3508, 4961),
    "A2": (4961, 7016),
}


def dialog(
    qtbot: Any, settings: AppSettings, region: tuple[float, float] = PORTRAIT, **regions: Any
) -> ExportDialog:
    w, h = region
    rects = {"image": (0.0, 0.0, w, h), "view": regions.get("view"), "selection": regions.get("selection")}
    dlg = ExportDialog((int(w), int(h)), rects, settings)
    qtbot.addWidget(dlg)
    dlg.fit.setCurrentIndex(dlg.fit.findData("crop"))
    dlg.orientation.setCurrentIndex(dlg.orientation.findData("auto"))
    dlg.dpi.setValue(300)
    return dlg


@pytest.mark.parametrize(("preset", "pixels"), PRESET_PIXELS.items())
def test_each_preset_at_300_dpi(
    qtbot: Any, settings: AppSettings, preset: str, pixels: tuple[int, int]
) -> None:
    dlg = dialog(qtbot, settings)
    dlg.select_preset(preset)
    assert dlg.pixel_size() == pixels
    assert f"{pixels[0]} × {pixels[1]} px" in dlg.pixels_label.text()
    dlg.orientation.setCurrentIndex(dlg.orientation.findData("landscape"))
    assert dlg.pixel_size() == (pixels[1], pixels[0])


def test_a_landscape_region_turns_the_print(qtbot: Any, settings: AppSettings) -> None:
    dlg = dialog(qtbot, settings, region=(900.0, 600.0))
    dlg.select_preset("8x10in")
    assert dlg.pixel_size() == (3000, 2400)
    dlg.orientation.setCurrentIndex(dlg.orientation.findData("portrait"))
    assert dlg.pixel_size() == (2400, 3000)


def test_custom_sizes_in_cm_in_and_px(qtbot: Any, settings: AppSettings) -> None:
    dlg = dialog(qtbot, settings)
    dlg.set_custom(20, 25, "cm")
    assert dlg.pixel_size() == (2362, 2953)
    dlg.set_custom(2, 3, "in")
    dlg.dpi.setValue(150)
    assert dlg.pixel_size() == (300, 450)
    dlg.set_custom(1000, 1500, "px")
    assert dlg.pixel_size() == (1000, 1500)
    assert dlg.size_label() == "1000x1500px"


def test_fit_inside_and_live_magnification_with_warning(qtbot: Any, settings: AppSettings) -> None:
    dlg = dialog(qtbot, settings)
    dlg.select_preset("8x10in")
    assert "×4.00" in dlg.mag_label.text() and dlg.warning_label.text() == ""  # crop: 600 px wide -> 2400
    dlg.fit.setCurrentIndex(dlg.fit.findData("fit"))
    assert dlg.pixel_size() == (2000, 3000)
    dlg.select_preset("11x14in")
    assert "inferred" in dlg.warning_label.text()  # x4.67: beyond the x4 the model was trained for
    plan = dlg.plan()
    assert plan is not None and plan.magnification > 4


def test_an_impossible_size_disables_export(qtbot: Any, settings: AppSettings) -> None:
    dlg = dialog(qtbot, settings)
    dlg.set_custom(300, 300, "in")
    assert dlg.pixel_size() is None and "megapixels" in dlg.error_label.text()
    assert not dlg.export_button.isEnabled()
    dlg.set_custom(4, 6, "in")
    assert dlg.export_button.isEnabled()


def test_regions_and_choices_are_remembered(qtbot: Any, settings: AppSettings) -> None:
    dlg = dialog(qtbot, settings, view=(10.0, 20.0, 300.0, 200.0), selection=(0.0, 0.0, 60.0, 90.0))
    assert dlg.region_kind() == "selection"  # a selection is the default region when there is one
    dlg.set_region("view")
    dlg.select_preset("A4")
    assert dlg.pixel_size() == (3508, 2480)  # landscape view region -> landscape A4
    dlg.format.setCurrentText("JPEG")
    assert dlg.quality.isEnabled()
    dlg.save_choices()
    again = dialog(qtbot, settings)
    assert again.preset.currentData() == "A4" and again.format.currentText() == "JPEG"


# -- the export run ---------------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot: Any, settings: AppSettings, tiny_factory: Any, photo_path: Path) -> MainWindow:
    w = make_window(qtbot, settings, tiny_factory)
    open_and_encode(qtbot, w, photo_path)
    return w


def grey_levels(w: int, h: int) -> list[QPixmap]:
    """A flat light-grey photo's preview pyramid: full size, then half."""
    levels = []
    for f in (1, 2):
        pm = QPixmap(w // f, h // f)
        pm.fill(QColor(200, 200, 200))
        levels.append(pm)
    return levels


def preview_grey(dlg: ExportDialog, x: float, y: float) -> int:
    """The preview's green value at widget point (x, y)."""
    assert dlg.crop_preview is not None
    img = dlg.crop_preview.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    dpr = img.devicePixelRatio()
    return QColor(img.pixel(int(x * dpr), int(y * dpr))).green()


def test_the_preview_dims_what_crop_to_fill_cuts(qtbot: Any, settings: AppSettings) -> None:
    w, h = PORTRAIT
    rects = {"image": (0.0, 0.0, w, h), "view": None, "selection": (100.0, 100.0, 300.0, 300.0)}
    dlg = ExportDialog((int(w), int(h)), rects, settings, preview=grey_levels(int(w), int(h)))
    qtbot.addWidget(dlg)
    dlg.fit.setCurrentIndex(dlg.fit.findData("crop"))
    dlg.orientation.setCurrentIndex(dlg.orientation.findData("auto"))
    dlg.select_preset("8x10in")
    dlg.show()
    qtbot.waitExposed(dlg)
    pv = dlg.crop_preview
    assert pv is not None
    # A square selection on a 4:5 print: a fifth of its width goes, half on each side.
    assert "trims 20% of the region's width" in dlg.crop_label.text()
    region, kept = pv.region_target(), pv.kept_target()
    assert region is not None and kept is not None
    assert kept.width() / region.width() == pytest.approx(0.8, abs=0.01)
    assert kept.left() - region.left() == pytest.approx(region.right() - kept.right(), abs=0.5)
    inside = preview_grey(dlg, kept.center().x(), kept.center().y())
    cut = preview_grey(dlg, (region.left() + kept.left()) / 2, kept.center().y())
    assert inside >= 195 and cut <= 100, (inside, cut)
    # Dragging the preview chooses the part kept; the plan, which the export renders, follows.
    centred = dlg.plan()
    assert centred is not None and centred.rect.x == pytest.approx(130)
    press = kept.center()
    mouse(pv, QEvent.Type.MouseButtonPress, press)
    mouse(pv, QEvent.Type.MouseMove, press - QPointF(15, 0))
    mouse(pv, QEvent.Type.MouseMove, press - QPointF(400, 0))  # far past the edge: stops at it
    mouse(pv, QEvent.Type.MouseButtonRelease, press - QPointF(400, 0))
    moved = pv.kept_target()
    assert moved is not None and moved.left() == pytest.approx(region.left(), abs=0.5)
    plan = dlg.plan()
    assert plan is not None and plan.rect == pytest.approx((100, 100, 240, 300))
    assert preview_grey(dlg, region.right() - 3, kept.center().y()) <= 100  # now the right side is cut
    dlg.set_anchor(0.5, 0.5)
    # The whole photo (2:3) on the same print loses top and bottom instead.
    dlg.set_region("image")
    assert "trims 17% of its height" in dlg.crop_label.text()
    region, kept = pv.region_target(), pv.kept_target()
    assert region is not None and kept is not None
    assert preview_grey(dlg, kept.center().x(), (region.top() + kept.top()) / 2) <= 100
    # Fit inside keeps it all: nothing is dimmed.
    dlg.fit.setCurrentIndex(dlg.fit.findData("fit"))
    assert dlg.crop_label.text() == "The whole region is exported."
    region = pv.region_target()
    assert region is not None
    assert preview_grey(dlg, region.center().x(), region.top() + 3) >= 195
    # An impossible size shows no plan and no preview.
    dlg.set_custom(0.01, 0.01, "in")
    dlg.dpi.setValue(1)
    assert dlg.plan() is None and dlg.crop_label.text() == "" and pv.region_target() is None


def test_the_preview_draws_a_small_selection_from_full_resolution(qtbot: Any, settings: AppSettings) -> None:
    w, h = PORTRAIT
    levels = grey_levels(int(w), int(h))
    dlg = ExportDialog((int(w), int(h)), {"image": (0.0, 0.0, w, h)}, settings, preview=levels)
    qtbot.addWidget(dlg)
    pv = dlg.crop_preview
    assert pv is not None
    assert pv.level_for(0.2) is levels[1]  # the whole photo in a small box: the half-size level is enough
    assert pv.level_for(0.9) is levels[0]  # a face enlarged in the box: full resolution
    assert pv.level_for(3.0) is levels[0]


def test_export_through_the_dialog_equals_the_engine_export(
    qtbot: Any, window: MainWindow, tmp_path: Path, photo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out" / "print.png"
    out.parent.mkdir()

    def fake_exec(self: ExportDialog) -> int:
        self.set_custom(160, 200, "px")
        self.fit.setCurrentIndex(self.fit.findData("fit"))
        self.format.setCurrentText("PNG")
        self.accept()  # Export…: asks for the file name (the patched save dialog), then closes
        return self.result()

    monkeypatch.setattr(ExportDialog, "exec", fake_exec)
    monkeypatch.setattr(mw.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    finished: list[str] = []
    window.controller.export_finished.connect(lambda i, p, s: finished.append(p))
    window.export_dialog()
    assert window.exporting
    qtbot.waitUntil(lambda: bool(finished), timeout=TIMEOUT)
    assert not window.exporting and window.act_export.isEnabled()
    got = np.asarray(Image.open(out))
    assert got.shape == (133, 160, 3)  # 96 x 80 fitted inside 160 x 200

    # The same plan through the engine's export directly (the command line's code path).
    from viewer.engine.export import plan_export, run_export
    from viewer.engine.imageio import load_image

    engine = make_tiny_engine()
    loaded = load_image(photo_path)
    plan = plan_export(96, 80, None, PixelSize(160, 200), 300, "fit")
    direct = tmp_path / "direct.png"
    run_export(engine, engine.encode(loaded.rgb), loaded, plan, direct)
    np.testing.assert_array_equal(got, np.asarray(Image.open(direct)))


def test_cancel_leaves_no_file_and_the_window_stays_usable(
    qtbot: Any, window: MainWindow, tmp_path: Path
) -> None:
    from viewer.engine.export import plan_export

    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "huge.png"
    plan = plan_export(96, 80, None, PixelSize(4000, 4000), 300, "crop")
    progress: list[int] = []
    cancelled: list[int] = []
    window.controller.export_progress.connect(lambda i, d, t: progress.append(d))
    window.controller.export_cancelled.connect(cancelled.append)
    window.start_export(plan, out)
    qtbot.waitUntil(lambda: bool(progress) and progress[-1] > 0, timeout=TIMEOUT)
    window.view.zoom_by(1.5)  # the window still responds while the export runs
    progress_dialog = window.export_flow.progress_dialog
    assert progress_dialog is not None and progress_dialog.isVisible()
    button = progress_dialog.findChild(QPushButton)
    assert button is not None and button.text() == "Cancel"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(cancelled), timeout=TIMEOUT)
    assert window.controller.render_worker.wait_exports(10)
    assert not out.exists()
    assert list(folder.iterdir()) == []  # no temporary file either
    assert not window.exporting
