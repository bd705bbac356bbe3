"""The Export dialog's preview: the chosen region, with what "Crop to fill" will cut away dimmed.

A print's shape rarely matches a hand-drawn selection. Crop to fill then trims the region, and from the
pixel size alone a person cannot see that a chin or a hairline will be lost. This widget draws the region
from the photo's preview pyramid (no model, GUI thread only) and dims everything outside the rectangle the
export will actually render. Dragging it moves that rectangle inside the region: the dialog turns the
position into the crop's anchor.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QWidget

Rect = tuple[float, float, float, float]

DIM = QColor(0, 0, 0, 150)
"""Over the parts that will not be printed: dark enough to read as 'gone', light enough to still see."""


def trim_text(region: Rect, kept: Rect) -> str:
    """One line for the person: what the export keeps of the region."""
    _, _, rw, rh = region
    _, _, kw, kh = kept
    cut_w, cut_h = 1 - kw / rw, 1 - kh / rh
    if cut_w < 0.005 and cut_h < 0.005:
        return "The whole region is exported."
    what = f"{cut_w:.0%} of the region's width" if cut_w >= cut_h else f"{cut_h:.0%} of its height"
    return f"Crop to fill trims {what} (dimmed). Drag the preview to choose the part kept."


class CropPreview(QWidget):
    """The export region scaled into the widget, the part outside the kept rectangle dimmed."""

    anchor_changed = Signal(float, float)
    """A drag moved the kept rectangle: its anchor in the region, 0 to 1 on each axis (see fit_region)."""

    def __init__(
        self, levels: Sequence[QPixmap], image_size: tuple[int, int], parent: QWidget | None = None
    ) -> None:
        """`levels`: the photo at decreasing sizes, the first the largest (the photo's preview pyramid)."""
        super().__init__(parent)
        self._levels = list(levels)
        self._image_w, self._image_h = image_size
        self._region: Rect | None = None
        self._kept: Rect | None = None
        self._press: tuple[QPointF, QRectF] | None = None
        # Small and fixed: it must not push the dialog's controls off a laptop screen.
        self.setFixedSize(QSize(220, 160))
        self.setMouseTracking(True)  # the hand cursor says the crop can be dragged

    def set_rects(self, region: Rect | None, kept: Rect | None) -> None:
        """Show `region` (source px) with everything outside `kept` dimmed; None shows nothing."""
        self._region, self._kept = region, kept
        self.update()

    def region_target(self) -> QRectF | None:
        """Where the region is drawn in the widget: scaled to fit, centred."""
        if self._region is None:
            return None
        _, _, rw, rh = self._region
        s = min(self.width() / rw, self.height() / rh)
        w, h = rw * s, rh * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def kept_target(self) -> QRectF | None:
        """Where the kept rectangle falls in the widget."""
        target = self.region_target()
        if target is None or self._region is None or self._kept is None:
            return None
        rx, ry, rw, rh = self._region
        kx, ky, kw, kh = self._kept
        sx, sy = target.width() / rw, target.height() / rh
        return QRectF(target.x() + (kx - rx) * sx, target.y() + (ky - ry) * sy, kw * sx, kh * sy)

    def level_for(self, scale: float) -> QPixmap:
        """The smallest level with at least `scale` of its pixels per source pixel (else the largest):
        a small selection of a big scan is drawn from full resolution, the whole photo from a thumbnail."""
        for pm in reversed(self._levels):
            if pm.width() >= scale * self._image_w:
                return pm
        return self._levels[0]

    def _movable(self) -> tuple[QRectF, QRectF] | None:
        """(region, kept) in widget coordinates when the crop leaves room to move, else None."""
        target, kept = self.region_target(), self.kept_target()
        if target is None or kept is None:
            return None
        if target.width() - kept.width() < 0.5 and target.height() - kept.height() < 0.5:
            return None
        return target, kept

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """GUI thread: start moving the kept rectangle."""
        rects = self._movable()
        if event.button() != Qt.MouseButton.LeftButton or rects is None:
            super().mousePressEvent(event)
            return
        self._press = (event.position(), rects[1])
        self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """GUI thread: move the kept rectangle with the pointer, inside the region."""
        rects = self._movable()
        if self._press is None or rects is None:
            self.setCursor(Qt.CursorShape.OpenHandCursor if rects is not None else Qt.CursorShape.ArrowCursor)
            return
        target, _ = rects
        start, kept = self._press
        d = event.position() - start
        anchor = []
        for lo, size, kept_lo, kept_size, delta in (
            (target.left(), target.width(), kept.left(), kept.width(), d.x()),
            (target.top(), target.height(), kept.top(), kept.height(), d.y()),
        ):
            room = size - kept_size
            anchor.append(0.5 if room < 0.5 else min(1.0, max(0.0, (kept_lo + delta - lo) / room)))
        self.anchor_changed.emit(anchor[0], anchor[1])

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """GUI thread: the move ends."""
        self._press = None
        self.setCursor(
            Qt.CursorShape.OpenHandCursor if self._movable() is not None else Qt.CursorShape.ArrowCursor
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        """GUI thread: the region from the preview pixmap, the cut parts dimmed, the kept part outlined."""
        target = self.region_target()
        if target is None or self._region is None:
            return
        x, y, w, h = self._region
        pixmap = self.level_for(target.width() * self.devicePixelRatioF() / w)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        fx = pixmap.width() / self._image_w
        fy = pixmap.height() / self._image_h
        p.drawPixmap(target, pixmap, QRectF(x * fx, y * fy, w * fx, h * fy))
        kept = self.kept_target()
        if kept is not None:
            outside = [
                QRectF(target.left(), target.top(), target.width(), kept.top() - target.top()),
                QRectF(target.left(), kept.bottom(), target.width(), target.bottom() - kept.bottom()),
                QRectF(target.left(), kept.top(), kept.left() - target.left(), kept.height()),
                QRectF(kept.right(), kept.top(), target.right() - kept.right(), kept.height()),
            ]
            for r in outside:
                if r.width() > 0 and r.height() > 0:
                    p.fillRect(r, DIM)
            p.setPen(QPen(QColor(255, 255, 255, 220), 1, Qt.PenStyle.DashLine))
            p.drawRect(kept.adjusted(0.5, 0.5, -0.5, -0.5))
        p.end()
