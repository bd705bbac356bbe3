"""The canvas: paints the frame the view controller composes, and turns input into view-controller calls.

It never calls the model and never plans tiles: `paintEvent` executes the draw list of cached pixmaps
(exact tiles 1:1 in device pixels, nearby levels scaled, the preview pyramid underneath) and draws the
overlays (compare divider, selection). All of it runs on the GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum, auto

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QCursor,
    QMouseEvent,
    QNativeGestureEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QGestureEvent, QPinchGesture, QSizePolicy, QWidget

from viewer.app.messages import COMPARE_LABELS
from viewer.app.view_controller import ViewController

WHEEL_STEP = 2.0 ** (1 / 3)
"""Zoom factor per wheel notch (120 eighths of a degree)."""
DIVIDER_GRAB_PX = 8
SELECTION_GRAB_PX = 6
"""How near (logical px) an edge or corner of the selection a press resizes it."""
BACKGROUND = QColor(38, 38, 40)


class Drag(Enum):
    NONE = auto()
    PAN = auto()
    SELECT = auto()
    MOVE_SELECTION = auto()
    RESIZE_SELECTION = auto()
    DIVIDER = auto()


RESIZE_CURSORS = {
    "l": Qt.CursorShape.SizeHorCursor,
    "r": Qt.CursorShape.SizeHorCursor,
    "t": Qt.CursorShape.SizeVerCursor,
    "b": Qt.CursorShape.SizeVerCursor,
    "tl": Qt.CursorShape.SizeFDiagCursor,
    "br": Qt.CursorShape.SizeFDiagCursor,
    "tr": Qt.CursorShape.SizeBDiagCursor,
    "bl": Qt.CursorShape.SizeBDiagCursor,
    "move": Qt.CursorShape.SizeAllCursor,
}


def selection_hit(rect: QRectF, x: float, y: float, grab: float = SELECTION_GRAB_PX) -> str | None:
    """What a press at (x, y) grabs of the selection drawn at `rect` (logical px): an edge ('l', 'r',
    't', 'b'), a corner ('tl', 'tr', 'bl', 'br'), the inside ('move'), or nothing (None)."""
    if not rect.adjusted(-grab, -grab, grab, grab).contains(QPointF(x, y)):
        return None
    # On a selection drawn smaller than the grab zones, the inside wins so that it can still be moved.
    g = min(grab, rect.width() / 3, rect.height() / 3)
    v = "t" if abs(y - rect.top()) <= g else "b" if abs(y - rect.bottom()) <= g else ""
    h = "l" if abs(x - rect.left()) <= g else "r" if abs(x - rect.right()) <= g else ""
    return (v + h) or "move"


def moved_selection(
    start: tuple[float, float, float, float], grip: str, dx: float, dy: float, photo: tuple[int, int]
) -> tuple[float, float, float, float]:
    """The selection `start` (source px) after dragging its `grip` by (dx, dy) source px: a move keeps its
    size and stays on the photo; an edge or corner moves only that edge (it may cross the opposite one)."""
    x, y, w, h = start
    pw, ph = photo
    if grip == "move":
        return (min(max(0.0, x + dx), pw - w), min(max(0.0, y + dy), ph - h), w, h)
    x0, y0, x1, y1 = x, y, x + w, y + h
    if "l" in grip:
        x0 += dx
    if "r" in grip:
        x1 += dx
    if "t" in grip:
        y0 += dy
    if "b" in grip:
        y1 += dy
    return (x0, y0, x1 - x0, y1 - y0)


class Canvas(QWidget):
    """The zoomable view of the photo."""

    selection_made = Signal(str)
    """A drag changed the selection; the argument names the step ('Select Region', 'Move Selection')."""
    pointer_moved = Signal(float, float)
    """The pointer hovers at logical canvas position (x, y), no button held (for hover tools)."""
    pointer_left = Signal()
    frame_painted = Signal(float)
    """Milliseconds the last paintEvent took (for the benchmark)."""

    def __init__(self, view: ViewController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._view = view
        self.select_mode = False
        self._drag = Drag.NONE
        self._last = QPointF()
        self._sel_start: tuple[float, float] | None = None
        self._sel_grip: tuple[str, tuple[float, float, float, float]] | None = None
        self.last_paint_ms = 0.0
        self._watched_window: object = None
        self._device_painters: list[Callable[[QPainter], None]] = []
        self._logical_painters: list[Callable[[QPainter], None]] = []
        self.empty_text = "Open a photo (Ctrl+O) or drop one here"
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 150)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_AcceptTouchEvents)
        self.grabGesture(Qt.GestureType.PinchGesture)
        view.view_changed.connect(self.update)
        view.area_changed.connect(lambda r: self.update(r.toAlignedRect()))

    # -- geometry -------------------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:
        """GUI thread: tell the view controller the canvas size in logical px and the pixel ratio."""
        super().resizeEvent(event)
        self.sync_geometry()

    def sync_geometry(self) -> None:
        """GUI thread: push size and device pixel ratio (also after a move to another screen)."""
        self._view.set_canvas_geometry(self.width(), self.height(), self.devicePixelRatioF())

    def showEvent(self, event: QEvent) -> None:  # type: ignore[override]
        """GUI thread: follow screen changes, which can change the device pixel ratio."""
        super().showEvent(event)  # type: ignore[arg-type]
        handle = self.window().windowHandle()
        if handle is not None and handle is not self._watched_window:
            self._watched_window = handle
            handle.screenChanged.connect(lambda *_: self.sync_geometry())
        self.sync_geometry()

    # -- painting -------------------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        """GUI thread: paint cached pixmaps only (never the model), then the overlays."""
        t0 = time.perf_counter()
        painter = QPainter(self)
        painter.fillRect(event.rect(), BACKGROUND)
        frame = self._view.frame()
        dpr = self.devicePixelRatioF()
        painter.save()
        painter.scale(1 / dpr, 1 / dpr)  # device pixels: exact tiles land 1:1 on screen pixels
        dirty = QRectF(event.rect()).adjusted(-1, -1, 1, 1)
        dirty = QRectF(dirty.x() * dpr, dirty.y() * dpr, dirty.width() * dpr, dirty.height() * dpr)
        for layer in frame.layers:
            clip = dirty if layer.clip is None else layer.clip.intersected(dirty)
            if clip.isEmpty():
                continue
            painter.setClipRect(clip)
            for op in layer.ops:
                if not op.target.intersects(clip):
                    continue
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, op.smooth)
                painter.drawPixmap(op.target, op.pixmap, op.source)  # type: ignore[call-overload]
        painter.setClipping(False)
        for paint in self._device_painters:
            painter.save()
            paint(painter)
            painter.restore()
        painter.restore()
        self._paint_overlays(painter, frame.split_x, dpr)
        for paint in self._logical_painters:
            painter.save()
            paint(painter)
            painter.restore()
        painter.end()
        self.last_paint_ms = (time.perf_counter() - t0) * 1000
        self.frame_painted.emit(self.last_paint_ms)

    def add_painter(self, paint: Callable[[QPainter], None], *, device_pixels: bool) -> None:
        """Paint more on every frame from cached data (never the model): with `device_pixels` the painter
        is in device pixels, over the tiles and under the overlays; otherwise in logical pixels, on top."""
        (self._device_painters if device_pixels else self._logical_painters).append(paint)
        self.update()

    def _paint_overlays(self, painter: QPainter, split_x: float | None, dpr: float) -> None:
        view = self._view
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if view.photo is None:
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            return
        vp = view.viewport
        rect = self.selection_rect()
        if view.selection is not None and rect is not None:
            _, _, w, h = view.selection
            shade = QColor(0, 0, 0, 110)
            full = QRectF(self.rect())
            painter.fillRect(QRectF(full.left(), full.top(), full.width(), rect.top() - full.top()), shade)
            painter.fillRect(
                QRectF(full.left(), rect.bottom(), full.width(), full.bottom() - rect.bottom()), shade
            )
            painter.fillRect(QRectF(full.left(), rect.top(), rect.left() - full.left(), rect.height()), shade)
            painter.fillRect(
                QRectF(rect.right(), rect.top(), full.right() - rect.right(), rect.height()), shade
            )
            pen = QPen(QColor(255, 255, 255), 1, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRect(rect)
            label = f"{w:.0f} × {h:.0f} px"
            painter.drawText(
                rect.adjusted(4, 2, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, label
            )
            if self.select_mode:  # handles: the edges and corners can be dragged
                painter.setPen(QPen(QColor(0, 0, 0), 1))
                painter.setBrush(QColor(255, 255, 255))
                for hx in (rect.left(), rect.center().x(), rect.right()):
                    for hy in (rect.top(), rect.center().y(), rect.bottom()):
                        if hx != rect.center().x() or hy != rect.center().y():
                            painter.drawRect(QRectF(hx - 3, hy - 3, 6, 6))
                painter.setBrush(Qt.BrushStyle.NoBrush)
        if split_x is not None:
            x = split_x / dpr
            painter.setPen(QPen(QColor(255, 255, 255, 220), 2))
            painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
            painter.setBrush(QColor(255, 255, 255, 220))
            painter.drawEllipse(QPointF(x, self.height() / 2), 7, 7)
            if vp is not None and not vp.refinable:
                # At or below 1x neither side is upscaled: both show the source, downscaled.
                left, right = "Source (≤1×)", "Source (≤1×)"
            else:
                left, right = "LIIF", COMPARE_LABELS[self._view.compare_method]
            self._label(painter, QPointF(x - 8, 8), left, right=True)
            self._label(painter, QPointF(x + 8, 8), right, right=False)

    def _label(self, painter: QPainter, at: QPointF, text: str, right: bool) -> None:
        fm = painter.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 12, fm.height() + 6
        box = QRectF(at.x() - w if right else at.x(), at.y(), w, h)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # -- input ------------------------------------------------------------------------------------------
    def wheelEvent(self, event: QWheelEvent) -> None:
        """GUI thread: the wheel zooms about the cursor; a trackpad's two-finger scroll pans (Ctrl: zoom)."""
        pos = event.position()
        anchor = (pos.x(), pos.y())
        pixel = event.pixelDelta()
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        if not pixel.isNull() and event.phase() != Qt.ScrollPhase.NoScrollPhase and not ctrl:
            self._view.pan_by(-pixel.x(), -pixel.y())
        elif not pixel.isNull() and ctrl:
            self._view.zoom_by(2.0 ** (pixel.y() / 400.0), anchor)
        else:
            steps = event.angleDelta().y() / 120.0
            if steps:
                self._view.zoom_by(WHEEL_STEP**steps, anchor)
        event.accept()

    def event(self, event: QEvent) -> bool:
        """GUI thread: trackpad pinch (native gesture) and touch pinch (QPinchGesture), anchored."""
        if event.type() == QEvent.Type.NativeGesture:
            ng: QNativeGestureEvent = event  # type: ignore[assignment]
            pos = ng.position()
            if ng.gestureType() == Qt.NativeGestureType.ZoomNativeGesture:
                self._view.zoom_by(1.0 + ng.value(), (pos.x(), pos.y()))
                return True
            if ng.gestureType() == Qt.NativeGestureType.SmartZoomNativeGesture:
                if self._view.fit_mode:
                    self._view.zoom_to(1.0, (pos.x(), pos.y()))
                else:
                    self._view.fit()
                return True
        if event.type() == QEvent.Type.Gesture:
            ge: QGestureEvent = event  # type: ignore[assignment]
            pinch = ge.gesture(Qt.GestureType.PinchGesture)
            if isinstance(pinch, QPinchGesture):
                c = self.mapFromGlobal(pinch.centerPoint().toPoint())
                f = pinch.scaleFactor()
                if f > 0:
                    self._view.zoom_by(f, (float(c.x()), float(c.y())))
                ge.accept(pinch)
                return True
        return super().event(event)

    def _near_divider(self, x: float) -> bool:
        return self._view.compare and abs(x - self._view.divider * self.width()) <= DIVIDER_GRAB_PX

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """GUI thread: start a pan, a rubber-band selection (select mode or Shift) or a divider drag."""
        if event.button() != Qt.MouseButton.LeftButton or self._view.viewport is None:
            super().mousePressEvent(event)
            return
        pos = event.position()
        self._last = pos
        selecting = self.select_mode or event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        grip = self._selection_grip(pos.x(), pos.y()) if selecting else None
        if self._near_divider(pos.x()):
            self._drag = Drag.DIVIDER
        elif grip is not None and self._view.selection is not None:
            # On the selection: move it (inside) or resize it (an edge or corner) instead of starting anew.
            self._drag = Drag.MOVE_SELECTION if grip == "move" else Drag.RESIZE_SELECTION
            self._sel_start = self._view.viewport.screen_to_source(pos.x(), pos.y())
            self._sel_grip = (grip, self._view.selection)
            self.setCursor(RESIZE_CURSORS[grip])
        elif selecting:
            self._drag = Drag.SELECT
            self._sel_start = self._view.viewport.screen_to_source(pos.x(), pos.y())
            self._view.set_selection(None)
        else:
            self._drag = Drag.PAN
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """GUI thread: continue the drag; otherwise show what a press would do."""
        pos = event.position()
        vp = self._view.viewport
        if self._drag == Drag.PAN:
            d = self._last - pos
            self._last = pos
            self._view.pan_by(d.x(), d.y())
        elif self._drag == Drag.DIVIDER:
            self._view.set_divider(pos.x() / max(1, self.width()))
        elif self._drag == Drag.SELECT and self._sel_start is not None and vp is not None:
            sx, sy = self._sel_start
            ex, ey = vp.screen_to_source(pos.x(), pos.y())
            self._view.set_selection((sx, sy, ex - sx, ey - sy))
        elif self._sel_grip is not None and self._sel_start is not None and vp is not None:
            photo = self._view.photo
            if photo is not None:
                sx, sy = self._sel_start
                ex, ey = vp.screen_to_source(pos.x(), pos.y())
                grip, start = self._sel_grip
                self._view.set_selection(
                    moved_selection(start, grip, ex - sx, ey - sy, (photo.width, photo.height))
                )
        else:
            self._update_cursor(pos.x(), pos.y())
            self.pointer_moved.emit(pos.x(), pos.y())

    def leaveEvent(self, event: QEvent) -> None:
        """GUI thread: the pointer left the canvas."""
        super().leaveEvent(event)
        self.pointer_left.emit()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """GUI thread: end the drag."""
        step = {
            Drag.SELECT: "Select Region",
            Drag.MOVE_SELECTION: "Move Selection",
            Drag.RESIZE_SELECTION: "Resize Selection",
        }.get(self._drag)
        if step is not None:
            self.selection_made.emit(step if self._view.selection is not None else "Clear Selection")
        self._drag = Drag.NONE
        self._sel_start = None
        self._sel_grip = None
        self._update_cursor(event.position().x(), event.position().y())

    def cancel_drag(self) -> None:
        """Forget a drag in progress (another photo opened under it): its release then changes nothing."""
        self._drag = Drag.NONE
        self._sel_start = None
        self._sel_grip = None

    def selection_rect(self) -> QRectF | None:
        """Where the selection is drawn on the canvas (logical px), or None."""
        vp, sel = self._view.viewport, self._view.selection
        if vp is None or sel is None:
            return None
        x, y, w, h = sel
        x0, y0 = vp.source_to_screen(x, y)
        x1, y1 = vp.source_to_screen(x + w, y + h)
        return QRectF(QPointF(x0, y0), QPointF(x1, y1))

    def _selection_grip(self, x: float, y: float) -> str | None:
        rect = self.selection_rect()
        return None if rect is None else selection_hit(rect, x, y)

    def _update_cursor(self, x: float, y: float | None = None) -> None:
        grip = self._selection_grip(x, y) if self.select_mode and y is not None else None
        if self._near_divider(x):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        elif grip is not None:
            self.setCursor(RESIZE_CURSORS[grip])
        elif self.select_mode:
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.setCursor(QCursor(Qt.CursorShape.OpenHandCursor))

    def set_empty_text(self, text: str) -> None:
        """What to say while no photo is shown (e.g. that one is loading)."""
        self.empty_text = text
        self.update()

    def set_select_mode(self, on: bool) -> None:
        """Rubber-band selection instead of panning for a plain drag."""
        self.select_mode = on
        self._update_cursor(-1e9)
        self.update()  # the selection's handles show in select mode only
