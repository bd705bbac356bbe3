"""Painting helpers for Inspect mode's canvas overlays: the latent lattice, an image layer (feature map or
"what the model adds"), the probe's four codes, and the confidence cue beyond x4.

They only draw data computed earlier, elsewhere: the lattice is arithmetic (`lattice_lines`), and the
feature images, the heat map and the probe come from the render worker as numpy arrays or plain values.
Nothing here imports torch or calls the model, so painting stays within the repaint budget. Every function
runs on the GUI thread (QPixmap and QPainter are GUI-thread objects).

Geometry: a layer is an image that covers a source rectangle; the canvas shows the source rectangle
`view` (x, y, w, h in source px) on `canvas` (a QRectF in the painter's coordinates). Only the visible
whole pixels of an image are drawn, so a 12-megapixel feature image costs what the screen shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen, QPixmap

from viewer.engine.inspect import TRAINED_MAX_SCALE, Lattice, Probe, extrapolated

Rect = tuple[float, float, float, float]
"""(x, y, w, h) in source pixels."""

MEMBER_COLOURS = (QColor(255, 196, 0), QColor(0, 200, 255), QColor(255, 90, 200), QColor(120, 255, 120))
"""One colour per ensemble member (top-left, top-right, bottom-left, bottom-right), shared with the panel."""

CENTRE_DOTS_MIN_PX = 12.0
"""Latent centres are dotted only from this spacing up; below it the dots would hide the photo."""

CUE_TEXT = "Detail here is extrapolated: the model was trained on ×1–×4"


# -- images ---------------------------------------------------------------------------------------------------
def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """uint8 (H, W, 3) RGB or (H, W, 4) RGBA -> a QImage that owns a copy of the pixels (any thread)."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = arr.shape[:2]
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected (H, W, 3) or (H, W, 4) uint8, got {arr.shape}")
    fmt = QImage.Format.Format_RGB888 if arr.shape[2] == 3 else QImage.Format.Format_RGBA8888
    return QImage(arr.data, w, h, w * arr.shape[2], fmt).copy()


@dataclass
class ImageLayer:
    """An image (numpy, from the worker) that covers the source rectangle `covers`, painted on demand.

    The pixmap is made on the GUI thread the first time it is painted, then reused.
    """

    pixels: np.ndarray
    covers: Rect
    smooth: bool = False
    """False: nearest neighbour, so each latent stays a visible block."""
    _pixmap: QPixmap | None = field(default=None, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])

    def pixmap(self) -> QPixmap:
        """GUI thread: the pixmap, created once."""
        if self._pixmap is None:
            self._pixmap = QPixmap.fromImage(rgb_to_qimage(self.pixels))
        return self._pixmap


def map_rect(view: Rect, canvas: QRectF, rect: Rect) -> QRectF:
    """Where the source rectangle `rect` lands on `canvas`, which shows the source rectangle `view`."""
    vx, vy, vw, vh = view
    sx, sy = canvas.width() / vw, canvas.height() / vh
    x, y, w, h = rect
    return QRectF(canvas.x() + (x - vx) * sx, canvas.y() + (y - vy) * sy, w * sx, h * sy)


def visible_part(view: Rect, covers: Rect, size: tuple[int, int]) -> tuple[QRectF, Rect] | None:
    """The whole image pixels of an image of `size` over `covers` that `view` shows.

    Returns (image pixel rect, the source rectangle those pixels cover), or None when nothing shows.
    """
    iw, ih = size
    cx, cy, cw, ch = covers
    vx, vy, vw, vh = view
    px, py = iw / cw, ih / ch
    x0 = max(0, math.floor((vx - cx) * px))
    y0 = max(0, math.floor((vy - cy) * py))
    x1 = min(iw, math.ceil((vx + vw - cx) * px))
    y1 = min(ih, math.ceil((vy + vh - cy) * py))
    if x1 <= x0 or y1 <= y0:
        return None
    src = QRectF(x0, y0, x1 - x0, y1 - y0)
    return src, (cx + x0 / px, cy + y0 / py, (x1 - x0) / px, (y1 - y0) / py)


def paint_layer(painter: QPainter, layer: ImageLayer, view: Rect, canvas: QRectF, opacity: float) -> None:
    """GUI thread: draw the visible part of `layer` over the canvas at `opacity` (0-1)."""
    if opacity <= 0:
        return
    part = visible_part(view, layer.covers, layer.size)
    if part is None:
        return
    src, covered = part
    painter.save()
    painter.setClipRect(canvas)
    painter.setOpacity(max(0.0, min(1.0, opacity)))
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, layer.smooth)
    painter.drawPixmap(map_rect(view, canvas, covered), layer.pixmap(), src)
    painter.restore()


# -- the lattice ----------------------------------------------------------------------------------------------
_LINE = (120, 120, 120, 120)
"""Premultiplied BGRA of the cell boundaries: white at 47% opacity."""
_HALO = (0, 0, 0, 70)
"""Premultiplied BGRA of the dark halo either side of a boundary, so lines show on light photos too."""
_DOT = (108, 207, 230, 230)
"""Premultiplied BGRA of a latent centre: warm yellow (255, 230, 120) at 90%."""
_DOT_RING = (0, 0, 0, 160)


def _disk(radius: float) -> list[tuple[int, int, bool]]:
    """Pixel offsets (dx, dy, inner) of a dot with a one-pixel dark ring."""
    r = math.ceil(radius) + 1
    out = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            d = math.hypot(dx, dy)
            if d <= radius + 1:
                out.append((dx, dy, d <= radius))
    return out


def _argb(arr: np.ndarray) -> QImage:
    """A QImage over premultiplied BGRA uint8 rows (no copy: keep `arr` alive while it is drawn)."""
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, w * 4, QImage.Format.Format_ARGB32_Premultiplied)


def paint_lattice(painter: QPainter, lattice: Lattice, origin: QPointF | None = None) -> None:
    """GUI thread: the latent grid: cell boundaries (light over a dark halo) and the codes' centres.

    Positions are the lattice's output pixels, drawn 1:1 in the painter's units (the canvas paints in
    device pixels) with output pixel (0, 0) at `origin`. Built from a few strips so that it costs about one
    blend of the canvas: a one-row image of the vertical lines stretched over the height, wide rectangles
    for the horizontal lines, one strip per row of centres. (Thin tall rectangles are slow in Qt's raster
    engine, and a dot per centre is tens of thousands of calls.)
    """
    if lattice.empty:
        return
    ox, oy = (origin.x(), origin.y()) if origin is not None else (0.0, 0.0)
    e0, e1, e2, e3 = lattice.extent
    left, top = round(e0 + ox), round(e1 + oy)
    width, height = round(e2 + ox) - left + 1, round(e3 + oy) - top + 1
    if width <= 0 or height <= 0:
        return
    xs = np.clip(np.rint(lattice.xs + ox).astype(np.int64) - left, 0, width - 1)
    ys = np.clip(np.rint(lattice.ys + oy).astype(np.int64) - top, 0, height - 1)
    row = np.zeros((1, width, 4), dtype=np.uint8)
    row[0, np.clip(xs - 1, 0, width - 1)] = _HALO
    row[0, np.clip(xs + 1, 0, width - 1)] = _HALO
    row[0, xs] = _LINE
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
    painter.drawImage(QRectF(left, top, width, height), _argb(row), QRectF(0, 0, width, 1))
    halo, line = QColor(0, 0, 0, 70), QColor(255, 255, 255, 120)
    for y in ys.tolist():
        painter.fillRect(QRect(left, top + y - 1, width, 1), halo)
        painter.fillRect(QRect(left, top + y + 1, width, 1), halo)
        painter.fillRect(QRect(left, top + y, width, 1), line)
    if min(lattice.spacing) >= CENTRE_DOTS_MIN_PX:
        cx = np.rint(lattice.centre_xs + ox).astype(np.int64) - left
        cy = np.rint(lattice.centre_ys + oy).astype(np.int64) - top
        disk = _disk(max(1.5, min(3.5, min(lattice.spacing) / 8)))
        r = max(abs(dy) for _, dy, _ in disk)
        strip = np.zeros((2 * r + 1, width, 4), dtype=np.uint8)
        for ring_pass in (True, False):  # the dark ring first, the fill over it
            for dx, dy, inner in disk:
                if inner == ring_pass:
                    continue
                cols = cx + dx
                cols = cols[(cols >= 0) & (cols < width)]
                strip[dy + r, cols] = _DOT if inner else _DOT_RING
        image = _argb(strip)
        for y in cy.tolist():
            painter.drawImage(QPointF(left, top + y - r), image)
    painter.restore()


# -- the probe on the canvas ----------------------------------------------------------------------------------
def paint_probe(painter: QPainter, probe: Probe, to_screen: Callable[[float, float], QPointF]) -> None:
    """GUI thread: the probed point joined to its ensemble's latent centres, line width by weight."""
    q = to_screen(probe.x, probe.y)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    for k, m in enumerate(probe.members):
        c = to_screen(*m.centre)
        colour = MEMBER_COLOURS[k % len(MEMBER_COLOURS)]
        width = 1.0 + 5.0 * m.weight
        painter.setPen(QPen(QColor(0, 0, 0, 160), width + 2))
        painter.drawLine(q, c)
        painter.setPen(QPen(colour, width))
        painter.drawLine(q, c)
        painter.setPen(QPen(QColor(0, 0, 0), 1.5))
        painter.setBrush(colour)
        painter.drawEllipse(c, 5, 5)
    painter.setPen(QPen(QColor(0, 0, 0), 1.5))
    painter.setBrush(QColor(255, 255, 255))
    painter.drawEllipse(q, 4, 4)
    painter.restore()


# -- the confidence cue ---------------------------------------------------------------------------------------
def cue_text(magnification: float) -> str:
    """The cue's words for a magnification beyond the training range (empty within it)."""
    if not extrapolated(magnification):
        return ""
    return f"×{magnification:.1f}: {CUE_TEXT[0].lower()}{CUE_TEXT[1:]}"


def paint_confidence_cue(painter: QPainter, canvas: QRectF, magnification: float) -> QRectF | None:
    """GUI thread: a small, translucent badge in the canvas's bottom-left corner beyond x4.

    Returns where it was drawn (None within x1-x4, where nothing is drawn).
    """
    text = cue_text(magnification)
    if not text:
        return None
    painter.save()
    font = QFont(painter.font())
    font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
    painter.setFont(font)
    fm = QFontMetricsF(font, painter.device())
    # Rounded up, with a pixel to spare: an integer advance can fall short of the laid-out text by a
    # fraction of a pixel, and the text would then lose its last characters to the elision below.
    w = min(math.ceil(fm.horizontalAdvance(text)) + 31.0, canvas.width() - 16)
    h = math.ceil(fm.height()) + 8.0
    box = QRectF(canvas.left() + 8, canvas.bottom() - h - 8, w, h)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(20, 20, 24, 165))
    painter.drawRoundedRect(box, 5, 5)
    # A ring that fills more, the further beyond x4 (full at x16): extrapolation is a matter of degree.
    ring = QRectF(box.left() + 7, box.center().y() - 5, 10, 10)
    painter.setPen(QPen(QColor(255, 200, 90, 200), 1.5))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawEllipse(ring)
    frac = min(1.0, math.log(magnification / TRAINED_MAX_SCALE, 4.0))
    painter.setBrush(QColor(255, 200, 90, 200))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawPie(ring, 90 * 16, -round(360 * 16 * frac))
    painter.setPen(QColor(235, 235, 235, 230))
    text_box = box.adjusted(24, 0, -6, 0)
    elided = fm.elidedText(text, Qt.TextElideMode.ElideRight, text_box.width())
    painter.drawText(text_box, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided)
    painter.restore()
    return box
