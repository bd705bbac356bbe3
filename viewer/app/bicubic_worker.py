"""The compare worker: tiles of the same grid as LIIF's, for the compare view (Pillow; no torch).

It resamples the photo with bicubic interpolation, or shows its source pixels as they are (nearest
neighbour: each screen pixel takes the photo pixel under its centre), so a person can see what the scan
really holds next to what LIIF makes of it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from viewer.app.messages import CompareMethod, TileKind
from viewer.app.tile_thread import Emit, Running, TileThread
from viewer.errors import Cancelled

if TYPE_CHECKING:
    from viewer.app.planning import TileSpec

EDGE_PAD = 2
"""The photo is resampled as if it had this many edge-replicated pixels on each side (LIIF's tiles reach as
far past the photo's edge), and no farther."""


def source_tile(rgb8: np.ndarray, spec: TileSpec, method: CompareMethod = "bicubic") -> np.ndarray:
    """Pillow's bicubic (or nearest) resample of a tile's window from the photo `rgb8` (H, W, 3 uint8; or
    uint16, whose crop is then made 8-bit as the screen shows it, `display_8bit`), with
    LIIF's pixel-centre convention (output pixel c samples the source point x + (c + 0.5)·w/out_w): RGB
    uint8 (rows, cols, 3).

    It resamples only a crop: the window's box plus the filter's reach (2 source pixels, times the scale
    when shrinking, and a pixel more), edge-replicated where it passes the photo's edge by up to `EDGE_PAD`.
    So a 100 MP photo needs no padded copy of itself (300 MB per copy) for the compare view and the
    difference view. The pixels are those of resampling such a padded copy: exactly for nearest, within one
    level for bicubic, whose filter Pillow places from the box's corner, rounded differently in the crop's
    coordinates (tests/app/test_inspect_mode.py).
    """
    from PIL import Image

    h, w = rgb8.shape[:2]
    p = EDGE_PAD
    x, y, bw, bh = spec.rect
    r0, c0, r1, c1 = spec.window
    sx, sy = bw / spec.out_w, bh / spec.out_h
    # The window's box in the padded photo's pixels, clipped to it.
    bx0 = max(0.0, x + c0 * sx + p)
    by0 = max(0.0, y + r0 * sy + p)
    bx1 = min(float(w + 2 * p), x + c1 * sx + p)
    by1 = min(float(h + 2 * p), y + r1 * sy + p)
    reach_x, reach_y = 2.0 * max(1.0, sx) + 1.0, 2.0 * max(1.0, sy) + 1.0
    ix0, ix1 = max(0, math.floor(bx0 - reach_x)), min(w + 2 * p, math.ceil(bx1 + reach_x))
    iy0, iy1 = max(0, math.floor(by0 - reach_y)), min(h + 2 * p, math.ceil(by1 + reach_y))
    rows = np.clip(np.arange(iy0, iy1) - p, 0, h - 1)
    cols = np.clip(np.arange(ix0, ix1) - p, 0, w - 1)
    part = rgb8[rows[:, None], cols[None, :]]
    if part.dtype != np.uint8:  # a 16-bit photo's own pixels: the crop as the screen shows it
        from viewer.engine.imageio import display_8bit

        part = display_8bit(part)
    crop = Image.fromarray(np.ascontiguousarray(part), "RGB")
    resample = Image.Resampling.NEAREST if method == "nearest" else Image.Resampling.BICUBIC
    out = crop.resize((c1 - c0, r1 - r0), resample, box=(bx0 - ix0, by0 - iy0, bx1 - ix0, by1 - iy0))
    return np.asarray(out, dtype=np.uint8)


class BicubicWorker(TileThread):
    """Bicubic or nearest-neighbour tiles of the same grid as LIIF's, for the compare view (Pillow; no
    torch, fast)."""

    kind: TileKind = "bicubic"

    def __init__(self, emit: Emit) -> None:
        super().__init__(emit, "liif-bicubic")
        self._rgb8: np.ndarray | None = None
        self._content = -1
        self._method: CompareMethod = "bicubic"

    def set_method(self, method: CompareMethod) -> None:
        """GUI thread: resample with `method` from the next tile on (the view drops the older tiles)."""
        with self._cond:
            self._method = method

    @property
    def method(self) -> CompareMethod:
        with self._cond:
            return self._method

    def set_source(self, content: int, rgb8: np.ndarray) -> None:
        """Use `rgb8` (uint8 H x W x 3, never modified) for photo `content` (called from the GUI thread;
        cheap: tiles are resampled from crops of it, `source_tile`)."""
        with self._cond:
            self._rgb8 = rgb8
            self._content = content
            self._cond.notify_all()

    def retag(self, content: int) -> None:
        """The same photo under a new content id (the model changed; bicubic pixels did not)."""
        with self._cond:
            self._content = content
            self._cond.notify_all()

    def _tiles_ready_locked(self) -> bool:
        req = self._tiles.request
        return self._rgb8 is not None and req is not None and req.content == self._content

    def _render(self, run: Running) -> np.ndarray:
        """Worker thread: the tile's `source_tile` as BGRA."""
        with self._cond:
            method, rgb8 = self._method, self._rgb8
        if rgb8 is None or run.token.cancelled:
            raise Cancelled()
        rgb = source_tile(rgb8, run.spec, method)
        bgra = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
        bgra[..., 0] = rgb[..., 2]
        bgra[..., 1] = rgb[..., 1]
        bgra[..., 2] = rgb[..., 0]
        bgra[..., 3] = 255
        return bgra
