"""The app icon: drawn in code, shipped as PNGs at every size the packaging needs."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtGui import QImage

from viewer import paths
from viewer.app.icon import SIZES, draw_icon
from viewer.app.main_window import app_icon


def argb(img: QImage) -> np.ndarray:
    """The image's pixels as an (h, w, 4) uint8 array (ARGB32 byte order)."""
    img = img.convertToFormat(QImage.Format.Format_ARGB32)
    h, w = img.height(), img.width()
    return (
        np.frombuffer(img.constBits(), np.uint8, count=h * img.bytesPerLine())
        .reshape(h, -1)[:, : 4 * w]
        .reshape(h, w, 4)
        .copy()
    )


def test_icon_is_drawn_with_transparent_corners(qapp: Any) -> None:
    img = draw_icon(64)
    assert (img.width(), img.height()) == (64, 64)
    assert img.pixelColor(0, 0).alpha() == 0 and img.pixelColor(32, 32).alpha() == 255


def test_shipped_pngs_match_the_drawing(qapp: Any) -> None:
    folder = paths.resources_dir() / "icons"
    for n in SIZES:
        shipped = QImage(str(folder / f"liif-viewer-{n}.png"))
        assert (shipped.width(), shipped.height()) == (n, n), n
    # Qt's antialiasing can differ by a level or two between CPUs (its raster code has per-CPU paths), so
    # compare within 2/255 per channel: a stale PNG (another drawing) differs by far more.
    fresh = argb(draw_icon(48))
    on_disk = argb(QImage(str(folder / "liif-viewer-48.png")))
    diff = np.abs(fresh.astype(int) - on_disk.astype(int))
    assert diff.max() <= 2 and np.count_nonzero(diff) <= 0.01 * diff.size, (
        diff.max(),
        np.count_nonzero(diff),
    )
    assert not app_icon().isNull()
