"""The app icon, drawn with QPainter (no copied art): a blocky, pixelated little landscape with a lens over
it that shows the same scene smooth - what the viewer does.

    python -m viewer.app.icon [OUT_DIR]

writes `liif-viewer-N.png` for each size into OUT_DIR (default: resources/icons). `packaging/make_icons.py`
turns them into the per-OS icon files.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPainterPath, QPen, QRadialGradient

SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
DESIGN = 256.0
"""All coordinates below are in a 256 x 256 design space."""

SCENE = QRectF(36, 40, 150, 150)
LENS_CENTRE = QPointF(156, 150)
LENS_RADIUS = 64.0
SUN = (QPointF(88, 82), 20.0)


def _sky(t: float) -> QColor:
    """Sky colour at height fraction t (0 top, 1 horizon): blue to warm."""
    top, bottom = (74, 128, 214), (250, 190, 120)
    return QColor(*(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))


def _hill_y(x: float) -> float:
    return 142 + 14 * math.sin((x - 20) / 22.0) + 6 * math.sin(x / 9.0)


def _scene_colour(x: float, y: float) -> QColor:
    """The landscape, as a function: what a block samples."""
    if y >= _hill_y(x):
        shade = min(1.0, (y - _hill_y(x)) / 50.0)
        return QColor(round(70 - 30 * shade), round(160 - 60 * shade), round(80 - 30 * shade))
    c, r = SUN
    if math.hypot(x - c.x(), y - c.y()) <= r:
        return QColor(255, 214, 90)
    return _sky(max(0.0, min(1.0, (y - SCENE.top()) / (SCENE.height() * 0.75))))


def _paint_smooth_scene(p: QPainter) -> None:
    """The same landscape drawn continuously (inside the lens)."""
    grad = QLinearGradient(0, SCENE.top(), 0, SCENE.top() + SCENE.height() * 0.75)
    grad.setColorAt(0, _sky(0))
    grad.setColorAt(1, _sky(1))
    p.fillRect(QRectF(0, 0, DESIGN, DESIGN), grad)
    c, r = SUN
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(255, 214, 90))
    p.drawEllipse(c, r, r)
    hill = QPainterPath(QPointF(0, DESIGN))
    for i in range(0, 257, 4):
        hill.lineTo(QPointF(i, _hill_y(i)))
    hill.lineTo(QPointF(DESIGN, DESIGN))
    hill.closeSubpath()
    g = QLinearGradient(0, 120, 0, 220)
    g.setColorAt(0, QColor(70, 160, 80))
    g.setColorAt(1, QColor(40, 100, 50))
    p.setBrush(g)
    p.drawPath(hill)


def draw_icon(size: int) -> QImage:
    """The icon at `size` x `size` pixels (ARGB, transparent corners)."""
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.scale(size / DESIGN, size / DESIGN)

    # Background tile.
    bg = QLinearGradient(0, 12, 0, 244)
    bg.setColorAt(0, QColor(48, 60, 110))
    bg.setColorAt(1, QColor(18, 22, 46))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(bg)
    p.drawRoundedRect(QRectF(12, 12, 232, 232), 48, 48)

    # The pixelated photo: big blocks sampled from the scene (fewer, larger blocks on tiny icons).
    blocks = 5 if size < 48 else 8
    step = SCENE.width() / blocks
    for j in range(blocks):
        for i in range(blocks):
            x0, y0 = SCENE.left() + i * step, SCENE.top() + j * step
            p.setBrush(_scene_colour(x0 + step / 2, y0 + step / 2))
            p.drawRect(QRectF(x0, y0, step + 0.6, step + 0.6))

    # The lens: the same scene, smooth, with a soft shadow, a rim and a handle.
    shadow = QRadialGradient(LENS_CENTRE + QPointF(6, 8), LENS_RADIUS + 16)
    shadow.setColorAt(0.75, QColor(0, 0, 0, 110))
    shadow.setColorAt(1.0, QColor(0, 0, 0, 0))
    p.setBrush(shadow)
    p.drawEllipse(LENS_CENTRE + QPointF(6, 8), LENS_RADIUS + 16, LENS_RADIUS + 16)
    lens = QPainterPath()
    lens.addEllipse(LENS_CENTRE, LENS_RADIUS, LENS_RADIUS)
    p.save()
    p.setClipPath(lens)
    p.translate(LENS_CENTRE)
    p.scale(1.35, 1.35)  # magnified
    p.translate(-LENS_CENTRE + QPointF(-14, -10))
    _paint_smooth_scene(p)
    p.restore()
    glare = QRadialGradient(LENS_CENTRE + QPointF(-24, -28), LENS_RADIUS)
    glare.setColorAt(0, QColor(255, 255, 255, 90))
    glare.setColorAt(0.5, QColor(255, 255, 255, 0))
    p.setBrush(glare)
    p.drawEllipse(LENS_CENTRE, LENS_RADIUS, LENS_RADIUS)
    handle_from = LENS_CENTRE + QPointF(LENS_RADIUS * 0.72, LENS_RADIUS * 0.72)
    p.setPen(QPen(QColor(240, 176, 64), 24, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
    p.drawLine(handle_from, QPointF(226, 226))
    p.setPen(QPen(QColor(236, 240, 248), 13))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawEllipse(LENS_CENTRE, LENS_RADIUS, LENS_RADIUS)
    p.end()
    return img


def write_icons(out_dir: Path, sizes: tuple[int, ...] = SIZES) -> list[Path]:
    """Write `liif-viewer-N.png` for each size; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for n in sizes:
        f = out_dir / f"liif-viewer-{n}.png"
        if not draw_icon(n).save(str(f)):  # the format follows the .png suffix
            raise OSError(f"cannot write {f}")
        files.append(f)
    return files


def main(argv: list[str] | None = None) -> int:
    from PySide6.QtGui import QGuiApplication

    from viewer import paths

    args = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QGuiApplication.instance() or QGuiApplication([])
    out = Path(args[0]) if args else paths.resources_dir() / "icons"
    for f in write_icons(out):
        print(f)
    app.processEvents()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
