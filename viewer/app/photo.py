"""Opening a photo: decode and build its preview pyramid off the GUI thread, then wrap it for painting.

The pyramid (each level half the previous, box-filtered) is what the canvas paints before LIIF tiles
arrive and at or below 1x: a plain high-quality downscale of the source, never a model output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtGui import QImage, QPixmap

from viewer.app.messages import DisplayConverted, Notice, PhotoFailed, PhotoLoaded
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


def build_pyramid(
    rgb8: np.ndarray, min_side: int = PYRAMID_MIN_SIDE, display: Any = None
) -> tuple[np.ndarray, ...]:
    """Levels of BGRA uint8, each half the previous (box filter), down to about `min_side` pixels.

    With a `display` transform each level is reduced from the photo's own values, then converted, as the
    tiles are rendered, then converted: what is shown is the conversion of what would be shown."""
    from PIL import Image

    def shown(a: np.ndarray) -> np.ndarray:
        if display is None:
            return rgb8_to_bgra(a)
        out = np.empty((*a.shape[:2], 4), np.uint8)
        step = max(1, (1 << 20) // max(1, a.shape[1]))  # in bands: no full-size temporaries
        for y in range(0, a.shape[0], step):
            out[y : y + step] = rgb8_to_bgra(display.rgb(a[y : y + step]))
        return out

    levels = [shown(rgb8)]
    im = Image.fromarray(rgb8, "RGB")
    while max(im.width, im.height) > min_side and min(im.width, im.height) >= 2:
        im = im.reduce(2)
        levels.append(shown(np.asarray(im)))
    return tuple(levels)


def load_photo(
    request: int, path: Path, max_megapixels: float = MAX_MEGAPIXELS, target: Any = None
) -> PhotoLoaded | PhotoFailed:
    """Loader thread: decode `path` and build its pyramid, converted for the screen (to sRGB, or to the
    `DisplayTarget` `target`; `viewer.app.display_colour`); every failure becomes a PhotoFailed."""
    from viewer.app.display_colour import display_transform
    from viewer.engine.imageio import load_image

    t0 = time.perf_counter()
    try:
        loaded = load_image(path, max_megapixels=max_megapixels)
        rgb8 = loaded.rgb8()
        display, notice = display_transform(loaded.icc, target)
        levels = build_pyramid(rgb8, display=display)
    except ViewerError as exc:
        return PhotoFailed(request, path, str(exc))
    except MemoryError:
        return PhotoFailed(request, path, f"{path}: not enough memory to open this photo")
    except Exception as exc:  # anything else is still a message, never a crash
        return PhotoFailed(request, path, f"{path}: cannot open ({type(exc).__name__}: {exc})")
    seconds = time.perf_counter() - t0
    return PhotoLoaded(request, path, loaded, rgb8, levels, seconds, display, notice, target)


def convert_for_display(
    request: int, icc: bytes | None, rgb8: np.ndarray, target: Any
) -> DisplayConverted | Notice:
    """A worker thread: the open photo's transform and pyramid for another display target (None: sRGB),
    from its own values; nothing is decoded again. A failure (memory) becomes a Notice."""
    from viewer.app.display_colour import display_transform

    try:
        display, _ = display_transform(icc, target)  # the photo's own notice was given when it opened
        return DisplayConverted(request, target, display, build_pyramid(rgb8, display=display))
    except Exception as exc:
        return Notice(f"Cannot convert the photo for the display ({type(exc).__name__}: {exc}).")


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
    """The preview pyramid, in the display's colours."""
    loaded: object
    rgb8: np.ndarray
    """The photo's own values at 8 bits (not converted for display)."""
    display: Any = None
    """The photo's `DisplayTransform` to the display's colours, or None when its values are shown as
    they are."""

    @classmethod
    def from_event(cls, ev: PhotoLoaded, content: int) -> Photo:
        """GUI thread: turn the loader's arrays into pixmaps."""
        h, w = ev.rgb8.shape[:2]
        levels = [bgra_to_pixmap(a) for a in ev.levels]
        return cls(ev.path, w, h, content, levels, ev.loaded, ev.rgb8, ev.display)

    def display_rgb(self, rgb8: np.ndarray) -> np.ndarray:
        """Part of the photo's values (uint8 RGB) as the screen should show them."""
        return rgb8 if self.display is None else self.display.rgb(rgb8)

    def thumbnail(self, max_side: int) -> QPixmap:
        """The smallest pyramid level at least `max_side` pixels on its longer side (or the largest)."""
        for pm in reversed(self.levels):
            if max(pm.width(), pm.height()) >= max_side:
                return pm
        return self.levels[0]
