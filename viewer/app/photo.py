"""Opening a photo: decode and build its preview pyramid off the GUI thread, then wrap it for painting.

The pyramid (each level half the previous, box-filtered) is what the canvas paints before LIIF tiles
arrive and at or below 1x: a plain high-quality downscale of the source, never a model output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage, QPixmap

from viewer.app.messages import PhotoFailed, PhotoLoaded
from viewer.errors import ViewerError

IMAGE_FILTER = (
    "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.gif *.webp *.ppm *.pgm *.pbm *.tga);;All files (*)"
)
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".tga"}
)
PYRAMID_MIN_SIDE = 128
MAX_MEGAPIXELS = 200.0


def to_rgb8(rgb: np.ndarray) -> np.ndarray:
    """float [0, 1] (H, W, 3) -> uint8, rounded."""
    return np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def rgb8_to_bgra(rgb8: np.ndarray) -> np.ndarray:
    """uint8 RGB -> uint8 BGRA laid out for QImage.Format_RGB32."""
    out = np.empty((*rgb8.shape[:2], 4), dtype=np.uint8)
    out[..., 0] = rgb8[..., 2]
    out[..., 1] = rgb8[..., 1]
    out[..., 2] = rgb8[..., 0]
    out[..., 3] = 255
    return out


def build_pyramid(rgb8: np.ndarray, min_side: int = PYRAMID_MIN_SIDE) -> tuple[np.ndarray, ...]:
    """Levels of BGRA uint8, each half the previous (box filter), down to about `min_side` pixels."""
    from PIL import Image

    levels = [rgb8_to_bgra(rgb8)]
    im = Image.fromarray(rgb8, "RGB")
    while max(im.width, im.height) > min_side and min(im.width, im.height) >= 2:
        im = im.reduce(2)
        levels.append(rgb8_to_bgra(np.asarray(im)))
    return tuple(levels)


def load_photo(request: int, path: Path, max_megapixels: float = MAX_MEGAPIXELS) -> PhotoLoaded | PhotoFailed:
    """Loader thread: decode `path` and build its pyramid; every failure becomes a PhotoFailed."""
    from viewer.engine.imageio import load_image

    t0 = time.perf_counter()
    try:
        loaded = load_image(path, max_megapixels=max_megapixels)
        rgb8 = loaded.rgb8()
        levels = build_pyramid(rgb8)
    except ViewerError as exc:
        return PhotoFailed(request, path, str(exc))
    except MemoryError:
        return PhotoFailed(request, path, f"{path}: not enough memory to open this photo")
    except Exception as exc:  # anything else is still a message, never a crash
        return PhotoFailed(request, path, f"{path}: cannot open ({type(exc).__name__}: {exc})")
    return PhotoLoaded(request, path, loaded, rgb8, levels, time.perf_counter() - t0)


def bgra_to_pixmap(bgra: np.ndarray, alpha: bool = False) -> QPixmap:
    """GUI thread only: a QPixmap (device pixel ratio 1) from BGRA uint8 pixels; with `alpha`, the A channel
    is premultiplied opacity (a partly rendered tile: 0 where nothing is rendered yet), else it is ignored."""
    arr = np.ascontiguousarray(bgra)
    h, w = arr.shape[:2]
    fmt = QImage.Format.Format_ARGB32_Premultiplied if alpha else QImage.Format.Format_RGB32
    image = QImage(arr.data, w, h, w * 4, fmt)
    pixmap = QPixmap.fromImage(image)  # copies, so `arr` may go once this returns
    return pixmap


@dataclass
class Photo:
    """The open photo on the GUI thread: its size, identity and preview pyramid as pixmaps."""

    path: Path
    width: int
    height: int
    content: int
    """Identity of what tiles show: bumped for a new photo and for a new model."""
    levels: list[QPixmap]
    loaded: object
    rgb8: np.ndarray

    @classmethod
    def from_event(cls, ev: PhotoLoaded, content: int) -> Photo:
        """GUI thread: turn the loader's arrays into pixmaps."""
        h, w = ev.rgb8.shape[:2]
        return cls(ev.path, w, h, content, [bgra_to_pixmap(a) for a in ev.levels], ev.loaded, ev.rgb8)

    def thumbnail(self, max_side: int) -> QPixmap:
        """The smallest pyramid level at least `max_side` pixels on its longer side (or the largest)."""
        for pm in reversed(self.levels):
            if max(pm.width(), pm.height()) >= max_side:
                return pm
        return self.levels[0]
