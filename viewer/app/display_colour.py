"""Colour-managed display: a photo with an embedded ICC profile is shown converted to sRGB.

Scanners and raw converters often write wide-gamut profiles (ProPhoto RGB, Adobe RGB); shown as raw
numbers such a photo looks dull. LittleCMS (through Pillow's ImageCms) converts what is *shown* (the
preview pyramid, the canvas tiles, compare tiles, swatches); the model and every export keep working on
the photo's own values and keep its profile. An untagged photo is taken as sRGB, and a profile that
converts like sRGB is not converted at all. A damaged or unusable profile falls back to sRGB with one
notice, and the photo still opens.

No Qt: tiles are converted in the worker threads, before they reach the GUI. Transforms are built once
per profile (cached) with LittleCMS's one-pixel cache off, so two workers may use one at the same time.
"""

from __future__ import annotations

import functools
import io
import logging

import numpy as np
from PIL import Image, ImageCms

log = logging.getLogger(__name__)

# The rendering intent ImageCms uses by default (matrix profiles convert colorimetrically), and LittleCMS's
# cmsFLAGS_NOCACHE: no one-pixel cache, so one transform may run in two threads at once.
try:
    PERCEPTUAL = ImageCms.Intent.PERCEPTUAL
    NOCACHE = ImageCms.Flags.NOCACHE
except AttributeError:  # pragma: no cover - Pillow before the enums, where plain numbers are taken
    PERCEPTUAL, NOCACHE = 0, 0x0040  # type: ignore[assignment]
IDENTITY_TOLERANCE = 1
"""A profile whose conversion moves no colour of a test grid by more than this is treated as sRGB."""


class DisplayTransform:
    """Converts the photo's 8-bit values to sRGB for the screen. Thread-safe; keeps no per-call state."""

    def __init__(self, transform: ImageCms.ImageCmsTransform, grey: bool, name: str) -> None:
        self._transform = transform
        self.grey = grey
        """A grey profile: the photo's grey (replicated to RGB by the loader) is converted from channel 0."""
        self.name = name

    def rgb(self, rgb8: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) in the photo's colour space -> uint8 (H, W, 3) in sRGB (a new array)."""
        a = np.asarray(rgb8, dtype=np.uint8)
        h, w = a.shape[:2]
        if h == 0 or w == 0:
            return a.copy()
        if self.grey:
            im = Image.fromarray(np.ascontiguousarray(a[..., 0]), "L")
        else:
            im = Image.fromarray(np.ascontiguousarray(a[..., :3]), "RGB")
        out = ImageCms.applyTransform(im, self._transform)
        assert out is not None
        return np.asarray(out, dtype=np.uint8).reshape(h, w, 3)

    def bgra(self, bgra: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 4) BGRA (as the canvas's QImages hold it) -> sRGB BGRA, the 4th channel kept."""
        out = np.empty_like(bgra)
        out[..., 2::-1] = self.rgb(bgra[..., 2::-1])
        out[..., 3] = bgra[..., 3]
        return out


def _name(profile: ImageCms.ImageCmsProfile) -> str:
    try:
        return (ImageCms.getProfileDescription(profile) or "").strip() or "embedded profile"
    except Exception:
        return "embedded profile"


def _is_identity(t: DisplayTransform) -> bool:
    """Whether the conversion leaves a 16 x 16 x 16 grid of colours (within the tolerance) unchanged."""
    v = np.linspace(0, 255, 16).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1).reshape(64, 64, 3)
    if t.grey:
        grid = np.repeat(grid[..., :1], 3, axis=2)
    diff = np.abs(t.rgb(grid).astype(int) - grid.astype(int))
    return int(diff.max()) <= IDENTITY_TOLERANCE


@functools.lru_cache(maxsize=8)
def display_transform(icc: bytes | None) -> tuple[DisplayTransform | None, str | None]:
    """For a photo's embedded profile: (the conversion to sRGB, or None when none is needed) and a notice
    for the person when the profile cannot be used (the photo is then shown as sRGB)."""
    if not icc:
        return None, None
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = src.profile.xcolor_space.strip().upper()
        if space not in ("RGB", "GRAY"):
            return None, (
                f"The photo's colour profile is for {space} colour, not for its RGB pixels: it is shown as sRGB."
            )
        grey = space == "GRAY"
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        transform = ImageCms.buildTransform(
            src,
            srgb,
            "L" if grey else "RGB",
            "RGB",
            renderingIntent=PERCEPTUAL,
            flags=NOCACHE,
        )
        t = DisplayTransform(transform, grey, _name(src))
        return (None if _is_identity(t) else t), None
    except Exception as exc:  # a damaged profile must never keep the photo from opening
        log.info("unusable ICC profile: %s", exc)
        return None, "The photo's colour profile is damaged or unreadable: it is shown as sRGB."
