"""Pure viewport geometry and tile planning: no Qt, no torch, only arithmetic.

Coordinates:
- *source* units are the photo's pixels; pixel (0, 0) covers [0, 1) x [0, 1).
- *logical* units are Qt widget coordinates; *device* units are physical screen pixels
  (logical x device pixel ratio).
- At device zoom `zd` (device pixels per source pixel) the photo is a virtual image of
  `ceil(W*zd - 0.5)` x `ceil(H*zd - 0.5)` device pixels; device pixel (r, c) samples source point
  ((c + 0.5)/zd, (r + 0.5)/zd), which is exactly the engine's sampling rule for the rectangle
  (c/zd, r/zd, 1/zd, 1/zd). Tiles are fixed blocks of that virtual image, so a tile rendered alone equals
  the same pixels of a render of the whole viewport.
- The viewport's top-left corner is snapped to a whole device pixel, so settled tiles are blitted 1:1.

Zoom values are canonicalised (10 significant digits) so that zooming in and back out lands on the same
tile level instead of a float-noise neighbour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

TILE = 256
"""Default tile edge in device pixels."""

TILE_BY_DEVICE = {"cpu": 128}
"""Tile edge per compute device type: small on a CPU so the first refined tile arrives quickly, large on
a GPU so each render call is big enough to keep it busy."""


def tile_size_for(device_type: str) -> int:
    """The tile edge (device pixels) to plan with for an engine on `device_type` ('cpu', 'cuda', 'mps')."""
    return TILE_BY_DEVICE.get(device_type, 512)


MAX_ZOOM = 128.0
"""Largest logical zoom (screen pixels per source pixel)."""

ZOOM_STOPS_PER_OCTAVE = 2
"""Keyboard zoom steps snap to 2^(k/2): 100%, 141%, 200%, 283%, ..."""


def canonical_zoom(z: float) -> float:
    """`z` rounded to 10 significant digits, so equal zooms reached by different float paths compare equal."""
    if not (math.isfinite(z) and z > 0):
        raise ValueError(f"zoom must be positive and finite, got {z!r}")
    return float(f"{z:.10g}")


def virtual_size(extent: int, device_zoom: float) -> int:
    """Device pixels of the virtual image along one axis: those whose centre lies inside the photo."""
    return max(0, math.ceil(extent * device_zoom - 0.5))


class TileKey(NamedTuple):
    """One tile: its level (the canonical device zoom it was rendered at) and its grid position."""

    zoom: float
    tx: int
    ty: int


class Range(NamedTuple):
    """A half-open block of tile indices [tx0, tx1) x [ty0, ty1)."""

    tx0: int
    ty0: int
    tx1: int
    ty1: int

    def contains(self, other: Range) -> bool:
        """True if every tile of `other` is in this range (an empty `other` is always contained)."""
        if other.is_empty():
            return True
        return (
            self.tx0 <= other.tx0
            and self.ty0 <= other.ty0
            and other.tx1 <= self.tx1
            and other.ty1 <= self.ty1
        )

    def is_empty(self) -> bool:
        return self.tx1 <= self.tx0 or self.ty1 <= self.ty0

    def n_tiles(self) -> int:
        return 0 if self.is_empty() else (self.tx1 - self.tx0) * (self.ty1 - self.ty0)

    def cells(self) -> list[tuple[int, int]]:
        return [(tx, ty) for ty in range(self.ty0, self.ty1) for tx in range(self.tx0, self.tx1)]


@dataclass(frozen=True)
class Viewport:
    """What the canvas shows: photo size, canvas size (logical px), device pixel ratio, zoom, centre.

    `zoom` is logical pixels per source pixel (100% = 1.0); `cx, cy` is the source point at the canvas
    centre. Immutable: every interaction produces a new value, which is what crosses into requests.
    """

    image_w: int
    image_h: int
    canvas_w: int
    canvas_h: int
    dpr: float = 1.0
    zoom: float = 1.0
    cx: float = 0.0
    cy: float = 0.0

    # -- derived geometry ---------------------------------------------------------------------------
    @property
    def device_zoom(self) -> float:
        """Device pixels per source pixel, canonical: the tile level."""
        return canonical_zoom(self.zoom * self.dpr)

    @property
    def device_size(self) -> tuple[int, int]:
        """Canvas size in device pixels."""
        return max(1, round(self.canvas_w * self.dpr)), max(1, round(self.canvas_h * self.dpr))

    @property
    def virtual_size(self) -> tuple[int, int]:
        """The whole photo's size in device pixels at this zoom."""
        zd = self.device_zoom
        return virtual_size(self.image_w, zd), virtual_size(self.image_h, zd)

    @property
    def origin(self) -> tuple[int, int]:
        """Virtual-image device pixel at the canvas's top-left corner (whole pixels: tiles blit 1:1)."""
        zd = self.device_zoom
        dw, dh = self.device_size
        return round(self.cx * zd - dw / 2), round(self.cy * zd - dh / 2)

    def source_rect(self) -> tuple[float, float, float, float]:
        """The source rectangle (x, y, w, h) the canvas's device pixels sample, in the engine's convention:
        `engine.render(fm, SourceRect(*rect), *device_size)` gives the settled canvas pixels."""
        zd = self.device_zoom
        ox, oy = self.origin
        dw, dh = self.device_size
        return ox / zd, oy / zd, dw / zd, dh / zd

    def screen_to_source(self, lx: float, ly: float) -> tuple[float, float]:
        """Source point under logical canvas position (lx, ly)."""
        zd = self.device_zoom
        ox, oy = self.origin
        return (ox + lx * self.dpr) / zd, (oy + ly * self.dpr) / zd

    def source_to_screen(self, sx: float, sy: float) -> tuple[float, float]:
        """Logical canvas position of source point (sx, sy)."""
        zd = self.device_zoom
        ox, oy = self.origin
        return (sx * zd - ox) / self.dpr, (sy * zd - oy) / self.dpr

    def image_rect_device(self) -> tuple[float, float, float, float]:
        """Where the photo lies on the canvas, in device pixels: (x, y, w, h) of its virtual image."""
        ox, oy = self.origin
        vw, vh = self.virtual_size
        return -ox, -oy, vw, vh

    @property
    def magnification(self) -> float:
        """Screen (device) pixels per source pixel: above 1, LIIF has detail to infer."""
        return self.device_zoom

    @property
    def refinable(self) -> bool:
        """True when a source pixel is larger than a device pixel, the only case where LIIF adds anything.

        At or below 1x a plain high-quality downscale of the source is exact enough and honest.
        """
        return self.device_zoom > 1.0 + 1e-9


# -- zoom and pan -----------------------------------------------------------------------------------------
def fit_zoom(image_w: int, image_h: int, canvas_w: int, canvas_h: int) -> float:
    """Logical zoom at which the whole photo just fits the canvas."""
    if image_w <= 0 or image_h <= 0:
        return 1.0
    return canonical_zoom(max(1e-6, min(max(1, canvas_w) / image_w, max(1, canvas_h) / image_h)))


def min_zoom(vp: Viewport) -> float:
    """The smallest zoom: fit, or 100% when the photo is smaller than the canvas."""
    return min(fit_zoom(vp.image_w, vp.image_h, vp.canvas_w, vp.canvas_h), 1.0)


def clamp_centre(vp: Viewport) -> Viewport:
    """Keep the photo on screen: centred along an axis where it is smaller than the canvas, else no
    empty margin beyond its edges (pan stops at the limits)."""

    def axis(c: float, extent: int, canvas: int) -> float:
        half = canvas / (2 * vp.zoom)
        if extent <= 2 * half:
            return extent / 2
        return min(max(c, half), extent - half)

    cx = axis(vp.cx, vp.image_w, vp.canvas_w)
    cy = axis(vp.cy, vp.image_h, vp.canvas_h)
    return vp if (cx, cy) == (vp.cx, vp.cy) else replace(vp, cx=cx, cy=cy)


def with_zoom(vp: Viewport, zoom: float, anchor: tuple[float, float] | None = None) -> Viewport:
    """Set the zoom (clamped to [min_zoom, MAX_ZOOM]) keeping the source point under `anchor` (logical
    canvas coordinates; default the centre) fixed, then clamp the pan."""
    z = canonical_zoom(min(max(zoom, min_zoom(vp)), MAX_ZOOM))
    ax, ay = anchor if anchor is not None else (vp.canvas_w / 2, vp.canvas_h / 2)
    # Use the unsnapped centre so that repeated anchored zooms do not drift by the snapping.
    sx = vp.cx + (ax - vp.canvas_w / 2) / vp.zoom
    sy = vp.cy + (ay - vp.canvas_h / 2) / vp.zoom
    cx = sx - (ax - vp.canvas_w / 2) / z
    cy = sy - (ay - vp.canvas_h / 2) / z
    return clamp_centre(replace(vp, zoom=z, cx=cx, cy=cy))


def zoom_by(vp: Viewport, factor: float, anchor: tuple[float, float] | None = None) -> Viewport:
    """Multiply the zoom by `factor` about `anchor` (wheel, pinch)."""
    return with_zoom(vp, vp.zoom * factor, anchor)


def step_zoom(zoom: float, steps: int) -> float:
    """The zoom `steps` keyboard stops away (positive: in), snapping an off-stop zoom to the next stop."""
    pos = math.log2(zoom) * ZOOM_STOPS_PER_OCTAVE
    k = math.floor(pos + 1e-9) + steps if steps > 0 else math.ceil(pos - 1e-9) + steps
    return canonical_zoom(2.0 ** (k / ZOOM_STOPS_PER_OCTAVE))


def fit(vp: Viewport) -> Viewport:
    """The whole photo, centred."""
    z = fit_zoom(vp.image_w, vp.image_h, vp.canvas_w, vp.canvas_h)
    return clamp_centre(replace(vp, zoom=z, cx=vp.image_w / 2, cy=vp.image_h / 2))


def pan_by(vp: Viewport, dx: float, dy: float) -> Viewport:
    """Move the view by (dx, dy) logical pixels (positive: the view moves right/down over the photo)."""
    return clamp_centre(replace(vp, cx=vp.cx + dx / vp.zoom, cy=vp.cy + dy / vp.zoom))


def centre_on(vp: Viewport, sx: float, sy: float) -> Viewport:
    """Centre the view on source point (sx, sy) (navigator clicks)."""
    return clamp_centre(replace(vp, cx=sx, cy=sy))


def resized(vp: Viewport, canvas_w: int, canvas_h: int, dpr: float) -> Viewport:
    """The same centre and zoom on a canvas of another size or pixel ratio."""
    return clamp_centre(replace(vp, canvas_w=max(1, canvas_w), canvas_h=max(1, canvas_h), dpr=dpr))


# -- tiles --------------------------------------------------------------------------------------------------
def visible_range(vp: Viewport, tile: int = TILE) -> Range:
    """Tiles of the current level that intersect both the canvas and the photo."""
    ox, oy = vp.origin
    dw, dh = vp.device_size
    vw, vh = vp.virtual_size
    x0, x1 = max(0, ox), min(vw, ox + dw)
    y0, y1 = max(0, oy), min(vh, oy + dh)
    if x1 <= x0 or y1 <= y0:
        return Range(0, 0, 0, 0)
    return Range(x0 // tile, y0 // tile, (x1 - 1) // tile + 1, (y1 - 1) // tile + 1)


def grid_range(vp: Viewport, tile: int = TILE) -> Range:
    """All tiles of the current level's virtual image."""
    vw, vh = vp.virtual_size
    return Range(0, 0, -(-vw // tile), -(-vh // tile))


def _grow(r: Range, margin: int, limit: Range) -> Range:
    if r.is_empty():
        return r
    return Range(
        max(limit.tx0, r.tx0 - margin),
        max(limit.ty0, r.ty0 - margin),
        min(limit.tx1, r.tx1 + margin),
        min(limit.ty1, r.ty1 + margin),
    )


Part = Literal["whole", "visible", "rest"]
"""Which pixels of its tile a spec renders: all of them; only those on the canvas (an edge tile, so the view
refines without rendering what it does not show); or the rest of a tile whose `visible` part is cached."""


@dataclass(frozen=True)
class TileSpec:
    """What the engine must render for one tile: its source rectangle, the output grid and the window of
    it inside the photo. `engine.render(fm, SourceRect(*rect), out_w, out_h, window=window)`.

    `shape` is the (rows, cols) of the whole tile (clipped to the photo); `window` is all of it unless
    `part` says otherwise."""

    key: TileKey
    rect: tuple[float, float, float, float]
    out_w: int
    out_h: int
    window: tuple[int, int, int, int]
    visible: bool
    shape: tuple[int, int]
    part: Part = "whole"

    @property
    def size(self) -> tuple[int, int]:
        """(cols, rows) actually rendered."""
        r0, c0, r1, c1 = self.window
        return c1 - c0, r1 - r0


def tile_spec(vp: Viewport, tx: int, ty: int, *, visible: bool = True, tile: int = TILE) -> TileSpec:
    """The render parameters of tile (tx, ty) at the viewport's level, clipped to the photo."""
    zd = vp.device_zoom
    vw, vh = vp.virtual_size
    cols = min(tile, vw - tx * tile)
    rows = min(tile, vh - ty * tile)
    if cols <= 0 or rows <= 0:
        raise ValueError(f"tile ({tx}, {ty}) is outside the photo at zoom {zd}")
    rect = (tx * tile / zd, ty * tile / zd, tile / zd, tile / zd)
    return TileSpec(TileKey(zd, tx, ty), rect, tile, tile, (0, 0, rows, cols), visible, (rows, cols))


def on_canvas(vp: Viewport, tx: int, ty: int, tile: int = TILE) -> tuple[int, int, int, int]:
    """The window (r0, c0, r1, c1), in tile pixels, of tile (tx, ty)'s pixels that lie on the canvas and in
    the photo; empty (r1 <= r0 or c1 <= c0) when none do."""
    ox, oy = vp.origin
    dw, dh = vp.device_size
    vw, vh = vp.virtual_size
    x0, y0 = tx * tile, ty * tile
    c0, c1 = max(0, ox - x0), min(tile, vw - x0, ox + dw - x0)
    r0, r1 = max(0, oy - y0), min(tile, vh - y0, oy + dh - y0)
    return r0, c0, r1, c1


def covers(window: tuple[int, int, int, int], needed: tuple[int, int, int, int]) -> bool:
    """True if `window` contains `needed` (an empty `needed` is always contained)."""
    r0, c0, r1, c1 = needed
    if r1 <= r0 or c1 <= c0:
        return True
    return window[0] <= r0 and window[1] <= c0 and r1 <= window[2] and c1 <= window[3]


def edge_specs(vp: Viewport, tx: int, ty: int, tile: int = TILE) -> tuple[TileSpec, TileSpec]:
    """A visible tile the canvas edge cuts: its `visible` part first, then what completes it later."""
    whole = tile_spec(vp, tx, ty, tile=tile)
    first = replace(whole, window=on_canvas(vp, tx, ty, tile), part="visible")
    return first, rest_of(whole, first.window)


def rest_of(whole: TileSpec, have: tuple[int, int, int, int]) -> TileSpec:
    """The render that completes tile `whole` when the pixels in window `have` are cached: the `rest`
    where it is one rectangle (the tile is cut along one side), else the whole tile again (a corner)."""
    rows, cols = whole.shape
    r0, c0, r1, c1 = have
    rest: tuple[int, int, int, int] | None = None
    if (r0, r1) == (0, rows) and (c0 == 0) != (c1 == cols):
        rest = (0, c1, rows, cols) if c0 == 0 else (0, 0, rows, c0)
    elif (c0, c1) == (0, cols) and (r0 == 0) != (r1 == rows):
        rest = (r1, 0, rows, cols) if r0 == 0 else (0, 0, r0, cols)
    if rest is None:
        return replace(whole, visible=False)
    return replace(whole, window=rest, visible=False, part="rest")


def completes(
    have: tuple[int, int, int, int], rest: tuple[int, int, int, int], shape: tuple[int, int]
) -> bool:
    """True if windows `have` and `rest` do not overlap and together are the whole (rows, cols) tile."""

    def area(w: tuple[int, int, int, int]) -> int:
        return max(0, w[2] - w[0]) * max(0, w[3] - w[1])

    inter = (max(have[0], rest[0]), max(have[1], rest[1]), min(have[2], rest[2]), min(have[3], rest[3]))
    whole = (0, 0, *shape)
    return (
        area(inter) == 0
        and covers(whole, have)
        and covers(whole, rest)
        and area(have) + area(rest) == shape[0] * shape[1]
    )


@dataclass(frozen=True)
class TilePlan:
    """The tiles one viewport needs at its level, centre first: the visible ones, then a prefetch ring.

    `covered` is the range a later viewport may see without a new plan (hysteresis): any visible range
    inside it at the same level re-plans nothing.
    """

    zoom: float
    visible: Range
    covered: Range
    order: tuple[tuple[int, int], ...]
    n_visible: int

    def keys(self) -> list[TileKey]:
        return [TileKey(self.zoom, tx, ty) for tx, ty in self.order]


def plan_tiles(vp: Viewport, *, margin: int = 1, tile: int = TILE) -> TilePlan:
    """Tiles for `vp`: visible ones sorted by distance from the canvas centre, then the ring of `margin`
    tiles around them, also nearest first. Empty when the view is not refinable (<= 1x)."""
    zd = vp.device_zoom
    if not vp.refinable:
        empty = Range(0, 0, 0, 0)
        return TilePlan(zd, empty, empty, (), 0)
    vis = visible_range(vp, tile)
    cov = _grow(vis, margin, grid_range(vp, tile))
    ox, oy = vp.origin
    dw, dh = vp.device_size
    ccx, ccy = ox + dw / 2, oy + dh / 2

    def dist(cell: tuple[int, int]) -> float:
        tx, ty = cell
        return math.hypot((tx + 0.5) * tile - ccx, (ty + 0.5) * tile - ccy)

    inner = sorted(vis.cells(), key=dist)
    inner_set = set(inner)
    ring = sorted((c for c in cov.cells() if c not in inner_set), key=dist)
    return TilePlan(zd, vis, cov, tuple(inner + ring), len(inner))


def needs_replan(prev: TilePlan | None, vp: Viewport, tile: int = TILE) -> bool:
    """Whether `vp` needs a new plan: a new level, or visible tiles outside what `prev` covered.

    A small pan within the prefetch ring returns False, so it sends nothing and cancels nothing.
    """
    if prev is None:
        return True
    if vp.device_zoom != prev.zoom:
        return True
    if not vp.refinable:
        return False
    return not prev.covered.contains(visible_range(vp, tile))


# -- placeholders and previews ------------------------------------------------------------------------------
def tiles_over_rect(
    level_zoom: float, rect: tuple[float, float, float, float], image_w: int, image_h: int, tile: int = TILE
) -> Range:
    """Tiles of level `level_zoom` that overlap source rectangle `rect` (x, y, w, h) inside the photo."""
    x, y, w, h = rect
    vw, vh = virtual_size(image_w, level_zoom), virtual_size(image_h, level_zoom)
    x0 = max(0, math.floor(x * level_zoom / tile))
    y0 = max(0, math.floor(y * level_zoom / tile))
    x1 = min(-(-vw // tile), math.ceil((x + w) * level_zoom / tile))
    y1 = min(-(-vh // tile), math.ceil((y + h) * level_zoom / tile))
    return Range(x0, y0, max(x0, x1), max(y0, y1))


def placeholder_levels(
    target: float, levels: list[float] | set[float], max_ratio: float = 2.0
) -> list[float]:
    """Other cached levels worth showing scaled while `target` renders: within `max_ratio` of it, at most
    two, ordered worst first (so the best is painted last, on top)."""
    cands = [z for z in levels if z != target and 1 / max_ratio <= z / target <= max_ratio]
    cands.sort(key=lambda z: abs(math.log(z / target)))
    return list(reversed(cands[:2]))


def pyramid_level(device_zoom: float, n_levels: int) -> int:
    """Index of the preview pyramid level (each half the size of the previous) to draw at `device_zoom`:
    the smallest level that is still at least as large as what is shown, so downscales stay sharp."""
    if device_zoom >= 1.0 or n_levels <= 1:
        return 0
    return min(n_levels - 1, max(0, math.floor(math.log2(1.0 / device_zoom) + 1e-9)))


def tile_device_rect(
    vp: Viewport, key: TileKey, cols: int, rows: int, tile: int = TILE
) -> tuple[float, float, float, float]:
    """Where a tile of any level lands on the canvas, in device pixels (x, y, w, h); exact at the
    viewport's own level, scaled for placeholder levels."""
    ox, oy = vp.origin
    s = vp.device_zoom / key.zoom
    return key.tx * tile * s - ox, key.ty * tile * s - oy, cols * s, rows * s
