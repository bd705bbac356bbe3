"""Print sharpening: an unsharp mask in output pixels, sized to the output's DPI (no Qt, no torch).

A print softens what the file holds (ink spreads into the paper, most on matte), so print workflows
sharpen the final pixels for the medium. `--sharpen MEDIUM[:STRENGTH]` picks one row of this table; the
filter runs on the output after resampling, band by band, with a halo of rows so bands join seamlessly.

The filter, per channel on the output's values in [0, 1]:

    blur = Gaussian(out, sigma = r)                (kernel cut at 3·r, edges mirrored)
    d    = out − blur
    out' = clip(out + a·d, 0, 1)  where |d| ≥ t,   else out unchanged

with the radius r = k·DPI/300 output pixels (DPI: the one recorded in the file, 300 when none is), and
never under 0.5 px:

    medium   k (px at 300 DPI)   amount a: low / standard / high   threshold t
    screen   0.5                 0.35 / 0.60 / 0.90                1/255
    matte    1.2                 0.60 / 1.00 / 1.50                2/255
    glossy   0.8                 0.45 / 0.75 / 1.10                2/255

Matte paper spreads ink most, so it gets the widest radius and the most amount; the threshold leaves
film grain and flat skies alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from viewer.errors import ArgumentError

MEDIA = ("screen", "matte", "glossy")
STRENGTHS = ("low", "standard", "high")

RADIUS_AT_300_DPI = {"screen": 0.5, "matte": 1.2, "glossy": 0.8}
"""k: the radius in output pixels at 300 DPI, per medium (it scales with the DPI)."""
AMOUNT = {
    "screen": (0.35, 0.60, 0.90),
    "matte": (0.60, 1.00, 1.50),
    "glossy": (0.45, 0.75, 1.10),
}
"""a: the amount per medium, for low, standard and high."""
THRESHOLD = {"screen": 1 / 255, "matte": 2 / 255, "glossy": 2 / 255}
"""t: differences below this are left alone (grain, smooth gradients)."""
MIN_RADIUS = 0.5
REFERENCE_DPI = 300.0
"""The DPI the radii are given at, and the one assumed when the output records none."""


@dataclass(frozen=True)
class Sharpen:
    """What to sharpen for: the medium (screen, matte, glossy) and the strength (low, standard, high)."""

    medium: str
    strength: str = "standard"

    def __post_init__(self) -> None:
        if self.medium not in MEDIA:
            raise ArgumentError(f"invalid sharpening medium {self.medium!r}: use {', '.join(MEDIA)}")
        if self.strength not in STRENGTHS:
            raise ArgumentError(f"invalid sharpening strength {self.strength!r}: use {', '.join(STRENGTHS)}")

    def label(self) -> str:
        """'matte:standard', as `--sharpen` takes it."""
        return f"{self.medium}:{self.strength}"


def parse_sharpen(text: str) -> Sharpen | None:
    """'matte', 'glossy:high', 'screen:low'; 'none' or 'off' -> None. Raises ArgumentError otherwise."""
    t = text.strip().lower()
    if t in ("none", "off", ""):
        return None
    medium, colon, strength = t.partition(":")
    if medium not in MEDIA or (colon and strength not in STRENGTHS):
        raise ArgumentError(
            f"invalid --sharpen {text!r}: use screen, matte or glossy, optionally with :low, :standard or :high "
            "(e.g. matte:high), or none"
        )
    return Sharpen(medium, strength or "standard")


@dataclass(frozen=True)
class UnsharpMask:
    """The filter for one output: radius (sigma, output px), amount and threshold (in [0, 1] units)."""

    radius: float
    amount: float
    threshold: float

    @classmethod
    def for_output(cls, sharpen: Sharpen, dpi: float | None) -> UnsharpMask:
        """The table's row for `sharpen`, its radius scaled to `dpi` (300 when None)."""
        scale = (dpi if dpi is not None and dpi > 0 else REFERENCE_DPI) / REFERENCE_DPI
        radius = max(MIN_RADIUS, RADIUS_AT_300_DPI[sharpen.medium] * scale)
        amount = AMOUNT[sharpen.medium][STRENGTHS.index(sharpen.strength)]
        return cls(radius, amount, THRESHOLD[sharpen.medium])

    @property
    def halo(self) -> int:
        """Rows (and columns) on each side that one output pixel's result depends on."""
        return math.ceil(3 * self.radius)

    def kernel(self) -> np.ndarray:
        """The normalised 1-D Gaussian, 2·halo + 1 taps (float32)."""
        h = self.halo
        x = np.arange(-h, h + 1, dtype=np.float64)
        k = np.exp(-0.5 * (x / self.radius) ** 2)
        return (k / k.sum()).astype(np.float32)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The whole image (H, W, C) or (H, W) float in [0, 1], sharpened."""
        return self.apply_rows(image, 0, 0, image.shape[0], image.shape[0])

    def apply_rows(self, block: np.ndarray, top: int, r0: int, r1: int, height: int) -> np.ndarray:
        """Rows [r0, r1) of an image `height` rows tall, sharpened, from `block`, which holds its rows
        [top, top + len(block)) and must reach `halo` rows beyond [r0, r1) wherever the image does.

        A band computed this way equals the same rows of the whole image filtered at once: the image's own
        top and bottom edges are mirrored, any other row comes from the block."""
        h = self.halo
        bottom = top + block.shape[0]
        if not (top <= r0 <= r1 <= bottom) or top > max(0, r0 - h) or bottom < min(height, r1 + h):
            raise ValueError(f"rows {r0}..{r1} need rows {r0 - h}..{r1 + h} of {height}, got {top}..{bottom}")
        x = np.asarray(block, dtype=np.float32)
        squeeze = x.ndim == 2
        if squeeze:
            x = x[..., None]
        # Rows r0 - h .. r1 + h, mirrored past the image's edges (symmetric: the edge row repeats).
        lo, hi = r0 - h, r1 + h
        take = np.arange(lo, hi)
        take = np.where(take < 0, -take - 1, take)
        take = np.where(take >= height, 2 * height - take - 1, take)
        take = np.clip(take, 0, height - 1)  # images shorter than the halo: mirror again at the far edge
        rows = x[take - top]
        k = self.kernel()
        n = r1 - r0
        vert = np.zeros((n, *rows.shape[1:]), np.float32)
        for i, w in enumerate(k):
            vert += w * rows[i : i + n]
        w_px = x.shape[1]
        cols = np.arange(-h, w_px + h)
        cols = np.where(cols < 0, -cols - 1, cols)
        cols = np.where(cols >= w_px, 2 * w_px - cols - 1, cols)
        cols = np.clip(cols, 0, w_px - 1)
        padded = vert[:, cols]
        blur = np.zeros_like(vert)
        for i, w in enumerate(k):
            blur += w * padded[:, i : i + w_px]
        centre = x[r0 - top : r1 - top]
        d = centre - blur
        out = np.where(np.abs(d) >= self.threshold, centre + self.amount * d, centre)
        out = np.clip(out, 0.0, 1.0).astype(np.float32)
        return out[..., 0] if squeeze else out
