"""Export: plan what to render (region, output size, DPI, limits), then render it in bands and write it
atomically. Shared by the command line and the GUI.

Planning is cheap and needs no model, so callers validate a request before loading anything. The run
renders full-width bands of rows through `Engine.render(..., window=...)`, which gives the same pixels as
one whole render, so memory is bounded by the band whatever the output size. PNG is streamed band by band
into the temporary file; JPEG and TIFF are assembled in memory at 8 bits (16 for TIFF from a 16-bit source) and then
saved by Pillow, or by tifffile for 16-bit colour TIFF. This module does not import torch at load time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from viewer.engine.cancel import CancelToken, ProgressCallback, check
from viewer.engine.imageio import (
    LoadedImage,
    OutputExistsError,
    PngBandWriter,
    atomic_output,
    check_format_dpi,
    check_format_limits,
    check_output_path,
    exif_for_output,
    fit_metadata,
    output_bit_depth,
    quantize,
    refuse_source_as_output,
    report_notes,
    save_image,
    to_luma,
)
from viewer.engine.printsize import (
    DEFAULT_DPI,
    Length,
    PixelSize,
    PrintSize,
    Region,
    fit_region,
    match_orientation,
    parse_dpi,
    print_pixels,
)
from viewer.engine.sharpen import Sharpen, UnsharpMask
from viewer.engine.tiff16 import write_tiff16
from viewer.errors import ArgumentError, LimitError

if TYPE_CHECKING:
    from viewer.engine.render import Engine, Latents, SourceRect

#: Default cap on the output size, in megapixels (a 24x36 in print at 300 DPI is 78 MP).
DEFAULT_MAX_OUTPUT_MP = 400.0

#: Rows per rendered band, and a cap on the pixels of one band for very wide outputs.
BAND_ROWS = 256
MAX_BAND_PIXELS = 1 << 22


@dataclass(frozen=True)
class ExportPlan:
    """What an export renders: the source rectangle `rect` (source pixels, inside the photo), the output
    size in pixels, the DPI recorded in the file (None: none recorded), the fit mode used, and the print
    sharpening applied to the output (None: none).

    `out_w` x `out_h` is the rendered photo; with a border (or what "fit inside" leaves of a bordered or
    bled page) the file is larger by `pad`, white paper around the photo: `file_w` x `file_h`."""

    rect: Region
    out_w: int
    out_h: int
    dpi: float | None
    fit: str
    sharpen: Sharpen | None = None
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    """White paper around the photo in the file: left, top, right, bottom, in pixels."""
    bleed: int = 0
    """Bleed on each side in pixels: part of the page beyond the trimmed print size, filled by the photo."""
    border: int = 0
    """The white border asked for, in pixels on each side (part of `pad`)."""

    @property
    def file_w(self) -> int:
        return self.out_w + self.pad[0] + self.pad[2]

    @property
    def file_h(self) -> int:
        return self.out_h + self.pad[1] + self.pad[3]

    @property
    def scale_x(self) -> float:
        return self.out_w / self.rect.w

    @property
    def scale_y(self) -> float:
        return self.out_h / self.rect.h

    @property
    def magnification(self) -> float:
        """Linear magnification (by area, so a stretched export gets the geometric mean of its axes)."""
        return math.sqrt(self.scale_x * self.scale_y)

    @property
    def megapixels(self) -> float:
        """Of the file (the page, with any border)."""
        return self.file_w * self.file_h / 1_000_000

    @property
    def shrinks(self) -> bool:
        """Whether an axis is reduced (scale below 1): LIIF only enlarges, so that axis is downsampled."""
        return self.scale_x < 1 or self.scale_y < 1

    @property
    def from_source(self) -> bool:
        """Whether the output is the source resampled, with no model: no axis is enlarged, as the viewer
        shows a photo at or below 100% (and a 1x1 photo stays its own colour)."""
        return self.scale_x <= 1 and self.scale_y <= 1

    def print_inches(self) -> tuple[float, float] | None:
        """The file's printed size at the recorded DPI (bleed included), or None without one."""
        if self.dpi is None:
            return None
        return self.file_w / self.dpi, self.file_h / self.dpi

    def source_rect(self) -> SourceRect:
        """The rectangle as the engine's `SourceRect` (imports the engine, hence torch)."""
        from viewer.engine.render import SourceRect

        return SourceRect(*self.rect)


def check_region(image_w: int, image_h: int, region: Region | tuple[float, float, float, float]) -> Region:
    """The region, validated to lie inside a image_w x image_h photo."""
    x, y, w, h = (float(v) for v in region)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise ArgumentError(f"invalid region {x:g},{y:g},{w:g},{h:g}: width and height must be positive")
    eps = 1e-9 * max(image_w, image_h)
    if x < 0 or y < 0 or x + w > image_w + eps or y + h > image_h + eps:
        raise ArgumentError(
            f"region {x:g},{y:g},{w:g},{h:g} is outside the {image_w}x{image_h} image "
            f"(needs x, y >= 0, x+w <= {image_w} and y+h <= {image_h})"
        )
    return Region(x, y, min(w, image_w - x), min(h, image_h - y))


def plan_export(
    image_w: int,
    image_h: int,
    region: Region | tuple[float, float, float, float] | None,
    size: PrintSize | PixelSize,
    dpi: float | None = None,
    fit: str = "crop",
    *,
    max_output_megapixels: float = DEFAULT_MAX_OUTPUT_MP,
    anchor: tuple[float, float] = (0.5, 0.5),
    sharpen: Sharpen | None = None,
    border: Length | None = None,
    bleed: Length | None = None,
) -> ExportPlan:
    """Validate and plan an export of `region` (None: the whole photo) at `size`.

    A `PrintSize` is turned into pixels at `dpi` (default 300) after being rotated to the region's
    orientation (a landscape region printed "8x10in" gives a 10x8 in print); a `PixelSize` is used as
    given, and `dpi`, if any, is only recorded. `fit` is crop, fit or stretch, and `anchor` says which
    part of the region a crop keeps (see `fit_region`). `sharpen` is print sharpening of the output
    (see `viewer.engine.sharpen`), its radius scaled to the DPI.

    A `border` is white paper on each side inside the page: the photo is fitted (cropped, fitted inside
    or stretched) to the page less the border. A `bleed` adds to each side of the page, and the photo
    fills it too (it is trimmed off after printing). Either one makes the file the whole page: what
    "fit inside" leaves free is white. A border and a bleed together are refused.
    Raises ArgumentError for a bad region or size and LimitError when the output exceeds the limit.
    """
    if image_w <= 0 or image_h <= 0:
        raise ArgumentError(f"invalid image size {image_w}x{image_h}")
    if not (math.isfinite(max_output_megapixels) and max_output_megapixels > 0):
        raise ArgumentError(f"invalid output megapixel limit {max_output_megapixels!r}: must be positive")
    reg = Region(0.0, 0.0, float(image_w), float(image_h)) if region is None else region
    reg = check_region(image_w, image_h, reg)
    if isinstance(size, PrintSize):
        dpi = parse_dpi(DEFAULT_DPI if dpi is None else dpi)
        pw, ph = match_orientation(size.w, size.h, reg.w, reg.h)
        box_w, box_h = print_pixels(pw, ph, size.unit, dpi)
        if box_w < 1 or box_h < 1:
            raise ArgumentError(f"print size {size.label()} at {dpi:g} DPI is less than one pixel")
    else:
        if dpi is not None:
            dpi = parse_dpi(dpi)
        box_w, box_h = int(size.w), int(size.h)
        if box_w < 1 or box_h < 1:
            raise ArgumentError(f"invalid output size {box_w}x{box_h}")
    border_px = border.pixels(dpi) if border is not None else 0
    bleed_px = bleed.pixels(dpi) if bleed is not None else 0
    if border_px and bleed_px:
        raise ArgumentError("use a border or a bleed, not both")
    page_w, page_h = box_w + 2 * bleed_px, box_h + 2 * bleed_px
    inner_w, inner_h = page_w - 2 * border_px, page_h - 2 * border_px
    if inner_w < 1 or inner_h < 1:
        assert border is not None
        raise ArgumentError(
            f"a {border.label()} border ({border_px} px) leaves no room for the photo on a "
            f"{box_w}x{box_h} px page"
        )
    f = fit_region(reg.w, reg.h, inner_w, inner_h, fit, anchor)
    pad = (0, 0, 0, 0)
    if border_px or bleed_px:  # the file is the page; the photo centred in what the border leaves
        left = border_px + (inner_w - f.out_w) // 2
        top = border_px + (inner_h - f.out_h) // 2
        pad = (left, top, page_w - f.out_w - left, page_h - f.out_h - top)
    file_w, file_h = f.out_w + pad[0] + pad[2], f.out_h + pad[1] + pad[3]
    mp = file_w * file_h / 1_000_000
    if mp > max_output_megapixels:
        raise LimitError(
            f"the output would be {file_w}x{file_h} = {mp:.1f} megapixels, over the limit of "
            f"{max_output_megapixels:g} megapixels"
        )
    rect = Region(reg.x + f.x, reg.y + f.y, f.w, f.h)
    return ExportPlan(rect, f.out_w, f.out_h, dpi, fit, sharpen, pad, bleed_px, border_px)


class _AlphaResampler:
    """Bicubic upscaling of the alpha plane, a band at a time, aligned with the engine's sampling grid
    (output pixel centres at rect.x + (c + 0.5) * rect.w / out_w, as PIL's `resize(box=...)` places them)."""

    def __init__(self, alpha: np.ndarray, plan: ExportPlan) -> None:
        self._im = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32))  # mode F
        self._plan = plan

    def rows(self, r0: int, r1: int) -> np.ndarray:
        p = self._plan
        x, y, w, h = p.rect
        step = h / p.out_h
        y0 = y + r0 * step
        y1 = min(float(self._im.height), y + r1 * step)
        x1 = min(float(self._im.width), x + w)
        band = self._im.resize((p.out_w, r1 - r0), Image.Resampling.BICUBIC, box=(x, y0, x1, y1))
        return np.clip(np.asarray(band, dtype=np.float32), 0.0, 1.0)


def _resize_channels(
    a: np.ndarray, out_w: int, out_h: int, box: tuple[float, float, float, float]
) -> np.ndarray:
    """Resample float32 (H, W, C) to (out_h, out_w, C) from `box` with Lanczos, antialiased when reducing
    (Pillow widens the kernel by the reduction), clipped to [0, 1]."""
    chans = []
    for c in range(a.shape[2]):
        im = Image.fromarray(np.ascontiguousarray(a[..., c], dtype=np.float32))  # mode F
        chans.append(np.asarray(im.resize((out_w, out_h), Image.Resampling.LANCZOS, box=box), np.float32))
    return np.clip(np.stack(chans, axis=2), 0.0, 1.0)


def downscale_source(pixels: np.ndarray, plan: ExportPlan) -> np.ndarray:
    """The plan's rectangle of the source, resampled to the output size: float32 (out_h, out_w, 3).

    For a plan that enlarges no axis (`plan.from_source`). Only the rectangle plus the kernel's reach is
    converted to float, a channel at a time.
    """
    x, y, w, h = plan.rect
    reach = math.ceil(3 / min(plan.scale_x, plan.scale_y)) + 1  # Lanczos-3, widened by the reduction
    x0, y0 = max(0, math.floor(x) - reach), max(0, math.floor(y) - reach)
    x1 = min(pixels.shape[1], math.ceil(x + w) + reach)
    y1 = min(pixels.shape[0], math.ceil(y + h) + reach)
    top = np.float32(65535 if pixels.dtype == np.uint16 else 255)
    chans = []
    for c in range(3):
        crop = pixels[y0:y1, x0:x1, c].astype(np.float32) / top
        chans.append(
            _resize_channels(
                crop[..., None], plan.out_w, plan.out_h, (x - x0, y - y0, x - x0 + w, y - y0 + h)
            )
        )
    return np.concatenate(chans, axis=2)


def _band_rows(out_w: int, band_rows: int) -> int:
    return max(1, min(band_rows, MAX_BAND_PIXELS // max(1, out_w)))


def _budget_rows(feature_map: Latents, width: float) -> int | None:
    """Rows of latents `width` wide that fit in a third of a store's memory budget (None: not a store)."""
    from viewer.engine.features import FeatureStore

    if not isinstance(feature_map, FeatureStore):
        return None
    itemsize = feature_map.dtype.itemsize
    return int(feature_map.budget_bytes / 3 / ((width + 8) * feature_map.channels * itemsize))


def _store_band_rows(feature_map: Latents, plan: ExportPlan, rows: int) -> int:
    """Cap the band so the latents one band needs take at most a third of a store's memory budget
    (a whole-photo export of a huge scan then streams through the store instead of thrashing it)."""
    fit = _budget_rows(feature_map, plan.rect.w)
    if fit is None:
        return rows
    return max(1, min(rows, int(max(1, fit - 8) * plan.out_h / plan.rect.h)))


_Prefetch = Callable[[int, int, CancelToken | None], None]


def _prefetcher(engine: Engine, feature_map: Latents, plan: ExportPlan) -> _Prefetch:
    """Encode ahead for bands [r0, r1): the band's latents and, on a store, as many rows after it (within
    the plan's rectangle) as a third of its memory budget holds, so a streamed export pays about the halos
    of a whole-photo encode, not one per band."""
    from viewer.engine.features import FeatureStore, clip_box
    from viewer.engine.render import grid_rect, window_latents

    rect = grid_rect(feature_map, plan.source_rect())  # a tiny photo's region of its framed grid
    # As many rows ahead as a third of the store's budget holds (the store cuts them into encode passes).
    ahead = max(0, _budget_rows(feature_map, rect.w) or 0) if isinstance(feature_map, FeatureStore) else 0

    end = engine.projection_box(window_latents(rect, plan.out_w, plan.out_h, (0, 0, plan.out_h, plan.out_w)))[
        1
    ]

    def prefetch(r0: int, r1: int, cancel: CancelToken | None) -> None:
        y0, y1, x0, x1 = engine.projection_box(
            window_latents(rect, plan.out_w, plan.out_h, (r0, 0, r1, plan.out_w))
        )
        box = clip_box((y0, min(end, max(y1, y0 + ahead)), x0, x1), feature_map.height, feature_map.width)
        if box is not None:
            feature_map.prefetch(box, cancel)

    return prefetch


def _monotonic(progress: ProgressCallback) -> ProgressCallback:
    """`progress` that never goes back (overlapping bands report some rows twice)."""
    best = [0]

    def report(done: int, total: int) -> None:
        best[0] = max(best[0], done)
        progress(best[0], total)

    return report


def run_export(
    engine: Engine,
    feature_map: Latents,
    loaded: LoadedImage,
    plan: ExportPlan,
    out_path: str | os.PathLike[str],
    *,
    jpeg_quality: int = 92,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
    band_rows: int = BAND_ROWS,
    replace: bool = True,
    on_note: Callable[[str], None] | None = None,
) -> Path:
    """Render `plan` from the photo's latents and write it to `out_path` (PNG, JPEG or TIFF by extension).

    With a lazy `FeatureStore`, only the latents of the plan's rectangle (plus the encoder's halo) are
    encoded, band by band ahead of the render, in memory bounded by the store's budget.

    Keeps what the source had: alpha (upscaled bicubically), grey (rendered in colour, written as BT.601
    luma), 16 bits (PNG and TIFF; a 16-bit colour TIFF is written by tifffile), the ICC profile and EXIF (orientation 1, resolution = DPI), less what
    the format cannot hold (one line each to `on_note`). An axis below scale 1 is downsampled (Lanczos,
    antialiased), never queried below 1: a plan that enlarges nothing is the source resampled, as the
    viewer shows it. The plan's print sharpening, if any, filters the output after that, band by band
    with a halo of rows, so the file equals one sharpened whole. A border (`plan.pad`) is white, opaque
    paper around the photo. Progress is reported in the photo's output pixels.

    Refuses (`ArgumentError`) to write over the photo it reads, and with `replace=False` keeps an existing
    file (`OutputExistsError`), both before any work. Atomic: on any error or cancellation
    (`Cancelled`), nothing is left at `out_path` and no temporary file remains.
    """
    out = Path(out_path)
    fmt = check_output_path(out)
    refuse_source_as_output(loaded.path, out)
    if not replace and os.path.lexists(out):
        raise OutputExistsError(f"{out} already exists and was kept; nothing was written")
    if fmt == "JPEG" and not 1 <= int(jpeg_quality) <= 100:
        raise ArgumentError(f"invalid JPEG quality {jpeg_quality}: must be 1 to 100")
    check_format_dpi(fmt, plan.dpi)
    rect = plan.source_rect()
    out_w, out_h = plan.out_w, plan.out_h
    grey = loaded.grayscale
    alpha_rs = _AlphaResampler(loaded.alpha, plan) if loaded.alpha is not None else None
    keep_alpha = alpha_rs is not None and fmt != "JPEG"
    depth = output_bit_depth(fmt, loaded.bit_depth, grey, keep_alpha)
    tiff16 = fmt == "TIFF" and loaded.bit_depth == 16 and depth == 8  # colour or alpha: tifffile's
    if tiff16:
        depth = 16
    file_w, file_h = plan.file_w, plan.file_h
    left, top = plan.pad[0], plan.pad[1]
    check_format_limits(fmt, file_w, file_h, (1 if grey else 3) + (1 if keep_alpha else 0), depth)
    meta = fit_metadata(fmt, loaded.icc, exif_for_output(loaded.exif, file_w, file_h, plan.dpi))
    report_notes(meta.notes, on_note)
    total = out_w * out_h
    usm = UnsharpMask.for_output(plan.sharpen, plan.dpi) if plan.sharpen is not None else None
    if progress is not None:
        progress = _monotonic(progress)  # a sharpened band re-renders its neighbours' halo rows

    def model_rows(p: ExportPlan, prefetch: _Prefetch, r0: int, r1: int) -> np.ndarray:
        """Rows [r0, r1) of `p` rendered by the model; progress scaled to the output's pixels."""
        check(cancel)
        prefetch(r0, r1, cancel)
        band_px = (r1 - r0) * p.out_w
        of_all = p.out_w * p.out_h

        def on_chunk(done: int, of: int) -> None:
            if progress is not None:
                progress((r0 * p.out_w + band_px * min(done, of) // max(1, of)) * total // of_all, total)

        return engine.render(
            feature_map, rect, p.out_w, p.out_h, window=(r0, 0, r1, p.out_w), cancel=cancel, progress=on_chunk
        )

    def shrunk_colour() -> np.ndarray:
        """The whole output of a plan that enlarges no axis (the source resampled) or reduces one (rendered
        at scale 1 on the reduced axis, then downsampled there)."""
        check(cancel)
        if plan.from_source:
            return downscale_source(loaded.pixels, plan)
        iw = out_w if plan.scale_x >= 1 else math.ceil(plan.rect.w - 1e-9)
        ih = out_h if plan.scale_y >= 1 else math.ceil(plan.rect.h - 1e-9)
        inter = ExportPlan(plan.rect, iw, ih, plan.dpi, plan.fit)
        full = np.empty((ih, iw, 3), np.float32)
        step = _store_band_rows(feature_map, inter, _band_rows(iw, band_rows))
        pre = _prefetcher(engine, feature_map, inter)
        for r0 in range(0, ih, step):
            r1 = min(ih, r0 + step)
            full[r0:r1] = model_rows(inter, pre, r0, r1)
        check(cancel)
        return _resize_channels(full, out_w, out_h, (0.0, 0.0, float(iw), float(ih)))

    shrunk = shrunk_colour() if plan.shrinks or plan.from_source else None
    rows_per_band = _store_band_rows(feature_map, plan, _band_rows(out_w, band_rows))
    prefetch = _prefetcher(engine, feature_map, plan)

    def colour_rows(r0: int, r1: int) -> np.ndarray:
        if shrunk is not None:
            return shrunk[r0:r1]
        return model_rows(plan, prefetch, r0, r1)

    def render_band(r0: int, r1: int) -> tuple[np.ndarray, np.ndarray | None]:
        check(cancel)
        if usm is None:
            rgb = colour_rows(r0, r1)
        else:  # the rows around the band too, so the filter sees what a whole-image filter would
            a0, a1 = max(0, r0 - usm.halo), min(out_h, r1 + usm.halo)
            rgb = usm.apply_rows(colour_rows(a0, a1), a0, r0, r1, out_h)
        if shrunk is not None and progress is not None:
            progress(r1 * out_w, total)
        colour = to_luma(rgb) if grey else rgb
        alpha = alpha_rs.rows(r0, r1) if alpha_rs is not None else None
        return colour, alpha

    bands = [(r0, min(out_h, r0 + rows_per_band)) for r0 in range(0, out_h, rows_per_band)]
    if fmt == "PNG":
        channels = (1 if grey else 3) + (1 if keep_alpha else 0)

        def paper(rows: int) -> np.ndarray:
            """Rows of white, opaque paper (a border), in bands of bounded size."""
            return quantize(np.ones((rows, file_w, channels), np.float32), depth)

        with atomic_output(out, replace=replace) as fh:
            writer = PngBandWriter(
                fh,
                file_w,
                file_h,
                channels=channels,
                bit_depth=depth,
                dpi=plan.dpi,
                icc=meta.icc,
                exif=meta.exif,
            )
            for r0 in range(0, top, rows_per_band):
                writer.write_rows(paper(min(top, r0 + rows_per_band) - r0))
            for r0, r1 in bands:
                colour, alpha = render_band(r0, r1)
                parts = [colour[..., None] if grey else colour]
                if keep_alpha and alpha is not None:
                    parts.append(alpha[..., None])
                block = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
                if file_w != out_w:
                    framed = np.ones((r1 - r0, file_w, channels), np.float32)
                    framed[:, left : left + out_w] = block
                    block = framed
                writer.write_rows(quantize(block, depth))
            below = file_h - top - out_h
            for r0 in range(0, below, rows_per_band):
                writer.write_rows(paper(min(below, r0 + rows_per_band) - r0))
            check(cancel)
            writer.close()
    else:
        white = 255 if depth == 8 else 65535  # the paper of a border: white and opaque
        colour_u = np.full(
            (file_h, file_w) if grey else (file_h, file_w, 3), white, np.uint8 if depth == 8 else np.uint16
        )
        alpha_u = np.full((file_h, file_w), white, colour_u.dtype) if alpha_rs is not None else None
        cols = slice(left, left + out_w)
        for r0, r1 in bands:
            colour, alpha = render_band(r0, r1)
            colour_u[top + r0 : top + r1, cols] = quantize(colour, depth)
            if alpha_u is not None and alpha is not None:
                alpha_u[top + r0 : top + r1, cols] = quantize(alpha, depth)
        check(cancel)
        if tiff16:
            write_tiff16(
                out,
                colour_u,
                alpha_u=alpha_u,
                dpi=plan.dpi,
                icc=meta.icc,
                exif=meta.exif,
                replace=replace,
                on_note=on_note,
            )
        else:
            save_image(
                out,
                colour_u,
                alpha_u=alpha_u,
                grayscale=grey,
                bit_depth=depth,
                dpi=plan.dpi,
                icc=meta.icc,
                exif=meta.exif,
                jpeg_quality=jpeg_quality,
                replace=replace,
                on_note=on_note,
            )
    if progress is not None:
        progress(total, total)
    return out
