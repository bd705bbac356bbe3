"""What a person does in the window, found by driving the real app under X: the keys the README lists,
the status bar, the zoom field and Export's suggested folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from viewer import paths
from viewer.app.main_window import MainWindow, default_export_dir
from viewer.app.settings import AppSettings

from .test_window import make_window, open_and_encode


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
