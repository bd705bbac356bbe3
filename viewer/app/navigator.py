"""The navigator: a minimap of the whole photo with the viewport's rectangle (click or drag to move there),
and a few facts about the photo below it."""

from __future__ import annotations

import html

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from viewer.app.view_controller import ViewController


class Navigator(QWidget):
    """Shows the photo scaled to fit, the visible part outlined; GUI thread only."""

    def __init__(self, view: ViewController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._view = view
        self._dragging = False
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Click or drag to move the view")
        view.view_changed.connect(self.update)

    def sizeHint(self) -> QSize:
        return QSize(220, 180)

    def _image_rect(self) -> QRectF:
        """Where the thumbnail is drawn (logical px), aspect kept, centred."""
        photo = self._view.photo
        if photo is None:
            return QRectF()
        m = 6
        aw, ah = max(1, self.width() - 2 * m), max(1, self.height() - 2 * m)
        s = min(aw / photo.width, ah / photo.height)
        w, h = photo.width * s, photo.height * s
        return QRectF(m + (aw - w) / 2, m + (ah - h) / 2, w, h)

    def paintEvent(self, event: QPaintEvent) -> None:
        """GUI thread: the thumbnail and the viewport rectangle."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(30, 30, 32))
        photo, region = self._view.photo, self._view.view_region()
        if photo is None:
            return
        target = self._image_rect()
        dpr = self.devicePixelRatioF()
        pm = photo.thumbnail(int(max(target.width(), target.height()) * dpr))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawPixmap(target, pm, QRectF(pm.rect()))
        if region is not None:
            s = target.width() / photo.width
            x, y, w, h = region
            r = QRectF(target.x() + x * s, target.y() + y * s, max(2.0, w * s), max(2.0, h * s))
            painter.setPen(QPen(QColor(255, 200, 40), 2))
            painter.setBrush(QColor(255, 200, 40, 40))
            painter.drawRect(r)
        painter.end()

    def _move_to(self, pos: QPointF) -> None:
        photo = self._view.photo
        target = self._image_rect()
        if photo is None or target.isEmpty():
            return
        s = target.width() / photo.width
        self._view.centre_on((pos.x() - target.x()) / s, (pos.y() - target.y()) / s)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """GUI thread: centre the view where clicked."""
        if event.button() == Qt.MouseButton.LeftButton:
            self._dragging = True
            self._move_to(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """GUI thread: follow the drag."""
        if self._dragging:
            self._move_to(event.position())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._dragging = False


def describe_photo(view: ViewController) -> str:
    """Rich text about the open photo and what is on screen, for the panel under the navigator."""
    photo = view.photo
    if photo is None:
        return "<i>No photo</i>"
    loaded = photo.loaded
    lines = [
        f"<b>{html.escape(photo.path.name)}</b>",
        f"{photo.width} × {photo.height} px ({photo.width * photo.height / 1e6:.1f} MP)",
    ]
    kind = []
    if getattr(loaded, "grayscale", False):
        kind.append("greyscale")
    depth = getattr(loaded, "bit_depth", None)
    if depth:
        kind.append(f"{depth}-bit")
    if getattr(loaded, "alpha", None) is not None:
        kind.append("alpha")
    display = photo.display
    if display is not None:
        kind.append(f"{html.escape(display.name)}, shown as {html.escape(display.target)}")
    elif getattr(loaded, "icc", None):
        kind.append("ICC profile")
    if kind:
        lines.append(", ".join(kind))
    region = view.view_region()
    if region is not None:
        x, y, w, h = region
        lines.append(f"On screen: {w:.0f} × {h:.0f} source px at ({x:.0f}, {y:.0f})")
    if view.selection is not None:
        _, _, w, h = view.selection
        lines.append(f"Selection: {w:.0f} × {h:.0f} source px")
    return "<br>".join(lines)


class NavigatorPanel(QWidget):
    """The navigator with a few facts about the photo below it (the dock's contents)."""

    def __init__(self, view: ViewController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._view = view
        self.navigator = Navigator(view, self)
        self.navigator.setFixedHeight(200)
        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.navigator)
        layout.addWidget(self.info)
        layout.addStretch(1)
        view.view_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """GUI thread: update the facts (cheap: a few numbers)."""
        self.info.setText(describe_photo(self._view))
