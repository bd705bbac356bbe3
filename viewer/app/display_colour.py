"""Colour-managed display: a photo is shown converted to sRGB, or to the display's profile.

Scanners and raw converters often write wide-gamut profiles (ProPhoto RGB, Adobe RGB); shown as raw
numbers such a photo looks dull. LittleCMS (through Pillow's ImageCms) converts what is *shown* (the
preview pyramid, the canvas tiles, compare tiles, swatches); the model and every export keep working on
the photo's own values and keep its profile. An untagged photo is taken as sRGB, and a profile that
converts like sRGB is not converted at all. A damaged or unusable profile falls back to sRGB with one
notice, and the photo still opens.

The target is sRGB, or the display's own profile where the platform says what it is
(`viewer.app.display_profile`, chosen in View ▸ Display Colour): then untagged photos are converted too,
from sRGB. A damaged display profile falls back to sRGB with one notice.

No Qt: tiles are converted in the worker threads, before they reach the GUI. Transforms are built once
per profile (cached) with LittleCMS's one-pixel cache off, so two workers may use one at the same time.
"""

from __future__ import annotations

import functools
import io
import logging
from dataclasses import dataclass

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
    """Converts the photo's 8-bit values to the display's colours (sRGB or the display's profile).
    Thread-safe; keeps no per-call state."""

    def __init__(
        self, transform: ImageCms.ImageCmsTransform, grey: bool, name: str, target: str = "sRGB"
    ) -> None:
        self._transform = transform
        self.grey = grey
        """A grey profile: the photo's grey (replicated to RGB by the loader) is converted from channel 0."""
        self.name = name
        """The photo's profile ("sRGB" for an untagged photo)."""
        self.target = target
        """What it converts to: "sRGB", or the display profile's description."""

    def rgb(self, rgb8: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) in the photo's colour space -> uint8 (H, W, 3) for the display (a new array)."""
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
        """uint8 (H, W, 4) BGRA (as the canvas's QImages hold it) -> the display's BGRA, the 4th channel kept."""
        out = np.empty_like(bgra)
        out[..., 2::-1] = self.rgb(bgra[..., 2::-1])
        out[..., 3] = bgra[..., 3]
        return out


def _name(profile: ImageCms.ImageCmsProfile, default: str = "embedded profile") -> str:
    try:
        return (ImageCms.getProfileDescription(profile) or "").strip() or default
    except Exception:
        return default


def _is_identity(t: DisplayTransform) -> bool:
    """Whether the conversion leaves a 16 x 16 x 16 grid of colours (within the tolerance) unchanged."""
    v = np.linspace(0, 255, 16).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(v, v, v, indexing="ij"), axis=-1).reshape(64, 64, 3)
    if t.grey:
        grid = np.repeat(grid[..., :1], 3, axis=2)
    diff = np.abs(t.rgb(grid).astype(int) - grid.astype(int))
    return int(diff.max()) <= IDENTITY_TOLERANCE


@dataclass(frozen=True)
class DisplayTarget:
    """The display's own profile, what is shown is converted to instead of sRGB. A value (its bytes
    compare), so it keys the transform cache: another target can never reuse a conversion."""

    icc: bytes
    name: str


def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _photo_profile(icc: bytes | None) -> tuple[ImageCms.ImageCmsProfile | None, bool, str | None]:
    """The photo's usable profile (None: take it as sRGB), whether it is grey, and a notice if unusable."""
    if not icc:
        return None, False, None
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = src.profile.xcolor_space.strip().upper()
    except Exception as exc:  # a damaged profile must never keep the photo from opening
        log.info("unusable ICC profile: %s", exc)
        return None, False, "The photo's colour profile is damaged or unreadable: it is shown as sRGB."
    if space not in ("RGB", "GRAY"):
        note = (
            f"The photo's colour profile is for {space} colour, not for its RGB pixels: it is shown as sRGB."
        )
        return None, False, note
    return src, space == "GRAY", None


def _build(
    src: ImageCms.ImageCmsProfile | None, grey: bool, target: DisplayTarget | None
) -> DisplayTransform | None:
    """The conversion from `src` (None: sRGB) to `target` (None: sRGB), or None when it changes nothing.
    Raises when LittleCMS cannot build it."""
    dst = _srgb() if target is None else ImageCms.ImageCmsProfile(io.BytesIO(target.icc))
    transform = ImageCms.buildTransform(
        src if src is not None else _srgb(),
        dst,
        "L" if grey else "RGB",
        "RGB",
        renderingIntent=PERCEPTUAL,
        flags=NOCACHE,
    )
    name = _name(src) if src is not None else "sRGB"
    t = DisplayTransform(transform, grey, name, target.name if target is not None else "sRGB")
    return None if _is_identity(t) else t


@functools.lru_cache(maxsize=8)
def display_transform(
    icc: bytes | None, target: DisplayTarget | None = None
) -> tuple[DisplayTransform | None, str | None]:
    """For a photo's embedded profile (None: untagged, taken as sRGB) and the display's profile (None:
    sRGB): (the conversion, or None when none is needed) and a notice for the person when the photo's
    profile cannot be used (the photo is then taken as sRGB). Cached per (profile, target), so a new
    target never reuses a conversion built for another."""
    src, grey, notice = _photo_profile(icc)
    if src is None and target is None:
        return None, notice
    try:
        return _build(src, grey, target), notice
    except Exception as exc:  # a profile LittleCMS reads but cannot convert with
        log.info("unusable ICC profile: %s", exc)
    damaged = "The photo's colour profile is damaged or unreadable: it is shown as sRGB."
    if src is None:  # sRGB to the display failed: display_target checked that, so this is unlikely
        return None, notice
    try:
        return _build(None, False, target), damaged
    except Exception:
        return None, damaged


def display_target(icc: bytes | None) -> tuple[DisplayTarget | None, str | None]:
    """The display's profile as a conversion target, or None for sRGB, and a notice when the platform
    gives a profile that cannot be used (damaged, or not for RGB). A profile that converts like sRGB
    is taken as sRGB, so an sRGB screen costs no conversion of untagged photos."""
    if icc is None:
        return None, None
    fallback = "photos are shown in sRGB"
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip().upper()
        if space != "RGB":
            return None, f"The display's colour profile is for {space} colour, not RGB: {fallback}."
        target = DisplayTarget(icc, _name(profile, "display profile"))
        t = _build(None, False, target)
    except Exception as exc:
        log.info("unusable display profile: %s", exc)
        return None, f"The display's colour profile is damaged or unreadable: {fallback}."
    return (None if t is None else target), None
