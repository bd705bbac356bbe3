"""Print sizes: presets, parsing (`8x10in`, `20x25cm`, `A4`, `1920x1080`), DPI to pixels, and fitting a
source region to an output box. Pure functions; every bad value is an `ArgumentError` a person can act on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from viewer.errors import ArgumentError

#: How many of each unit make an inch (1 in = 25.4 mm exactly, by definition).
UNIT_PER_INCH = {"in": 1.0, "cm": 2.54, "mm": 25.4}

FIT_MODES = ("crop", "fit", "stretch")

#: The DPI used for a print size when none is given.
DEFAULT_DPI = 300.0

#: Largest DPI accepted; far beyond any printer, it only rejects typing mistakes.
MAX_DPI = 100_000.0


class PrintSize(NamedTuple):
    """A physical size, width x height in `unit` ('in', 'cm' or 'mm')."""

    w: float
    h: float
    unit: str

    def inches(self) -> tuple[float, float]:
        k = UNIT_PER_INCH[self.unit]
        return self.w / k, self.h / k

    def label(self) -> str:
        return f"{self.w:g}x{self.h:g}{self.unit}"


class PixelSize(NamedTuple):
    """An exact output size in pixels."""

    w: int
    h: int


#: Common photo print sizes (inches, portrait) and ISO A sizes (millimetres, exact).
PRESETS: dict[str, PrintSize] = {
    "4x6in": PrintSize(4, 6, "in"),
    "5x7in": PrintSize(5, 7, "in"),
    "8x10in": PrintSize(8, 10, "in"),
    "11x14in": PrintSize(11, 14, "in"),
    "16x20in": PrintSize(16, 20, "in"),
    "24x36in": PrintSize(24, 36, "in"),
    "A4": PrintSize(210, 297, "mm"),
    "A3": PrintSize(297, 420, "mm"),
    "A2": PrintSize(420, 594, "mm"),
}

_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_PRINT_RE = re.compile(rf"^{_NUM}\s*[x×]\s*{_NUM}\s*(in|inch|inches|cm|mm)?$", re.IGNORECASE)
_PIXEL_RE = re.compile(r"^(\d+)\s*[x×]\s*(\d+)$", re.IGNORECASE)
_UNIT_ALIASES = {"in": "in", "inch": "in", "inches": "in", "cm": "cm", "mm": "mm"}


def parse_print_size(text: str) -> PrintSize:
    """Parse '8x10in', '20x25cm', '210x297mm', '8.5x11in' or a preset name ('A4', '8x10in'); case and
    spaces do not matter. A size without a unit is refused rather than guessed."""
    s = " ".join(str(text).split())
    for name, size in PRESETS.items():
        if s.lower() == name.lower():
            return size
    m = _PRINT_RE.match(s)
    if m is None:
        raise ArgumentError(
            f"cannot parse print size '{text}': expected e.g. 8x10in, 20x25cm, 210x297mm or A4"
        )
    if m.group(3) is None:
        raise ArgumentError(
            f"print size '{text}' has no unit: add in, cm or mm, e.g. {m.group(1)}x{m.group(2)}in"
        )
    w, h = float(m.group(1)), float(m.group(2))
    if not (w > 0 and h > 0 and math.isfinite(w) and math.isfinite(h)):
        raise ArgumentError(f"print size '{text}' must have a positive width and height")
    return PrintSize(w, h, _UNIT_ALIASES[m.group(3).lower()])


def parse_pixel_size(text: str) -> PixelSize:
    """Parse 'WxH' in whole pixels, e.g. '1920x1080'."""
    s = " ".join(str(text).split())
    m = _PIXEL_RE.match(s)
    if m is None:
        raise ArgumentError(
            f"cannot parse pixel size '{text}': expected WIDTHxHEIGHT in pixels, e.g. 1920x1080"
        )
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise ArgumentError(f"pixel size '{text}' must have a positive width and height")
    return PixelSize(w, h)


def parse_dpi(value: str | float) -> float:
    """A resolution in dots per inch: a positive finite number up to MAX_DPI."""
    try:
        dpi = float(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"invalid DPI '{value}': expected a number such as 300") from None
    if not (math.isfinite(dpi) and 0 < dpi <= MAX_DPI):
        raise ArgumentError(f"invalid DPI '{value}': must be greater than 0 and at most {MAX_DPI:g}")
    return dpi


class Length(NamedTuple):
    """A border or bleed width: `value` in `unit` ('in', 'cm', 'mm' or 'px')."""

    value: float
    unit: str

    def pixels(self, dpi: float | None) -> int:
        """Whole pixels at `dpi` (rounded half up); a physical length needs a DPI."""
        if self.unit == "px":
            return round_half_up(self.value)
        if dpi is None:
            raise ArgumentError(
                f"a border or bleed of {self.label()} needs a DPI; give it in px or set a DPI"
            )
        return round_half_up(self.value * parse_dpi(dpi) / UNIT_PER_INCH[self.unit])

    def label(self) -> str:
        return f"{self.value:g}{self.unit}"


_LENGTH_RE = re.compile(rf"^{_NUM}\s*(in|inch|inches|cm|mm|px)$", re.IGNORECASE)


def parse_length(text: str, what: str = "length") -> Length:
    """Parse a border or bleed width: '5mm', '0.25in', '1cm', '40px' (zero allowed, a unit required)."""
    s = " ".join(str(text).split())
    m = _LENGTH_RE.match(s)
    if m is None:
        raise ArgumentError(f"cannot parse {what} '{text}': expected e.g. 5mm, 0.25in, 1cm or 40px")
    unit = m.group(2).lower()
    value = float(m.group(1))
    if not math.isfinite(value) or value < 0:
        raise ArgumentError(f"{what} '{text}' must be zero or more")
    return Length(value, "px" if unit == "px" else _UNIT_ALIASES[unit])


class Region(NamedTuple):
    """A rectangle of the source photo in pixels: left, top, width, height."""

    x: float
    y: float
    w: float
    h: float


def parse_region(text: str) -> Region:
    """Parse 'X,Y,W,H' (source pixels; decimals allowed). Whether it lies inside the photo is checked
    when the export is planned."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise ArgumentError(
            f"cannot parse region '{text}': expected X,Y,W,H in source pixels, e.g. 0,0,640,480"
        ) from None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ArgumentError(
            f"invalid region '{text}': width and height must be positive and all values finite"
        )
    return Region(x, y, w, h)


def parse_anchor(text: str) -> tuple[float, float]:
    """Parse 'X,Y' (each 0 to 1): which part of the region a crop keeps, 0,0 its top-left corner."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        ax, ay = (float(p) for p in parts)
    except ValueError:
        raise ArgumentError(
            f"cannot parse anchor '{text}': expected X,Y between 0 and 1, e.g. 0.5,0 for the top middle"
        ) from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in (ax, ay)):
        raise ArgumentError(f"invalid anchor '{text}': both values must be between 0 and 1")
    return ax, ay


def parse_scale(value: str | float) -> float:
    """A magnification factor: a positive finite number (3.7 is fine)."""
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ArgumentError(f"invalid scale '{value}': expected a number such as 4 or 3.7") from None
    if not (math.isfinite(s) and s > 0):
        raise ArgumentError(f"invalid scale '{value}': must be a positive finite number")
    return s


def scaled_size(w: int, h: int, scale: float) -> PixelSize:
    """The output size of a whole w x h image at `scale`: round(w*scale) x round(h*scale), halves up."""
    s = parse_scale(scale)
    ow, oh = round_half_up(w * s), round_half_up(h * s)
    if ow < 1 or oh < 1:
        raise ArgumentError(f"scale {s:g} makes the {w}x{h} image {ow}x{oh} pixels: too small")
    return PixelSize(ow, oh)


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() goes to even), tolerant of float noise."""
    return math.floor(x + 0.5 + 1e-9)


def print_pixels(w: float, h: float, unit: str, dpi: float) -> tuple[int, int]:
    """Pixels needed to print w x h `unit` at `dpi`, each rounded to the nearest integer."""
    if unit not in UNIT_PER_INCH:
        raise ArgumentError(f"unknown unit '{unit}': use in, cm or mm")
    dpi = parse_dpi(dpi)
    k = UNIT_PER_INCH[unit]
    return round_half_up(w * dpi / k), round_half_up(h * dpi / k)


def match_orientation(w: float, h: float, region_w: float, region_h: float) -> tuple[float, float]:
    """Swap a print size's sides so its orientation (portrait or landscape) matches the region's; a square
    region or a square print is left as given."""
    if (region_w > region_h and w < h) or (region_w < region_h and w > h):
        return h, w
    return w, h


@dataclass(frozen=True)
class Fit:
    """Where in the region to sample (offsets and size, in source pixels) and the output size."""

    x: float
    y: float
    w: float
    h: float
    out_w: int
    out_h: int


def fit_region(
    region_w: float,
    region_h: float,
    out_w: int,
    out_h: int,
    mode: str,
    anchor: tuple[float, float] = (0.5, 0.5),
) -> Fit:
    """Map a region onto an out_w x out_h box.

    - crop: the output is exactly the box; the source rectangle shrinks to the box's aspect (crop-to-fill,
      nothing distorted, edges of the region may be lost). `anchor` places it: (0, 0) keeps the region's
      top-left corner, (1, 1) its bottom-right, (0.5, 0.5), the default, centres it;
    - fit: the whole region, undistorted, inside the box: one side equals the box, the other is smaller;
    - stretch: the whole region scaled to exactly the box (distorted when the aspects differ).
    """
    if mode not in FIT_MODES:
        raise ArgumentError(f"unknown fit mode '{mode}': use crop, fit or stretch")
    if not (region_w > 0 and region_h > 0 and out_w > 0 and out_h > 0):
        raise ArgumentError(f"invalid sizes: region {region_w}x{region_h}, output {out_w}x{out_h}")
    if mode == "stretch":
        return Fit(0.0, 0.0, float(region_w), float(region_h), out_w, out_h)
    if mode == "fit":
        s = min(out_w / region_w, out_h / region_h)
        fw = min(out_w, max(1, round_half_up(region_w * s)))
        fh = min(out_h, max(1, round_half_up(region_h * s)))
        return Fit(0.0, 0.0, float(region_w), float(region_h), fw, fh)
    box_aspect = out_w / out_h
    if region_w / region_h > box_aspect:  # region wider than the box: trim the sides
        sw, sh = region_h * box_aspect, float(region_h)
    else:  # region taller: trim top and bottom
        sw, sh = float(region_w), region_w / box_aspect
    ax, ay = (min(1.0, max(0.0, a)) if math.isfinite(a) else 0.5 for a in anchor)
    return Fit((region_w - sw) * ax, (region_h - sh) * ay, sw, sh, out_w, out_h)
