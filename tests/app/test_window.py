"""The real window, offscreen, with a tiny model on the CPU: pipeline, interaction, errors, settings."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QMenu, QWidget

from viewer.app.main_window import MainWindow, parse_zoom_text
from viewer.app.messages import EngineConfig, TileResult
from viewer.app.planning import TileKey
from viewer.app.settings import AppSettings
from viewer.errors import WeightsMissingError

from .helpers import Gated, make_tiny_engine

CANVAS = (320, 240)
TIMEOUT = 60_000


def make_window(
    qtbot: Any, settings: AppSettings, factory: Callable[[EngineConfig], Any] | None
) -> MainWindow:
    w = MainWindow(settings, engine_factory=factory)
    qtbot.addWidget(w)
    w.nav_dock.hide()
    w.canvas.setFixedSize(*CANVAS)
    w.show()
    qtbot.waitExposed(w)
    return w


def open_and_encode(qtbot: Any, w: MainWindow, photo: Path) -> None:
    w.start(photo)
    qtbot.waitUntil(
        lambda: w.view.photo is not None and w.controller.encode.seconds is not None, timeout=TIMEOUT
    )


@pytest.fixture
def window(qtbot: Any, settings: AppSettings, tiny_factory: Any, photo_path: Path) -> MainWindow:
    w = make_window(qtbot, settings, tiny_factory)
    open_and_encode(qtbot, w, photo_path)
    return w


def grab_rgb(widget: QWidget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8).reshape(h, bpl)[:, : w * 3].reshape(h, w, 3).copy()


def reference_render(photo: Path, w: MainWindow) -> np.ndarray:
    """What the engine renders for the window's viewport, quantised like the canvas."""
    from viewer.engine.imageio import load_image
    from viewer.engine.render import SourceRect

    vp = w.view.viewport
    assert vp is not None
    engine = make_tiny_engine()
    fm = engine.encode(load_image(photo).rgb)
    dw, dh = vp.device_size
    ref = engine.render(fm, SourceRect(*vp.source_rect()), dw, dh)
    return np.rint(np.clip(ref, 0, 1) * 255).astype(np.uint8)


def wheel(widget: QWidget, pos: QPointF, notches: float) -> None:
    ev = QWheelEvent(
        pos, widget.mapToGlobal(pos), QPoint(), QPoint(0, round(120 * notches)),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(widget, ev)


def mouse(
    widget: QWidget,
    kind: QEvent.Type,
    pos: QPointF,
    mods: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
) -> None:
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    held = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else Qt.MouseButton.LeftButton
    ev = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, held, mods)
    QApplication.sendEvent(widget, ev)


def drag(
    widget: QWidget, a: QPointF, b: QPointF, mods: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier
) -> None:
    mouse(widget, QEvent.Type.MouseButtonPress, a, mods)
    for t in (0.25, 0.5, 0.75, 1.0):
        mouse(widget, QEvent.Type.MouseMove, a + (b - a) * t, mods)
    mouse(widget, QEvent.Type.MouseButtonRelease, b, mods)


# -- the pipeline -----------------------------------------------------------------------------------------
def test_stale_results_are_never_painted(qtbot: Any, settings: AppSettings, photo_path: Path) -> None:
    gate = threading.Event()
    gate.set()
    gated = Gated(make_tiny_engine(), gate)
    w = make_window(qtbot, settings, lambda c: gated)
    open_and_encode(qtbot, w, photo_path)
    qtbot.waitUntil(w.view.is_settled, timeout=TIMEOUT)

    gate.clear()
    gated.entered.clear()
    applied: list[tuple[str, TileKey, int]] = []
    w.view.tile_applied.connect(lambda kind, key, gen: applied.append((kind, key, gen)))
    w.view.zoom_to(4.0)
    w.view.flush()
    assert w.view.viewport is not None
    zoom_a = w.view.viewport.device_zoom
    assert gated.entered.wait(30)  # the worker is inside a render of the first viewport, held
    w.view.zoom_to(6.0)
    w.view.flush()
    zoom_b, gen_b = w.view.viewport.device_zoom, w.view.current_generation()
    gate.set()
    qtbot.waitUntil(w.view.is_settled, timeout=TIMEOUT)
    qtbot.wait(100)
    assert applied, "the second viewport was never refined"
    assert all(key.zoom == zoom_b and gen == gen_b for _, key, gen in applied)
    assert not any(key.zoom == zoom_a for _, key in w.view.cached_keys())


def test_a_result_for_an_old_generation_is_dropped_on_the_gui_thread(window: MainWindow) -> None:
    view = window.view
    view.zoom_to(3.0)
    view.flush()
    old = view.current_generation()
    view.zoom_to(5.0)
    view.flush()
    assert view.viewport is not None
    key = TileKey(view.viewport.device_zoom, 0, 0)
    pixels = np.zeros((8, 8, 4), np.uint8)
    assert view.photo is not None
    stale = TileResult(old, view.photo.content, "liif", key, pixels, 0.0)
    assert not view.on_tile(stale)
    assert ("liif", key) not in view.cache or view.cache.peek(("liif", key)) is not None


def test_settled_canvas_pixels_equal_the_engine_render(
    qtbot: Any, window: MainWindow, photo_path: Path
) -> None:
    view = window.view
    view.zoom_to(5.3)
    view.pan_by(37.0, -11.0)
    view.flush()
    qtbot.waitUntil(view.is_settled, timeout=TIMEOUT)
    vp = view.viewport
    assert vp is not None and vp.refinable
    x, y, sw, sh = vp.source_rect()
    assert x >= 0 and y >= 0 and x + sw <= 96 and y + sh <= 80  # the canvas is all photo
    got = grab_rgb(window.canvas)
    ref = reference_render(photo_path, window)
    assert got.shape == ref.shape
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_edge_tiles_show_their_visible_part_then_complete_unchanged(
    qtbot: Any, settings: AppSettings, photo_path: Path
) -> None:
    """Settled with edge tiles rendered only where the canvas shows them; when their rest arrives, the
    canvas does not change by a single value. (Each render takes 50 ms, so the settled state is seen.)"""

    class Slow:
        def __init__(self, engine: Any) -> None:
            self._engine = engine

        def __getattr__(self, name: str) -> Any:
            return getattr(self._engine, name)

        def render(self, *args: Any, **kwargs: Any) -> np.ndarray:
            out = self._engine.render(*args, **kwargs)
            threading.Event().wait(0.05)
            return out

    window = make_window(qtbot, settings, lambda c: Slow(make_tiny_engine()))
    open_and_encode(qtbot, window, photo_path)
    view = window.view
    view.zoom_to(5.3)
    view.pan_by(37.0, -11.0)
    view.flush()
    qtbot.waitUntil(view.is_settled, timeout=TIMEOUT)
    partial = [k for (kind, k) in view.cached_keys() if view._partial_window((kind, k)) is not None]
    settled = grab_rgb(window.canvas)
    assert partial  # the canvas edge cuts tiles at this view, and they were drawn from their visible part
    qtbot.waitUntil(lambda: all(view._partial_window(("liif", k)) is None for k in partial), timeout=TIMEOUT)
    np.testing.assert_array_equal(grab_rgb(window.canvas), settled)
    # Pan onto what the rests rendered (within the prefetch ring: nothing new is asked for): it is exact too.
    view.pan_by(-9.0, 7.0)
    qtbot.waitUntil(view.is_settled, timeout=TIMEOUT)
    got, ref = grab_rgb(window.canvas), reference_render(photo_path, window)
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_preview_shows_immediately_before_the_model_loads(
    qtbot: Any, settings: AppSettings, photo_path: Path
) -> None:
    release = threading.Event()

    def slow_factory(config: EngineConfig) -> Any:
        assert release.wait(30)
        return make_tiny_engine()

    w = make_window(qtbot, settings, slow_factory)
    w.start(photo_path)
    qtbot.waitUntil(lambda: w.view.photo is not None, timeout=TIMEOUT)
    img = grab_rgb(w.canvas)
    assert img.std() > 10  # the interpolated photo is on screen, not an empty canvas
    assert "interpolated" in w.render_label.text()
    w.view.zoom_by(2.0)
    assert w.view.viewport is not None
    assert w.view.viewport.zoom > 2.0  # the view is usable meanwhile
    release.set()
    qtbot.waitUntil(lambda: w.controller.encode.seconds is not None, timeout=TIMEOUT)


# -- zoom and pan -----------------------------------------------------------------------------------------
def test_wheel_zoom_keeps_the_point_under_the_cursor(qtbot: Any, window: MainWindow) -> None:
    view, canvas = window.view, window.canvas
    view.zoom_to(3.0)
    pos = QPointF(200.0, 70.0)
    for notches in (1, 2, -1, 3):
        assert view.viewport is not None
        before = view.viewport.screen_to_source(pos.x(), pos.y())
        z0 = view.viewport.device_zoom
        wheel(canvas, pos, notches)
        vp = view.viewport
        assert vp is not None
        after = vp.screen_to_source(pos.x(), pos.y())
        assert vp.device_zoom != z0
        tol = 0.5 / vp.device_zoom + 0.5 / z0 + 1e-9
        assert abs(after[0] - before[0]) <= tol and abs(after[1] - before[1]) <= tol


def test_keys_fit_and_hundred_percent_are_exact(qtbot: Any, window: MainWindow) -> None:
    view = window.view
    window.activateWindow()
    qtbot.waitActive(window)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_1)
    assert view.viewport is not None
    assert view.viewport.zoom == 1.0
    qtbot.keyClick(window.canvas, Qt.Key.Key_Plus)
    assert view.viewport.zoom == pytest.approx(2**0.5)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Minus)
    qtbot.keyClick(window.canvas, Qt.Key.Key_Minus)
    assert view.viewport.zoom == 1.0  # a photo smaller than the canvas goes no lower than 100%
    qtbot.keyClick(window.canvas, Qt.Key.Key_0)
    vp = view.viewport
    assert vp is not None
    x, y, w, h = vp.image_rect_device()
    dw, dh = vp.device_size
    assert vp.zoom == pytest.approx(min(CANVAS[0] / 96, CANVAS[1] / 80), rel=1e-9)
    assert (w == dw and x == 0) or (h == dh and y == 0)
    assert "Fit" in window.zoom_box.currentText()
    assert window.zoom_label.text().startswith("Zoom ")


def test_zoom_field_and_maximum(qtbot: Any, window: MainWindow) -> None:
    assert parse_zoom_text("800%") == 8.0 and parse_zoom_text("fit") == 0.0 and parse_zoom_text("x4") == 4.0
    assert parse_zoom_text("abc") is None
    window.zoom_box.setEditText("800%")
    line_edit = window.zoom_box.lineEdit()
    assert line_edit is not None
    line_edit.returnPressed.emit()
    assert window.view.viewport is not None
    qtbot.waitUntil(lambda: window.view.viewport.zoom == 8.0, timeout=2000)
    window.view.zoom_to(1e9)
    assert window.view.viewport.zoom >= 64
    assert "×" in window.mag_label.text()


def test_drag_and_arrow_keys_pan_and_stop_at_the_limits(qtbot: Any, window: MainWindow) -> None:
    view, canvas = window.view, window.canvas
    view.zoom_to(8.0)
    assert view.viewport is not None
    c0 = (view.viewport.cx, view.viewport.cy)
    drag(canvas, QPointF(200, 150), QPointF(120, 100))
    c1 = (view.viewport.cx, view.viewport.cy)
    assert c1[0] - c0[0] == pytest.approx(80 / 8.0) and c1[1] - c0[1] == pytest.approx(50 / 8.0)
    for _ in range(40):
        window.act_pan_right.trigger()
        window.act_pan_down.trigger()
    x, y, w, h = view.viewport.source_rect()
    tol = 1 / view.viewport.device_zoom
    assert x + w == pytest.approx(96, abs=tol) and y + h == pytest.approx(80, abs=tol)
    before = view.viewport
    drag(canvas, QPointF(200, 150), QPointF(10, 10))
    assert view.viewport == before  # already at the limit: nothing moves


def test_navigator_click_moves_the_view(qtbot: Any, window: MainWindow) -> None:
    window.nav_dock.show()
    nav = window.navigator
    qtbot.waitUntil(lambda: nav.width() > 50, timeout=2000)
    window.view.zoom_to(8.0)
    target = nav._image_rect()
    mouse(
        nav,
        QEvent.Type.MouseButtonPress,
        QPointF(target.x() + target.width() * 0.25, target.y() + target.height() * 0.5),
    )
    mouse(
        nav,
        QEvent.Type.MouseButtonRelease,
        QPointF(target.x() + target.width() * 0.25, target.y() + target.height() * 0.5),
    )
    vp = window.view.viewport
    assert vp is not None
    assert vp.cx == pytest.approx(24, abs=0.5) and vp.cy == pytest.approx(40, abs=0.5)


# -- compare, selection -------------------------------------------------------------------------------------
def test_compare_mode_shows_liif_and_bicubic_of_the_same_view(
    qtbot: Any, window: MainWindow, photo_path: Path
) -> None:
    view = window.view
    view.zoom_to(5.0)
    window.act_compare.setChecked(True)
    view.flush()
    qtbot.waitUntil(lambda: view.is_settled("liif") and view.is_settled("bicubic"), timeout=TIMEOUT)
    got = grab_rgb(window.canvas)
    ref = reference_render(photo_path, window)
    assert view.viewport is not None
    split = round(view.divider * view.viewport.device_size[0])  # device pixels
    # Away from the labels (top) and the divider's handle.
    d = view.viewport.dpr
    top, m = round(40 * d), round(12 * d)
    left = np.abs(got[top:, : split - m].astype(int) - ref[top:, : split - m]).max()
    right = np.abs(got[top:, split + m :].astype(int) - ref[top:, split + m :]).mean()
    assert left <= 1  # LIIF on the left
    assert right > 5  # something else on the right: bicubic of the same viewport
    vp = view.viewport
    assert vp is not None
    x, y, sw, sh = vp.source_rect()
    src = np.asarray(Image.open(photo_path).convert("RGB"))
    padded = Image.fromarray(np.pad(src, ((2, 2), (2, 2), (0, 0)), mode="edge"))
    bicubic = np.asarray(
        padded.resize(vp.device_size, Image.Resampling.BICUBIC, box=(x + 2, y + 2, x + sw + 2, y + sh + 2))
    )
    assert np.abs(got[top:, split + m :].astype(int) - bicubic[top:, split + m :]).max() <= 2
    # Drag the divider.
    drag(window.canvas, QPointF(split / view.viewport.dpr, 120), QPointF(80, 120))
    assert view.divider == pytest.approx(80 / CANVAS[0], abs=0.01)
    window.act_compare.setChecked(False)


def test_rubber_band_selection_in_source_pixels(qtbot: Any, window: MainWindow) -> None:
    view = window.view
    view.zoom_to(4.0)
    window.act_select.setChecked(True)
    vp = view.viewport
    assert vp is not None
    a, b = QPointF(50, 40), QPointF(150, 120)
    drag(window.canvas, a, b)
    sel = view.selection
    assert sel is not None
    sa, sb = vp.screen_to_source(a.x(), a.y()), vp.screen_to_source(b.x(), b.y())
    assert sel == pytest.approx((sa[0], sa[1], sb[0] - sa[0], sb[1] - sa[1]))
    window.act_clear_sel.trigger()
    assert view.selection is None
    window.act_select.setChecked(False)
    drag(window.canvas, a, b, Qt.KeyboardModifier.ShiftModifier)
    assert view.selection is not None


# -- errors ---------------------------------------------------------------------------------------------------
def test_an_unreadable_photo_keeps_the_previous_one(
    qtbot: Any, window: MainWindow, tmp_path: Path, photo_path: Path
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    before = window.view.photo
    window.controller.open(bad)
    qtbot.waitUntil(lambda: bool(window.open_messages()), timeout=TIMEOUT)
    box = window.open_messages()[0]
    assert "broken.jpg" in box.text() and "previous photo stays open" in box.text()
    assert window.view.photo is before
    box.close()


def test_missing_weights_says_how_to_get_them(qtbot: Any, settings: AppSettings, photo_path: Path) -> None:
    def factory(config: EngineConfig) -> Any:
        raise WeightsMissingError(
            f"the model '{config.model}' is not downloaded yet; run: liif-viewer fetch-weights"
        )

    w = make_window(qtbot, settings, factory)
    w.start(photo_path)
    qtbot.waitUntil(lambda: bool(w.open_messages()), timeout=TIMEOUT)
    text = w.open_messages()[0].text()
    assert "liif-viewer fetch-weights" in text
    qtbot.waitUntil(lambda: w.view.photo is not None, timeout=TIMEOUT)
    assert "No model" in w.render_label.text()  # still viewable, interpolated


def test_a_worker_failure_becomes_a_message(qtbot: Any, settings: AppSettings, photo_path: Path) -> None:
    class Broken(Gated):
        def render(self, *a: Any, **k: Any) -> np.ndarray:
            raise RuntimeError("simulated engine bug")

    w = make_window(qtbot, settings, lambda c: Broken(make_tiny_engine(), threading.Event()))
    open_and_encode(qtbot, w, photo_path)
    qtbot.waitUntil(lambda: bool(w.open_messages()), timeout=TIMEOUT)
    assert "simulated engine bug" in w.open_messages()[0].text()


# -- files and settings ------------------------------------------------------------------------------------------
def test_drop_recent_and_settings(
    qtbot: Any, window: MainWindow, tmp_path: Path, settings: AppSettings
) -> None:
    other = tmp_path / "other.png"
    Image.new("RGB", (50, 40), (200, 30, 30)).save(other)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(other))])
    drop = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with warnings.catch_warnings():  # its only constructor takes a QPoint, which PySide6 6.12 flags
        warnings.simplefilter("ignore", DeprecationWarning)
        enter = QDragEnterEvent(
            QPoint(10, 10),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
    QApplication.sendEvent(window.canvas, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window.canvas, drop)
    qtbot.waitUntil(
        lambda: window.view.photo is not None and window.view.photo.path == other, timeout=TIMEOUT
    )
    assert window.windowTitle().startswith("other.png")
    recent = settings.recent_files()
    assert recent[0] == other.resolve() and len(recent) == 2
    window.recent_menu.aboutToShow.emit()
    labels = [a.text() for a in window.recent_menu.actions()]
    assert any("other.png" in t for t in labels)
    assert settings.model() and settings.device() == "auto"
    window.close()
    assert settings.geometry() is not None


def test_model_switch_reencodes_and_rerenders(qtbot: Any, window: MainWindow) -> None:
    view = window.view
    view.zoom_to(3.0)
    view.flush()
    qtbot.waitUntil(view.is_settled, timeout=TIMEOUT)
    assert view.photo is not None
    content = view.photo.content
    window.controller.set_model("another-model")
    assert view.photo.content != content and not view.cached_keys()
    qtbot.waitUntil(
        lambda: window.controller.encode.seconds is not None and view.is_settled(), timeout=TIMEOUT
    )
    assert window.settings.model() == "another-model"
    assert "Model: tiny" in window.model_label.text() and "CPU" in window.device_label.text()
    window.device_menu.aboutToShow.emit()
    assert any(a.text().startswith("CPU") and a.isEnabled() for a in window.device_menu.actions())


def test_shortcuts_are_listed_in_help(window: MainWindow) -> None:
    from viewer.app.help import shortcut_rows

    actions = [a for m in window.menuBar().actions() if m.menu() for a in window._walk(cast(QMenu, m.menu()))]
    rows = dict((what, keys) for keys, what in shortcut_rows(actions))
    for name in (
        "Zoom In",
        "Zoom Out",
        "Fit to Window",
        "Actual Size (100%)",
        "Pan Left",
        "Compare with Bicubic",
        "Export",
    ):
        assert name in rows, name
    assert "+" in rows["Zoom In"] and rows["Fit to Window"] == "0" and rows["Actual Size (100%)"] == "1"


def test_the_window_appears_before_torch_is_imported(tmp_path: Path) -> None:
    code = (
        "import sys, os\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "from PySide6.QtCore import QSettings\n"
        "from viewer.app.main import make_application\n"
        "from viewer.app.main_window import MainWindow\n"
        "from viewer.app.settings import AppSettings\n"
        "app = make_application()\n"
        "w = MainWindow(AppSettings(QSettings(sys.argv[1], QSettings.Format.IniFormat)))\n"
        "w.show(); app.processEvents()\n"
        "print(w.isVisible(), 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "settings.ini")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.split() == ["True", "False"], out.stderr


@pytest.mark.slow
def test_hidpi_canvas_is_exact_too() -> None:
    """The same pixel-exact checks on a 2x screen (device pixel ratio 2), in a fresh process."""
    import os

    env = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": "offscreen"}
    tests = "settled or compare or wheel or keys"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", tests],
        capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_extension_points_run_jobs_in_the_worker_and_paint_on_the_canvas(
    qtbot: Any, window: MainWindow
) -> None:
    got: list[object] = []
    threads: list[str] = []

    class Extension:
        pending = True

        def has_work(self, fm_content: int, tiles_pending: bool) -> bool:
            return self.pending

        def take(self, fm_content: int, tiles_pending: bool) -> Callable[[Any], None]:
            self.pending = False

            def job(ctx: Any) -> None:
                threads.append(threading.current_thread().name)
                ctx.emit(("extension", ctx.content, ctx.feature_map.width))

            return job

    window.controller.add_event_handler(lambda ev: isinstance(ev, tuple) and (got.append(ev) or True))  # type: ignore[func-returns-value]
    window.controller.render_worker.add_extension(Extension())
    qtbot.waitUntil(lambda: bool(got), timeout=TIMEOUT)
    assert window.view.photo is not None
    assert got == [("extension", window.view.photo.content, 96)] and threads == ["liif-render"]
    painted: list[bool] = []
    window.canvas.add_painter(lambda p: painted.append(True), device_pixels=True)
    window.canvas.add_painter(lambda p: painted.append(False), device_pixels=False)
    window.canvas.repaint()
    assert painted[-2:] == [True, False]


def test_a_new_person_gets_the_fast_model_on_a_cpu(settings: AppSettings) -> None:
    """Until a model is chosen the viewer uses `auto`, which is the shipped liif-lm on a CPU (issues 4, 20)."""
    from viewer.engine.weights import DEFAULT_MODEL, FAST_MODEL, auto_model

    assert settings.model() == "auto"
    assert auto_model("cpu") == FAST_MODEL
    assert auto_model("cuda") == DEFAULT_MODEL
    settings.set_model(DEFAULT_MODEL)
    assert settings.model() == DEFAULT_MODEL  # a choice is remembered over the default


def test_a_remembered_model_that_was_retired_reads_as_its_replacement(settings: AppSettings) -> None:
    """Someone who picked liif-fast or liif-oldphoto-fast before they were retired gets the models that
    replace them, not a load error."""
    from viewer.engine.weights import RETIRED_MODELS, list_models

    shipped = {m.name for m in list_models() if m.available}
    for old, new in RETIRED_MODELS.items():
        assert new in shipped and old not in shipped
        settings.set_model(old)
        assert settings.model() == new


def test_the_model_and_device_menus_offer_models_memory_and_the_disk_cache(
    window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.model_menu.aboutToShow.emit()
    texts = [a.text() for a in window.model_menu.actions()]
    assert texts[0].startswith("Automatic") and any("liif-lm" in t for t in texts)
    assert window.act_open_weights in window.model_menu.actions()
    window.device_menu.aboutToShow.emit()
    from PySide6.QtWidgets import QMenu

    subs = {a.text(): a.menu() for a in window.device_menu.actions() if a.menu() is not None}
    memory, disk = subs["Feature &Memory"], subs["Disk &Cache"]
    assert isinstance(memory, QMenu) and isinstance(disk, QMenu)
    two_gb = next(a for a in memory.actions() if a.text() == "2 GB")
    two_gb.trigger()
    assert window.settings.feature_memory_mb() == 2048
    off = next(a for a in disk.actions() if a.text() == "Off")
    off.trigger()
    assert window.settings.disk_cache_mb() == 0
    monkeypatch.setenv("LIIF_VIEWER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "features").mkdir(parents=True)
    for n in range(3):
        (tmp_path / "cache" / "features" / f"t{n}.tile").write_bytes(b"x")
    next(a for a in disk.actions() if a.text() == "Clear Disk Cache").trigger()
    assert not list((tmp_path / "cache" / "features").glob("*.tile"))
    assert "3 tiles" in window.statusBar().currentMessage()
