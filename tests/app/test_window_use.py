"""What a person does in the window, found by driving the real app under X: the keys the README lists,
the status bar, the zoom field, Export's suggested folder, and Inspect mode and How it works from the menus.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, cast

import pytest
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtWidgets import QMenu

from viewer import paths
from viewer.app.canvas import moved_selection, selection_hit
from viewer.app.main_window import MainWindow, default_export_dir
from viewer.app.settings import AppSettings

from .test_window import TIMEOUT, drag, make_window, mouse, open_and_encode


@pytest.fixture
def window(qtbot: Any, settings: AppSettings, tiny_factory: Any, photo_path: Path) -> MainWindow:
    w = make_window(qtbot, settings, tiny_factory)
    open_and_encode(qtbot, w, photo_path)
    w.activateWindow()
    qtbot.waitActive(w)
    w.canvas.setFocus()
    return w


# -- keys ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "dx", "dy"),
    [(Qt.Key.Key_Right, 1, 0), (Qt.Key.Key_Left, -1, 0), (Qt.Key.Key_Down, 0, 1), (Qt.Key.Key_Up, 0, -1)],
    ids=["right", "left", "down", "up"],
)
def test_arrows_pan_an_eighth_and_shift_arrows_half_the_view(
    qtbot: Any, window: MainWindow, key: Qt.Key, dx: int, dy: int
) -> None:
    view, canvas = window.view, window.canvas
    view.zoom_to(16.0)
    view.centre_on(48.0, 40.0)  # the middle of the 96 x 80 photo: room to pan both ways
    assert view.viewport is not None
    z = view.viewport.zoom
    for mods, fraction in ((Qt.KeyboardModifier.NoModifier, 0.125), (Qt.KeyboardModifier.ShiftModifier, 0.5)):
        before = (view.viewport.cx, view.viewport.cy)
        qtbot.keyClick(canvas, key, mods)
        after = (view.viewport.cx, view.viewport.cy)
        assert after[0] - before[0] == pytest.approx(dx * canvas.width() * fraction / z)
        assert after[1] - before[1] == pytest.approx(dy * canvas.height() * fraction / z)


def test_zoom_keys(qtbot: Any, window: MainWindow) -> None:
    view, canvas = window.view, window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_1)
    assert view.viewport is not None
    assert view.viewport.zoom == 1.0
    for key, mods in (
        (Qt.Key.Key_Plus, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Equal, Qt.KeyboardModifier.NoModifier),
        (Qt.Key.Key_Plus, Qt.KeyboardModifier.ControlModifier),
    ):
        z = view.viewport.zoom
        qtbot.keyClick(canvas, key, mods)
        assert view.viewport.zoom == pytest.approx(z * 2**0.5), key
    for mods in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ControlModifier):
        z = view.viewport.zoom
        qtbot.keyClick(canvas, Qt.Key.Key_Minus, mods)
        assert view.viewport.zoom == pytest.approx(z / 2**0.5)
    qtbot.keyClick(canvas, Qt.Key.Key_0)
    assert view.fit_mode


def test_letter_keys_toggle_their_modes(qtbot: Any, window: MainWindow) -> None:
    canvas = window.canvas
    for key, action in (
        (Qt.Key.Key_C, window.act_compare),
        (Qt.Key.Key_R, window.act_select),
        (Qt.Key.Key_N, window.act_navigator),
        (Qt.Key.Key_I, window.act_inspect),
    ):
        was = action.isChecked()
        qtbot.keyClick(canvas, key)
        assert action.isChecked() != was, key
        qtbot.keyClick(canvas, key)
        assert action.isChecked() == was, key
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert window.view.selection == (0.0, 0.0, 96.0, 80.0)
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert window.view.selection is None


def test_selection_changes_undo_and_redo_with_the_standard_keys(
    qtbot: Any, window: MainWindow, tmp_path: Path, photo_path: Path
) -> None:
    view, canvas = window.view, window.canvas
    view.zoom_to(4.0)
    drag(canvas, QPointF(40, 40), QPointF(160, 120), Qt.KeyboardModifier.ShiftModifier)
    region = view.selection
    assert region is not None
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)  # the careful selection is gone...
    assert view.selection is None
    assert window.act_undo.text().replace("&", "") == "Undo Clear Selection"
    assert window.act_undo in window._walk(cast(QMenu, window.menuBar().actions()[1].menu()))  # Edit menu
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # ...and back
    assert view.selection == region
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.selection is None and not window.act_undo.isEnabled()
    mods = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    qtbot.keyClick(canvas, Qt.Key.Key_Z, mods)
    assert view.selection == region
    # A Shift+click that does not move clears the selection: one step, undone like the others.
    mouse(canvas, QEvent.Type.MouseButtonPress, QPointF(20, 20), Qt.KeyboardModifier.ShiftModifier)
    mouse(canvas, QEvent.Type.MouseButtonRelease, QPointF(20, 20), Qt.KeyboardModifier.ShiftModifier)
    assert view.selection is None
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.selection == region
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert view.selection == (0.0, 0.0, 96.0, 80.0)
    qtbot.keyClick(canvas, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)  # nothing to redo
    assert view.selection == (0.0, 0.0, 96.0, 80.0)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.selection == region
    # Esc with nothing selected, and Select All twice, add no steps.
    window.history.change(None, "Clear Selection")
    steps = window.history.stack.count()
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert window.history.stack.count() == steps + 1
    # Another photo starts a new history: its first undo cannot bring back the old photo's selection.
    other = tmp_path / "other.png"
    shutil.copy(photo_path, other)
    window.controller.open(other)
    qtbot.waitUntil(lambda: view.photo is not None and view.photo.path == other, timeout=TIMEOUT)
    assert view.selection is None and not window.act_undo.isEnabled() and not window.act_redo.isEnabled()
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.selection is None
    # A drag that began on the previous photo does not edit the next one.
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    rect = canvas.selection_rect()
    assert rect is not None
    mouse(canvas, QEvent.Type.MouseButtonPress, rect.center(), Qt.KeyboardModifier.ShiftModifier)
    window.controller.open(photo_path)
    qtbot.waitUntil(lambda: view.photo is not None and view.photo.path == photo_path, timeout=TIMEOUT)
    mouse(canvas, QEvent.Type.MouseMove, rect.center() + QPointF(30, 30), Qt.KeyboardModifier.ShiftModifier)
    mouse(canvas, QEvent.Type.MouseButtonRelease, rect.center() + QPointF(30, 30))
    assert view.selection is None and window.history.stack.count() == 0


def test_escape_clears_the_selection_first_then_leaves_full_screen(qtbot: Any, window: MainWindow) -> None:
    canvas = window.canvas
    window.act_fullscreen.trigger()
    qtbot.waitUntil(window.isFullScreen, timeout=2000)
    qtbot.keyClick(canvas, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert window.view.selection is None and window.isFullScreen()
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.isFullScreen(), timeout=2000)
    assert window.history.stack.count() == 2  # Select All and its clearing; leaving full screen is no step


def test_selection_hit_and_move_geometry() -> None:
    rect = QRectF(100, 100, 200, 100)
    assert selection_hit(rect, 200, 150) == "move"
    assert selection_hit(rect, 98, 150) == "l" and selection_hit(rect, 303, 150) == "r"
    assert selection_hit(rect, 200, 96) == "t" and selection_hit(rect, 200, 204) == "b"
    assert selection_hit(rect, 101, 101) == "tl" and selection_hit(rect, 299, 199) == "br"
    assert selection_hit(rect, 50, 150) is None and selection_hit(rect, 200, 210) is None
    assert selection_hit(QRectF(0, 0, 6, 6), 3, 3) == "move"  # a tiny selection can still be moved
    photo = (96, 80)
    assert moved_selection((10, 10, 20, 20), "move", 5, -3, photo) == (15, 7, 20, 20)
    assert moved_selection((10, 10, 20, 20), "move", 500, -500, photo) == (76, 0, 20, 20)  # stays on it
    assert moved_selection((10, 10, 20, 20), "r", 6, 99, photo) == (10, 10, 26, 20)
    assert moved_selection((10, 10, 20, 20), "tl", -4, 2, photo) == (6, 12, 24, 18)


def test_a_selection_is_moved_and_resized_by_dragging_it(qtbot: Any, window: MainWindow) -> None:
    view, canvas = window.view, window.canvas
    view.zoom_to(4.0)
    window.act_select.setChecked(True)
    drag(canvas, QPointF(40, 40), QPointF(160, 120))
    first = view.selection
    assert first is not None and view.viewport is not None
    z = view.viewport.zoom
    rect = canvas.selection_rect()
    assert rect is not None
    # Inside: the whole selection follows the pointer, its size kept.
    drag(canvas, rect.center(), rect.center() + QPointF(20, 8))
    moved = view.selection
    assert moved is not None
    assert moved == pytest.approx((first[0] + 20 / z, first[1] + 8 / z, first[2], first[3]))
    assert window.act_undo.text().replace("&", "") == "Undo Move Selection"
    # The right edge: only the width changes.
    rect = canvas.selection_rect()
    assert rect is not None
    drag(canvas, QPointF(rect.right(), rect.center().y()), QPointF(rect.right() + 40, rect.center().y() + 30))
    assert view.selection == pytest.approx((moved[0], moved[1], moved[2] + 40 / z, moved[3]))
    # Each step undoes on its own.
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.selection == pytest.approx(moved)
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert view.selection == pytest.approx(first)
    # Outside it, a drag still starts a new selection.
    drag(canvas, QPointF(5, 5), QPointF(25, 25))
    assert view.selection == pytest.approx((*view.viewport.screen_to_source(5, 5), 20 / z, 20 / z))
    window.act_select.setChecked(False)


# -- status bar and zoom field -------------------------------------------------------------------------------
def test_progress_bar_never_covers_a_status_message(window: MainWindow) -> None:
    window._render_state = lambda: ("Refining 1/4 tiles…", True, 1, 4)  # type: ignore[method-assign]
    bar = window.statusBar()
    bar.showMessage("Exported /tmp/x.png in 1.0 s")
    window._refresh_status()  # a tile arrives while the message is shown
    assert not window.progress.isVisible()
    bar.clearMessage()
    assert window.progress.isVisible()  # back once the message has gone
    window._render_state = lambda: ("Refined", False, 0, 0)  # type: ignore[method-assign]
    bar.showMessage("again")
    window._refresh_status()
    bar.clearMessage()
    assert not window.progress.isVisible()


def test_a_rejected_zoom_entry_shows_the_zoom_again(qtbot: Any, window: MainWindow) -> None:
    edit = window.zoom_box.lineEdit()
    assert edit is not None
    edit.setFocus()
    qtbot.waitUntil(edit.hasFocus, timeout=2000)
    edit.setText("abc")
    edit.returnPressed.emit()
    assert window.zoom_box.currentText() == "Fit"
    assert "Not a zoom" in window.statusBar().currentMessage()
    assert window.canvas.hasFocus()


# -- export -----------------------------------------------------------------------------------------------------
def test_export_suggests_the_photos_folder_but_never_the_apps_resources(tmp_path: Path) -> None:
    photo = tmp_path / "old.jpg"
    assert default_export_dir(photo) == tmp_path
    suggested = default_export_dir(paths.sample_photo())
    assert suggested.resolve() != paths.resources_dir().resolve()
    assert suggested.is_dir()


# -- Inspect mode and How it works ------------------------------------------------------------------------------
def test_inspect_mode_from_the_window_probes_the_pixel_under_the_pointer(
    qtbot: Any, window: MainWindow
) -> None:
    assert window.act_inspect in window._walk(cast(QMenu, window.menuBar().actions()[2].menu()))  # View menu
    window.act_inspect.trigger()
    assert window.inspect.active and window.inspect_dock.isVisible()
    qtbot.waitUntil(
        lambda: window.inspect_dock.width() >= window.inspect_panel.sizeHint().width(), timeout=2000
    )
    window.view.zoom_to(8.0)
    qtbot.waitUntil(lambda: window.view.is_settled("liif"), timeout=TIMEOUT)
    pos = QPointF(101.0, 77.0)
    mouse(window.canvas, QEvent.Type.MouseMove, pos)
    panel = window.inspect_panel
    qtbot.waitUntil(lambda: panel.probe is not None, timeout=TIMEOUT)
    assert window.view.viewport is not None
    sx, sy = window.view.viewport.screen_to_source(pos.x(), pos.y())
    assert panel.probe is not None
    assert panel.probe.x == pytest.approx(sx, abs=1 / 8) and panel.probe.y == pytest.approx(sy, abs=1 / 8)
    assert panel.table.rowCount() == 4 and "source pixel" in panel.blend_label.text()
    assert panel.table.horizontalHeader().length() <= panel.table.viewport().width()  # no scrolling needed

    combo = panel.layer_combo
    combo.setCurrentIndex(combo.findData("pca"))
    qtbot.waitUntil(lambda: window.inspect.feature_pixels("pca") is not None, timeout=TIMEOUT)
    combo.setCurrentIndex(combo.findData("difference"))
    qtbot.waitUntil(lambda: "up to date" in panel.status_label.text(), timeout=TIMEOUT)

    window.inspect_dock.close()  # the dock's close button ends Inspect mode
    assert not window.act_inspect.isChecked() and not window.inspect.active


def test_how_it_works_is_illustrated_with_the_open_photo(qtbot: Any, window: MainWindow) -> None:
    window.act_how.trigger()
    dialog = window.inspector.how
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(
        lambda: (
            dialog.illustrations is not None
            and dialog.illustrations.pca is not None
            and dialog.illustrations.probe is not None
        ),
        timeout=TIMEOUT,
    )
    assert set(dialog.images) == {"lattice", "pca", "probe"}
    dialog.close()


def test_the_confidence_cue_shows_its_whole_text_when_there_is_room(qapp: Any) -> None:
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QImage, QPainter

    from viewer.app import overlays as ov

    class Spy(QPainter):
        def __init__(self, device: QImage) -> None:
            super().__init__(device)
            self.texts: list[str] = []

        def drawText(self, *args: Any) -> None:  # type: ignore[override]
            self.texts.append(args[-1])
            super().drawText(*args)

    image = QImage(1600, 200, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(0, 0, 0))
    for mag in (4.5, 6.0, 16.0, 32.0, 100.0, 1234.5):
        painter = Spy(image)
        ov.paint_confidence_cue(painter, QRectF(0, 0, 1600, 200), mag)
        narrow = Spy(image)
        ov.paint_confidence_cue(narrow, QRectF(0, 0, 200, 200), mag)
        painter.end()
        narrow.end()
        assert painter.texts == [ov.cue_text(mag)]
        assert narrow.texts[0].endswith("…")


def test_the_probe_table_fits_the_panel_at_its_size_hint(qtbot: Any) -> None:
    from viewer.app.inspect_panel import InspectPanel

    from .inspect_data import plain_probe

    panel = InspectPanel()
    qtbot.addWidget(panel)
    panel.resize(panel.sizeHint())  # the dock is sized from the hint
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_probe(plain_probe(4252.484, 3251.641), (19, 18, 9))  # four-digit codes
    qtbot.wait(10)
    table = panel.table
    assert table.horizontalHeader().length() <= table.viewport().width()


def test_how_it_works_names_the_point_the_probe_computed() -> None:
    from viewer.app.how_it_works import Illustrations, page_html

    from .helpers import textured
    from .inspect_data import plain_probe

    ill = Illustrations("old.jpg", textured(40, 30), (20.0, 15.0), None, plain_probe(20.0625, 15.0625))
    assert "How the pixel at (20.06, 15.06) of old.jpg" in page_html(ill)


# -- quitting --------------------------------------------------------------------------------------------------
QUIT_WHILE_ENCODING = """
import sys, threading, time
import viewer.app.worker as worker
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, sys.argv[1])
from helpers import make_tiny_engine

started = threading.Event()

class SlowEncode:
    '''The tiny engine, whose tile encodes compute in torch for a while without a cancellation point.'''

    def __init__(self):
        self._engine = make_tiny_engine()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def open_store(self, pixels, **kwargs):
        store = self._engine.open_store(pixels, **kwargs)
        encode = store._encode

        def slow(*args):
            import torch
            started.set()
            a = torch.randn(800, 800)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 30:
                a = torch.tanh(a @ a)
            return encode(*args)

        store._encode = slow
        return store

worker.default_engine_factory = lambda config: SlowEncode()
from viewer.app.main import make_application, run_gui

app = make_application()

def close_once_encoding():
    if started.is_set():
        w = next(w for w in QApplication.topLevelWidgets() if w.objectName() == 'main-window')
        QTimer.singleShot(300, w.close)
    else:
        QTimer.singleShot(50, close_once_encoding)

QTimer.singleShot(50, close_once_encoding)
sys.exit(run_gui(None))
"""


def test_quitting_while_the_photo_is_encoded_exits_cleanly(tmp_path: Path) -> None:
    """Found with `make run`: Ctrl+Q during the first encode aborted the process (status 134) in torch's
    threads at interpreter exit, and make reported an error."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path),
        "HOME": str(tmp_path),
        "LIIF_VIEWER_CACHE": str(tmp_path / "cache"),  # empty: the tiles must really be encoded
    }
    out = subprocess.run(
        [sys.executable, "-c", QUIT_WHILE_ENCODING, str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "terminate called" not in out.stderr
