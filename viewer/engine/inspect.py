"""Inspection of the LIIF representation: a pixel probe, feature-map images, "what the model adds", lattice.

Everything here returns plain values (floats, tuples, numpy arrays), so the GUI's render worker can compute
it and hand it to the GUI thread. The probe evaluates the engine's own query (`ensemble_terms`, of which
`query()` is the blend), so what it shows is exactly what the viewer paints, not a re-implementation.

Torch is imported inside the functions that need it: the pure helpers (`lattice_lines`,
`difference_heatmap`, the colormaps) and the value types are importable by the GUI before torch loads.

Units: *source* pixels as in `SourceRect` (pixel (0, 0) covers [0, 1) x [0, 1)); LIIF's *normalised*
coordinates are pixel centres in [-1, 1], in (row, col) order; the decoder's relative coordinate is the
query's offset from a latent's centre times the map's size (one source pixel = 2 units).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from viewer.engine.cancel import CancelToken, check
from viewer.errors import ArgumentError

if TYPE_CHECKING:
    import torch

    from viewer.engine.render import Engine, Latents, SourceRect

RGB = tuple[float, float, float]

MEMBER_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right")
"""The local ensemble's members in the engine's order: offsets (-1,-1), (-1,+1), (+1,-1), (+1,+1)."""

TRAINED_MAX_SCALE = 4.0
"""LIIF's official models were trained on scales x1-x4; beyond that, detail is extrapolated."""

PCA_SAMPLE = 65536
"""At most this many pixels (a regular subgrid) estimate the PCA's covariance and its colour range."""

FEATURE_WHOLE_MP = 2.0
"""A photo of up to this many megapixels gets its feature image whole. A larger one gets it for a box of
at most this size (the part in view): a lazily encoded photo is encoded where it is read, and a whole
feature image of a 12 MP photo took 92 s on a 2-core CPU (100 MP: all of it encoded first, and 300 MB of
image)."""

SAMPLE_GRID = 4
"""A larger photo's PCA and colour range come from `SAMPLE_GRID` x `SAMPLE_GRID` blocks of latents spread
evenly over it (`PCA_SAMPLE` latents in all), so they are the same for every box and cost a fixed, small
encode."""

SAMPLE_ALIGN = 64
"""The blocks start on this grid of latents: whole tiles of a lazily encoded store, so no tile is encoded
for a sliver of a block."""

Box = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in photo pixels, x1 and y1 excluded."""


# -- the probe ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeMember:
    """One member of the local ensemble for a probed point."""

    name: str
    index: tuple[int, int]
    """(row, col) of the latent code, counted from the photo's first (negative or past the photo's end: in a
    tiny photo's edge-replicated frame, `Latents.origin`)."""
    centre: tuple[float, float]
    """(x, y) of the latent's centre in source pixels."""
    rel: tuple[float, float]
    """(row, col) relative coordinate as the decoder sees it: (query - centre) in normalised units x map size."""
    offset: tuple[float, float]
    """(dx, dy) from the latent's centre to the query, in source pixels (rel / 2, as x, y)."""
    weight: float
    """Area weight after the diagonal swap; the members' weights sum to 1."""
    raw: RGB
    """Decoder output in the network's normalised units ((v - 0.5) / 0.5)."""
    rgb: RGB
    """raw * 0.5 + 0.5, not clamped (a member may predict outside [0, 1])."""
    rgb_clamped: RGB


@dataclass(frozen=True)
class Probe:
    """Everything LIIF does for one output pixel: where it looks, which codes it blends, and how."""

    x: float
    y: float
    """The sampled point in source pixels (the output pixel's centre)."""
    cell_px: tuple[float, float]
    """(w, h) of the output pixel's footprint in source pixels."""
    coord: tuple[float, float]
    """(row, col) normalised coordinate, exactly the float32 value the engine queries."""
    cell: tuple[float, float]
    """(h, w) normalised cell (2 x footprint / map size), as the engine passes it."""
    rel_cell: tuple[float, float]
    """(h, w) cell as the decoder's input sees it (cell x map size); used only if `cell_decode`."""
    cell_decode: bool
    local_ensemble: bool
    feature_size: tuple[int, int]
    """(width, height) of the feature map: the photo, or a tiny photo with its frame (`Latents.origin`)."""
    members: tuple[ProbeMember, ...]
    raw: RGB
    """Blended decoder output, normalised units."""
    rgb: RGB
    """raw * 0.5 + 0.5, not clamped."""
    rgb_clamped: RGB
    """What the viewer paints for this pixel (before 8-bit rounding)."""

    @property
    def magnification(self) -> float:
        """Output pixels per source pixel (the larger of the two axes' footprints decides)."""
        return 1.0 / max(self.cell_px)

    @property
    def weight_sum(self) -> float:
        return float(sum(m.weight for m in self.members))


def _triple(t: object) -> RGB:
    vals = [float(v) for v in t]  # type: ignore[attr-defined]
    return vals[0], vals[1], vals[2]


def probe_pixel(
    engine: Engine, fm: Latents, rect: SourceRect, out_w: int, out_h: int, row: int, col: int
) -> Probe:
    """Probe output pixel (row, col) of the out_w x out_h grid over `rect`, as `engine.render` samples it.

    The coordinate and cell come from the engine's `pixel_grid`, so the blended RGB is the pixel the viewer
    renders for that grid. Runs the model: call it from the render worker, never the GUI thread.
    """
    import torch

    from viewer.engine.render import grid_rect, pixel_grid
    from viewer.liif.query import ensemble_terms, latent_centres

    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ArgumentError(f"pixel ({row}, {col}) is outside the {out_w}x{out_h} grid")
    h, w = fm.height, fm.width
    oy, ox = fm.origin
    grid = grid_rect(fm, rect)  # as `Engine.render` samples it
    rows, cols, cell_np = pixel_grid(grid, out_w, out_h, h, w, (row, col, row + 1, col + 1))
    dev = engine.device
    with torch.inference_mode():
        coord = torch.stack((torch.from_numpy(rows), torch.from_numpy(cols)), dim=1).to(dev)
        cell = torch.from_numpy(cell_np)
        cache = fm.projection(engine.decoder)
        centres = (latent_centres(h, dev), latent_centres(w, dev))
        terms = ensemble_terms(engine.decoder, cache, coord, cell, centres)
        blended = terms.blend()
        # The same arithmetic as Engine.render, so the clamped value is bit-identical to its output.
        painted = (blended * 0.5 + 0.5).clamp_(0, 1)
        unclamped = blended * 0.5 + 0.5
        preds = terms.preds[:, 0].float().cpu()
        member_rgb = preds * 0.5 + 0.5
        member_clamped = member_rgb.clamp(0, 1)
        idx_r = [int(i) - oy for i in terms.rows[:, 0].cpu().tolist()]
        idx_c = [int(i) - ox for i in terms.cols[:, 0].cpu().tolist()]
        rel = terms.rel[:, 0].float().cpu().tolist()
        weights = terms.weights[:, 0].float().cpu().tolist()
    k = len(idx_r)
    names = MEMBER_NAMES if k == 4 else ("nearest",)
    members = tuple(
        ProbeMember(
            name=names[m],
            index=(int(idx_r[m]), int(idx_c[m])),
            centre=(idx_c[m] + 0.5, idx_r[m] + 0.5),
            rel=(float(rel[m][0]), float(rel[m][1])),
            offset=(float(rel[m][1]) / 2.0, float(rel[m][0]) / 2.0),
            weight=float(weights[m]),
            raw=_triple(preds[m].tolist()),
            rgb=_triple(member_rgb[m].tolist()),
            rgb_clamped=_triple(member_clamped[m].tolist()),
        )
        for m in range(k)
    )
    cell_h, cell_w = float(cell_np[0]), float(cell_np[1])
    return Probe(
        x=rect.x + (col + 0.5) * rect.w / out_w,
        y=rect.y + (row + 0.5) * rect.h / out_h,
        cell_px=(rect.w / out_w, rect.h / out_h),
        coord=(float(rows[0]), float(cols[0])),
        cell=(cell_h, cell_w),
        rel_cell=(cell_h * h, cell_w * w),
        cell_decode=engine.decoder.cell_decode,
        local_ensemble=engine.decoder.local_ensemble,
        feature_size=(w, h),
        members=members,
        raw=_triple(blended[0].float().cpu().tolist()),
        rgb=_triple(unclamped[0].float().cpu().tolist()),
        rgb_clamped=_triple(painted[0].float().cpu().tolist()),
    )


def probe(engine: Engine, fm: Latents, x: float, y: float, cell_w: float, cell_h: float) -> Probe:
    """Probe the source point (x, y) for an output pixel covering cell_w x cell_h source pixels.

    Equivalent to rendering the 1x1 grid over the footprint centred on (x, y).
    """
    from viewer.engine.render import SourceRect

    if not (math.isfinite(cell_w) and math.isfinite(cell_h) and cell_w > 0 and cell_h > 0):
        raise ArgumentError(f"invalid probe cell {cell_w} x {cell_h}: both must be positive")
    rect = SourceRect(x - cell_w / 2, y - cell_h / 2, cell_w, cell_h)
    return probe_pixel(engine, fm, rect, 1, 1, 0, 0)


# -- feature-map images ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PcaBasis:
    """The first three principal components of one feature map's channels, and their display range."""

    mean: np.ndarray
    """(C,) channel means."""
    components: np.ndarray
    """(3, C) unit loadings, largest variance first; each one's largest-magnitude loading is positive."""
    lo: np.ndarray
    hi: np.ndarray
    """(3,) the 1st and 99th percentiles of each component's scores: mapped to 0 and 255."""
    explained: np.ndarray
    """(3,) fraction of the total variance each component explains."""


def _sample_stride(h: int, w: int, budget: int = PCA_SAMPLE) -> int:
    """Stride of a regular subgrid with at most about `budget` pixels."""
    return max(1, math.ceil(math.sqrt(h * w / budget)))


def _bands(fm: Latents, multiple: int = 1) -> list[tuple[int, int]]:
    """Row bands of about a megapixel of the photo's latents (a multiple of `multiple` rows each), so a
    lazily encoded store is read band by band in bounded memory."""
    rows = max(1, (1 << 20) // max(1, fm.photo_width))
    rows = max(multiple, rows // multiple * multiple)
    return [(r0, min(fm.photo_height, r0 + rows)) for r0 in range(0, fm.photo_height, rows)]


def _photo_rows(fm: Latents, r0: int, r1: int) -> torch.Tensor:
    """Rows [r0, r1) of the photo's own latents (a tiny photo's frame left out), float32 (C, rows, width)."""
    oy, ox = fm.origin
    return fm.crop(oy + r0, oy + r1, ox, ox + fm.photo_width)


def is_big(fm: Latents) -> bool:
    """Whether the photo is over `FEATURE_WHOLE_MP`: its feature image is then made a box at a time."""
    return fm.photo_height * fm.photo_width > FEATURE_WHOLE_MP * 1e6


def _sample_blocks(h: int, w: int) -> list[Box]:
    """`SAMPLE_GRID` x `SAMPLE_GRID` boxes of latents, spread evenly over an h x w photo, `PCA_SAMPLE` in all."""
    side = int(math.sqrt(PCA_SAMPLE)) // SAMPLE_GRID
    bh, bw = min(side, h), min(side, w)
    a = SAMPLE_ALIGN
    ys = [round(i * (h - bh) / (SAMPLE_GRID - 1)) // a * a for i in range(SAMPLE_GRID)]
    xs = [round(j * (w - bw) / (SAMPLE_GRID - 1)) // a * a for j in range(SAMPLE_GRID)]
    return [(x, y, x + bw, y + bh) for y in ys for x in xs]


def _sample(fm: Latents, cancel: CancelToken | None = None) -> np.ndarray:
    """(C, N) latents that stand for the photo (deterministic): a regular subgrid of all of them for a photo
    up to `FEATURE_WHOLE_MP` (read band by band, so a lazily encoded store encodes all of it), else the
    `_sample_blocks` (which encode a few tiles only). Kept with the feature map."""

    def make() -> np.ndarray:
        if is_big(fm):
            oy, ox = fm.origin
            parts = []
            for x0, y0, x1, y1 in _sample_blocks(fm.photo_height, fm.photo_width):
                check(cancel)
                parts.append(
                    fm.crop(oy + y0, oy + y1, ox + x0, ox + x1).cpu().numpy().reshape(fm.channels, -1)
                )
            return np.concatenate(parts, axis=1)
        s = _sample_stride(fm.photo_height, fm.photo_width)
        parts = []
        for r0, r1 in _bands(fm, s):
            check(cancel)
            parts.append(_photo_rows(fm, r0, r1)[:, ::s, ::s].cpu().numpy().reshape(fm.channels, -1))
        return np.concatenate(parts, axis=1)

    sample: np.ndarray = fm.derived("feature_sample", make)
    return sample


def pca_basis(fm: Latents, cancel: CancelToken | None = None) -> PcaBasis:
    """PCA of the feature map's channels over `_sample` (deterministic)."""
    sample = _sample(fm, cancel)
    c = sample.shape[0]
    x = sample.astype(np.float64)
    mean = x.mean(axis=1)
    xc = x - mean[:, None]
    cov = xc @ xc.T / max(1, xc.shape[1] - 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    n = min(3, c)
    comps = np.zeros((3, c), dtype=np.float64)
    comps[:n] = vecs[:, :n].T
    for k in range(n):
        if comps[k, np.argmax(np.abs(comps[k]))] < 0:
            comps[k] = -comps[k]
    scores = comps @ xc
    lo = np.percentile(scores, 1.0, axis=1)
    hi = np.percentile(scores, 99.0, axis=1)
    hi = np.where(hi - lo < 1e-12, lo + 1.0, hi)
    total = float(vals.clip(min=0).sum()) or 1.0
    explained = np.zeros(3)
    explained[:n] = vals[:n].clip(min=0) / total
    return PcaBasis(mean, comps, lo, hi, explained)


def whole_box(fm: Latents) -> Box:
    """The box of the whole photo."""
    return (0, 0, fm.photo_width, fm.photo_height)


def _box_rows(fm: Latents, box: Box, cancel: CancelToken | None) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Bands of about a megapixel of the box's latents: (first row, end row, float32 (C, rows, width)),
    rows counted from the box's top, so a lazily encoded store is read band by band in bounded memory."""
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= fm.photo_width and 0 <= y0 < y1 <= fm.photo_height):
        raise ArgumentError(f"box {box} is not inside the {fm.photo_width}x{fm.photo_height} photo")
    oy, ox = fm.origin
    rows = max(1, (1 << 20) // (x1 - x0))
    for r0 in range(0, y1 - y0, rows):
        check(cancel)
        r1 = min(y1 - y0, r0 + rows)
        yield r0, r1, fm.crop(oy + y0 + r0, oy + y0 + r1, ox + x0, ox + x1)


def _pca_image(fm: Latents, basis: PcaBasis, box: Box, cancel: CancelToken | None) -> np.ndarray:
    import torch

    x0, y0, x1, y1 = box
    dev = fm.device
    comps = torch.from_numpy(basis.components.astype(np.float32)).to(dev)
    offset = torch.from_numpy((basis.components @ basis.mean + basis.lo).astype(np.float32)).to(dev)
    scale = torch.from_numpy((255.0 / (basis.hi - basis.lo)).astype(np.float32)).to(dev)
    out = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    with torch.inference_mode():
        for r0, r1, rows in _box_rows(fm, box, cancel):
            block = rows.reshape(fm.channels, -1)
            proj = (comps @ block - offset[:, None]) * scale[:, None]
            q = proj.clamp_(0, 255).round_().to(torch.uint8).cpu().numpy()
            out[r0:r1] = q.reshape(3, r1 - r0, x1 - x0).transpose(1, 2, 0)
    out.flags.writeable = False
    return out


def pca_rgb(fm: Latents, box: Box | None = None, cancel: CancelToken | None = None) -> np.ndarray:
    """The feature map projected to RGB by its own PCA: (H, W, 3) uint8, read-only, for `box` (default:
    the whole photo, computed once per map). The PCA is the photo's (`_sample`), whatever the box.

    PC1 drives red, PC2 green, PC3 blue; each is stretched between its 1st and 99th percentile.
    """
    basis: PcaBasis = fm.derived("pca_basis", lambda: pca_basis(fm, cancel))
    if box is None or box == whole_box(fm):
        image: np.ndarray = fm.derived("pca_rgb", lambda: _pca_image(fm, basis, whole_box(fm), cancel))
        return image
    return _pca_image(fm, basis, box, cancel)


def channel_image(
    fm: Latents, c: int, box: Box | None = None, cancel: CancelToken | None = None
) -> np.ndarray:
    """One feature channel as (H, W, 3) uint8 with a diverging colormap, blue negative, red positive, for
    `box` (default: the whole photo).

    Zero stays at the neutral middle; the 99.5th percentile of |value| over the photo (`_sample`) reaches
    full colour.
    """
    n = fm.channels
    if not 0 <= c < n:
        raise ArgumentError(f"channel {c} does not exist: the feature map has channels 0-{n - 1}")
    scale = float(np.percentile(np.abs(_sample(fm, cancel)[c]), 99.5)) or 1.0
    v = np.concatenate([rows[c].cpu().numpy() for _, _, rows in _box_rows(fm, box or whole_box(fm), cancel)])
    return colormap(0.5 + 0.5 * v / scale, DIVERGING)


# -- colormaps -------------------------------------------------------------------------------------------
Colormap = tuple[tuple[float, tuple[int, int, int]], ...]

INFERNO: Colormap = (
    (0.0, (0, 0, 4)),
    (0.125, (31, 12, 72)),
    (0.25, (85, 15, 109)),
    (0.375, (136, 34, 106)),
    (0.5, (186, 54, 85)),
    (0.625, (227, 89, 51)),
    (0.75, (249, 140, 10)),
    (0.875, (249, 201, 50)),
    (1.0, (252, 255, 164)),
)
"""Perceptually ordered dark-to-bright (anchors of matplotlib's inferno)."""

DIVERGING: Colormap = (
    (0.0, (59, 76, 192)),
    (0.25, (141, 176, 254)),
    (0.5, (221, 221, 221)),
    (0.75, (244, 154, 123)),
    (1.0, (180, 4, 38)),
)
"""Blue - grey - red (anchors of Moreland's cool-warm), for signed values."""


def colormap(t: np.ndarray, cmap: Colormap = INFERNO) -> np.ndarray:
    """Map values in [0, 1] (clipped) to uint8 RGB, (..., 3), by piecewise-linear interpolation."""
    t = np.clip(np.asarray(t, dtype=np.float32), 0.0, 1.0)
    xs = np.array([a for a, _ in cmap], dtype=np.float32)
    out = np.empty((*t.shape, 3), dtype=np.uint8)
    for ch in range(3):
        ys = np.array([rgb[ch] for _, rgb in cmap], dtype=np.float32)
        out[..., ch] = np.rint(np.interp(t, xs, ys)).astype(np.uint8)
    return out


# -- what the model adds ---------------------------------------------------------------------------------
DIFF_FULL_SCALE = 0.15
"""RMS difference (fraction of the 0-1 range) shown at full colour by the heat map."""


def _as_unit(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ArgumentError(f"expected an (H, W, 3) image, got shape {a.shape}")
    a = a[..., :3]
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def difference_magnitude(liif_rgb: np.ndarray, bicubic_rgb: np.ndarray) -> np.ndarray:
    """Per-pixel RMS over R, G, B of LIIF minus bicubic, in [0, 1] units: (H, W) float32.

    Accepts uint8 (0-255) or float (0-1) RGB of the same grid.
    """
    a, b = _as_unit(liif_rgb), _as_unit(bicubic_rgb)
    if a.shape != b.shape:
        raise ArgumentError(f"images differ in size: {a.shape[:2]} vs {b.shape[:2]}")
    return np.sqrt(np.mean((a - b) ** 2, axis=2))


def difference_heatmap(
    liif_rgb: np.ndarray, bicubic_rgb: np.ndarray, full_scale: float = DIFF_FULL_SCALE
) -> np.ndarray:
    """ "What the model adds": (H, W, 4) RGBA uint8 heat map of |LIIF - bicubic|.

    Colour follows the inferno map from 0 to `full_scale`; alpha rises with the difference (sqrt), so
    where LIIF and bicubic agree the photo shows through and where the network adds detail it glows. A
    fixed scale (not per view) keeps views comparable.
    """
    if not full_scale > 0:
        raise ArgumentError(f"full_scale must be positive, got {full_scale}")
    t = np.clip(difference_magnitude(liif_rgb, bicubic_rgb) / full_scale, 0.0, 1.0)
    out = np.empty((*t.shape, 4), dtype=np.uint8)
    out[..., :3] = colormap(t, INFERNO)
    out[..., 3] = np.rint(255.0 * np.sqrt(t)).astype(np.uint8)
    return out


# -- the latent lattice ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lattice:
    """The latent grid over an output grid: one latent code per source pixel, centred in it.

    Positions are in output pixels (x from the left, y from the top of the out_w x out_h grid).
    """

    xs: np.ndarray
    """x of the vertical cell boundaries (source x = integer)."""
    ys: np.ndarray
    """y of the horizontal cell boundaries."""
    centre_xs: np.ndarray
    """x of the latent centres (source x = col + 0.5), for columns first_col, first_col + 1, ..."""
    centre_ys: np.ndarray
    first_col: int
    first_row: int
    spacing: tuple[float, float]
    """Output pixels per source pixel, (x, y)."""
    extent: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """(left, top, right, bottom) of the part of the photo in view, output pixels: where lines end."""

    @property
    def empty(self) -> bool:
        return self.centre_xs.size == 0 or self.centre_ys.size == 0


EMPTY_LATTICE = Lattice(np.empty(0), np.empty(0), np.empty(0), np.empty(0), 0, 0, (0.0, 0.0))


def lattice_lines(
    rect: SourceRect | tuple[float, float, float, float],
    out_w: int,
    out_h: int,
    min_px: float = 8.0,
    *,
    bounds: tuple[int, int] | None = None,
) -> Lattice:
    """The latent lattice visible in `rect` drawn as out_w x out_h output pixels.

    Returns `EMPTY_LATTICE` unless a source pixel spans at least `min_px` output pixels on both axes (a
    denser grid is noise, not information). `bounds=(width, height)` keeps it inside the photo. `rect` may
    be a `SourceRect` or an (x, y, w, h) tuple (the GUI's form, which needs no torch).
    """
    rx, ry, rw, rh = (rect.x, rect.y, rect.w, rect.h) if not isinstance(rect, tuple) else rect
    if out_w <= 0 or out_h <= 0 or rw <= 0 or rh <= 0:
        return EMPTY_LATTICE
    sx, sy = out_w / rw, out_h / rh
    if sx < min_px or sy < min_px:
        return EMPTY_LATTICE
    x0, x1 = rx, rx + rw
    y0, y1 = ry, ry + rh
    if bounds is not None:
        x0, x1 = max(x0, 0.0), min(x1, float(bounds[0]))
        y0, y1 = max(y0, 0.0), min(y1, float(bounds[1]))
        if x1 <= x0 or y1 <= y0:
            return EMPTY_LATTICE
    kx = np.arange(math.ceil(x0), math.floor(x1) + 1, dtype=np.float64)
    ky = np.arange(math.ceil(y0), math.floor(y1) + 1, dtype=np.float64)
    first_col, first_row = math.ceil(x0 - 0.5), math.ceil(y0 - 0.5)
    cx = np.arange(first_col, math.floor(x1 - 0.5) + 1, dtype=np.float64) + 0.5
    cy = np.arange(first_row, math.floor(y1 - 0.5) + 1, dtype=np.float64) + 0.5
    return Lattice(
        xs=(kx - rx) * sx,
        ys=(ky - ry) * sy,
        centre_xs=(cx - rx) * sx,
        centre_ys=(cy - ry) * sy,
        first_col=first_col,
        first_row=first_row,
        spacing=(sx, sy),
        extent=((x0 - rx) * sx, (y0 - ry) * sy, (x1 - rx) * sx, (y1 - ry) * sy),
    )


def extrapolated(magnification: float) -> bool:
    """True beyond the training range (x4): what LIIF shows there is inferred, not recovered."""
    return magnification > TRAINED_MAX_SCALE + 1e-9
