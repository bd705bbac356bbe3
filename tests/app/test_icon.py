"""The app icon: drawn in code, shipped as PNGs at every size the packaging needs."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QImage

from viewer import paths
from viewer.app.icon import SIZES, draw_icon
from viewer.app.main_window import app_icon


def test_icon_is_drawn_with_transparent_corners(qapp: Any) -> None:
    img = draw_icon(64)
    assert (img.width(), img.height()) == (64, 64)
    assert img.pixelColor(0, 0).alpha() == 0 and img.pixelColor(32, 32).alpha() == 255


def test_shipped_pngs_match_the_drawing(qapp: Any) -> None:
    folder = paths.resources_dir() / "icons"
    for n in SIZES:
        shipped = QImage(str(folder / f"liif-viewer-{n}.png"))
        assert (shipped.width(), shipped.height()) == (n, n), n
    fresh = draw_icon(48).convertToFormat(QImage.Format.Format_ARGB32)
    assert QImage(str(folder / "liif-viewer-48.png")).convertToFormat(QImage.Format.Format_ARGB32) == fresh
    assert not app_icon().isNull()
