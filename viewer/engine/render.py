"""The engine: encode a photo (lazily, tile by tile), then render any source rectangle at any output size.

The GUI's worker and the command line both use `Engine`. It holds the model on one device and keeps no
per-image state: `open_store` returns a `FeatureStore` that encodes tiles of the photo on demand (what the
viewer and the command line use), `encode` returns a whole `FeatureMap` (small images, evaluation), and
`render` takes either. A render first encodes the latents its window needs (`prefetch`), then decodes in
chunks of queries; between chunks the cancellation token is checked and progress is reported.

A tiny photo (smaller side under `TINY_PHOTO` pixels) is encoded by `open_store` inside an edge-replicated
frame as wide as the encoder's receptive radius, and rendered as the region of that frame that is the
photo (`grid_rect`): alone, the encoder's and the decoder's zero padding at its border shift its colours
by 20 levels and more (docs/analysis/tiny_photos.py). Larger photos are encoded as the paper does.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import json
import math
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from viewer.engine.cancel import CancelToken, ProgressCallback, check
from viewer.engine.device import dtype_name, resolve_device, resolve_precision
from viewer.engine.diskcache import TileDiskCache, TileNamespace
from viewer.engine.features import DEFAULT_TILE, Box, FeatureMap, FeatureStore, Latents, clip_box, photo_key
from viewer.engine.pools import shared_pool
from viewer.errors import ArgumentError
from viewer.liif.liif import LIIF
from viewer.liif.models import encoder_grid
from viewer.liif.query import Decoder, GridQuery, ProjectionCache, latent_centres, query

__all__ = [
    "TINY_PHOTO",
    "Engine",
    "FeatureMap",
    "FeatureStore",
    "Latents",
    "SourceRect",
    "grid_rect",
    "pixel_grid",
    "to_unit",
]

TINY_PHOTO = 16
"""A photo whose smaller side is below this many pixels is encoded inside an edge-replicated frame.

Measured by docs/analysis/tiny_photos.py (flat photos of two colours, every shipped model, x4 and x8, fp32,
output in docs/analysis/tiny_photos.txt): the paper's encode leaves a 1-pixel photo 33 to 51 levels off its
colour. From 16 pixels the mean drift is under 2 levels for every model, colour and scale (at 12 up to 2.07),
and what remains is the drift at any photo's border (the paper's zero padding, in the benchmark figures
too). Framed by the receptive radius, a photo under 16 pixels stays within 2.6 levels (each model's own
error on a flat colour); a frame only up to 16 pixels is not enough near the threshold (4.7 levels at 12).
The benchmark photos (100 pixels and more) are never framed."""


@dataclass(frozen=True)
class SourceRect:
    """A rectangle in source pixel units; pixel (0, 0) covers [0, 1) x [0, 1)."""

    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        vals = (self.x, self.y, self.w, self.h)
        if not all(math.isfinite(v) for v in vals) or self.w <= 0 or self.h <= 0:
            raise ArgumentError(
                f"invalid source rectangle {vals}: width and height must be positive and finite"
            )


def grid_rect(fm: Latents, rect: SourceRect) -> SourceRect:
    """`rect`, in the photo's pixels, as a region of `fm`'s latent grid: the same rectangle (the same
    object) unless a tiny photo was encoded inside a frame, then shifted by the frame's width."""
    oy, ox = fm.origin
    if oy == 0 and ox == 0:
        return rect
    return SourceRect(rect.x + ox, rect.y + oy, rect.w, rect.h)


def pixel_grid(
    rect: SourceRect, out_w: int, out_h: int, h: int, w: int, window: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised row and column centres (float32) of a window of the output grid, and its cell (2,).

    Computed in float64 from integer pixel indices, then rounded once, so a pixel gets the same
    coordinate whichever window it is rendered in.
    """
    r0, c0, r1, c1 = window
    rows = -1.0 + 2.0 * (rect.y + (np.arange(r0, r1, dtype=np.float64) + 0.5) * (rect.h / out_h)) / h
    cols = -1.0 + 2.0 * (rect.x + (np.arange(c0, c1, dtype=np.float64) + 0.5) * (rect.w / out_w)) / w
    cell = np.array([2.0 * rect.h / out_h / h, 2.0 * rect.w / out_w / w], dtype=np.float32)
    return rows.astype(np.float32), cols.astype(np.float32), cell


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """Source pixels as float32 in [0, 1]: uint8 / 255, uint16 / 65535, floats as they are."""
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) * np.float32(1 / 255)
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) * np.float32(1 / 65535)
    return np.ascontiguousarray(pixels, dtype=np.float32)


def window_latents(rect: SourceRect, out_w: int, out_h: int, window: tuple[int, int, int, int]) -> Box:
    """The latents (y0, y1, x0, x1) that rendering `window` of the grid can touch, unclipped.

    A query uses the four latents around its point, and the decoder's 3x3 unfold one more on each side;
    a margin of 3 covers both with room for rounding.
    """
    r0, c0, r1, c1 = window
    sy, sx = rect.h / out_h, rect.w / out_w
    y0 = math.floor(rect.y + r0 * sy) - 3
    y1 = math.ceil(rect.y + r1 * sy) + 3
    x0 = math.floor(rect.x + c0 * sx) - 3
    x1 = math.ceil(rect.x + c1 * sx) + 3
    return (y0, y1, x0, x1)


def _default_chunk(device: torch.device, decoder: Decoder) -> int:
    """Output pixels per decoder batch. On a CPU, as many as keep one batch's widest activations (four
    ensemble members of `decoder.query_width` values) near 16 MB, at least 4,096: the official decoder in
    fp32 gets 4,096 (more was slower: 5.4 s against 3.7 s for a 1280x320 render), `liif-lm` in bf16 about
    22,000 (a 2560x640 render took 0.37 s instead of 0.65 s with 4,096, its rows queried one at a time)."""
    if device.type != "cpu":
        return 262144
    itemsize = torch.empty((), dtype=decoder.dtype).element_size()
    return max(4096, (16 << 20) // (4 * decoder.query_width * itemsize))


MAX_DECODE_PARTS = 8
"""A CPU render is decoded by at most this many threads at once (see `_decode_threads`)."""

PART_BANDS = 2
"""A render is decoded by several threads only when it has at least this many batches (bands of rows)
per thread. A viewer tile (128 rows of 128 px on a CPU, one or two batches) stays on one thread with all
the intra-op threads: cut into smaller bands shared by two threads, 70 such tiles of a 1280 x 800 view at
x8 took 0.64 against 0.80 s alone in one process, but in the real window the full refine did not gain
(`bench --gui --zooms 8 --model liif-lm`, 3 alternating runs: 0.90 / 0.87 / 0.91 s against 0.82 / 0.88 /
0.71 s; the window's own threads share the 2 cores), 2026-12-06."""


def _decode_pool() -> ThreadPoolExecutor:
    """The threads that decode a CPU render's parts beside the calling thread (shared by every render)."""
    return shared_pool("decode", MAX_DECODE_PARTS - 1)


def _decode_threads(device: torch.device) -> int:
    """How many threads decode a render: on a CPU, one per intra-op thread of the calling thread (up to
    `MAX_DECODE_PARTS`), each with one intra-op thread of its own; elsewhere one.

    A small decoder's batch is dozens of short operations (gathers, sums, two 48-wide products), and with
    two intra-op threads each of them ends in the threads waiting for one another. Two threads each
    decoding their own bands alone were steadier and sooner: on the 2-core AMD EPYC development machine,
    `liif-lm`'s x8 decode of a 320 px photo (2560 x 2560) took 1.87 to 2.06 s (median 1.98, 8 rounds)
    against 1.92 to 3.01 s (median 2.12) with one thread of two intra-op threads, and the official
    decoder's 640 x 640 render 2.03 against 2.13 s (4 rounds); the same pixels (alternating in one
    process, 2026-12-06). Renders of fewer than `PART_BANDS` batches per thread (the viewer's tiles) stay
    on one thread."""
    if device.type != "cpu" or _per_thread_setter() is None:
        return 1
    return max(1, min(MAX_DECODE_PARTS, torch.get_num_threads()))


@functools.lru_cache(maxsize=1)
def _per_thread_setter() -> Callable[[int], None] | None:
    """OpenMP's `omp_set_num_threads` as torch loaded it (libgomp on Linux, libomp on macOS), or None.

    It sets the intra-op threads of the calling thread only. `torch.set_num_threads` also changes the
    count every thread started later takes, so a thread that began using torch during a render (the
    viewer's export, say) would keep one intra-op thread for good."""
    try:
        setter = ctypes.CDLL(None).omp_set_num_threads
    except (OSError, AttributeError, TypeError):
        return None
    setter.argtypes = (ctypes.c_int,)
    setter.restype = None
    return cast(Callable[[int], None], setter)


def _row_parts(n_rows: int, band: int, parts: int) -> list[tuple[int, int]]:
    """`n_rows` cut into at most `parts` contiguous ranges of whole bands, as even as they can be."""
    n_bands = max(1, math.ceil(n_rows / band))
    parts = max(1, min(parts, n_bands))
    edges = [min(n_rows, (n_bands * k // parts) * band) for k in range(parts)] + [n_rows]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


class Engine:
    """A LIIF model on one device, with a decoder prepared for one precision. Safe to share across threads."""

    def __init__(
        self,
        model: LIIF,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        *,
        chunk: int | None = None,
        model_name: str = "custom",
        encode_budget_bytes: int = 384 << 20,
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.precision = dtype_name(self.dtype)
        self.feature_dtype = torch.float32 if precision.strip().lower() == "fp32" else torch.float16
        self.encode_dtype = (
            self.dtype if self.dtype == torch.bfloat16 and self.device.type in ("cpu", "cuda") else None
        )
        """The encoder runs under bf16 autocast when the decoder runs in bf16 (where `auto` picks it, the
        CPU has native bf16): about 1.8x faster on a CPU with AVX512-BF16, at 0.003 to 0.006 dB PSNR on
        Set5 with the official model (README, Performance). fp32 keeps the encoder exact."""
        """How stored tiles are kept: half precision (half the memory; the PSNR cost is in the README)
        unless exact fp32 was asked for, which keeps every tile in fp32."""
        self._model_key: str | None = None
        self.model = model.to(self.device).eval()
        self._channels_last = self.device.type == "cpu"
        """On a CPU the encoder's convolutions run about 15% faster (25% for the old-photo clean-up network)
        with channels-last tensors (oneDNN's native layout); the features are the same within 1e-5."""
        if self._channels_last:
            # A documented keyword of Module.to that torch's type stubs leave out.
            self.model.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model_name = model_name
        self.decoder = Decoder(self.model, self.dtype, self.device)
        self.chunk = chunk or _default_chunk(self.device, self.decoder)
        self.encode_budget_bytes = encode_budget_bytes

    @classmethod
    def from_name(cls, name_or_path: str, device: str = "auto", precision: str = "auto") -> Engine:
        """Load a registry model (or a weights file) onto `device`; raises the catalog's errors when missing."""
        from viewer.engine.weights import AUTO_MODEL, auto_model, resolve_model_path
        from viewer.liif.checkpoint import load_model

        dev = resolve_device(device)
        resolve_precision(precision, dev)  # validate before the (slow) load
        if name_or_path == AUTO_MODEL:
            name_or_path = auto_model(dev.type)
        path = resolve_model_path(name_or_path)
        label = name_or_path if path.name != name_or_path else path.stem
        return cls(load_model(path, "cpu"), dev, precision, model_name=label)

    # -- encoding -----------------------------------------------------------------------------------
    def frame_width(self, h: int, w: int) -> int:
        """Pixels of edge-replicated frame `open_store` puts around an h x w photo: the encoder's receptive
        radius for a tiny photo (smaller side under `TINY_PHOTO`), so none of its latents sees the zero
        padding; 0 (no frame, the paper's encode) otherwise."""
        return int(self.model.receptive_radius) if min(h, w) < TINY_PHOTO else 0

    def _encode_side(self) -> int:
        """Edge (source pixels) of the largest square crop whose activations fit the encode memory budget."""
        enc = self.model.encoder
        width = int(getattr(enc, "out_dim", 64))
        depth = int(getattr(enc, "depth", 0))  # RDN concatenates every block's output before fusing
        peak_channels = width * (depth + 4)
        return int(math.sqrt(self.encode_budget_bytes / (4 * peak_channels)))

    def encode_tile_size(self, blur_share: float | None = None) -> int:
        """Tile edge (source pixels) so one tile's activations, halo included, stay within the budget;
        a multiple of the grid a deblur pre-pass is shift-equivariant on, so its pieces equal the whole.
        `blur_share`: the photo's estimate, where a photo gate that skips the deblur network leaves only
        the encoder's halo (`LIIF.radius_for`), so the tiles can be larger."""
        grid = encoder_grid(self.model.encoder)
        side = max(64, self._encode_side() - 2 * self.model.radius_for(blur_share))
        return max(grid, side // grid * grid)

    def encode_tiles(self, h: int, w: int, blur_share: float | None = None) -> tuple[int, int]:
        """Tile height and width for an h x w photo: an axis that fits the budget's crop whole is not cut.

        A crop needs no halo where it meets the photo's edge, so a side of up to the budget's crop edge is
        encoded in one piece; cutting it would encode the halo twice over (for the old-photo models, whose
        halo is twice the official one, a 512-pixel photo took four crops and 1.6 times the work).
        """
        side, tile = self._encode_side(), self.encode_tile_size(blur_share)
        return (h if h <= side else tile), (w if w <= side else tile)

    def blur_share(self, pixels: np.ndarray) -> float | None:
        """The whole photo's blur estimate (H, W, 3 pixels) where the model's deblur pass has a photo gate
        (`LIIF.photo_gated`), else None: measured once per photo, so every tile is gated as the whole."""
        if not self.model.photo_gated:
            return None
        from viewer.liif.mssnet import photo_blur_share

        return photo_blur_share(pixels)

    def photo_gate_note(self, share: float) -> str:
        """What the model's photo-gated deblur pass does to a photo of blur estimate `share`, in a line."""
        from viewer.liif.mssnet import DeblurredEncoder

        enc = self.model.encoder
        while not isinstance(enc, DeblurredEncoder):  # behind a clean-up pass, say
            enc = cast(torch.nn.Module, enc.inner)
        return enc.deblur.describe(share)

    @torch.inference_mode()
    def encode_region(
        self,
        pixels: np.ndarray,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        cancel: CancelToken | None = None,
        blur_share: float | None = None,
    ) -> torch.Tensor:
        """The exact latents of source rectangle [y0, y1) x [x0, x1) of `pixels` (H, W, 3; uint8, uint16
        or float in [0, 1]) as float32 (C, y1-y0, x1-x0) on the device.

        Each piece is encoded from its crop plus a halo of the encoder's receptive radius (zero padding
        only at the photo's edge, as in a whole-photo encode), cut so one piece's activations fit the
        encode memory budget; the result equals the same part of a whole-photo encode within float
        tolerance. `blur_share`: the photo's (`blur_share`), measured here from `pixels` if not given.
        """
        if blur_share is None:
            blur_share = self.blur_share(pixels)
        h, w = pixels.shape[:2]
        halo = self.model.radius_for(blur_share)  # smaller where a photo gate skips its network
        side = self._encode_side()
        tile = self.encode_tile_size(blur_share)
        tile_h = (y1 - y0) if min(h, y1 + halo) - max(0, y0 - halo) <= side else tile
        tile_w = (x1 - x0) if min(w, x1 + halo) - max(0, x0 - halo) <= side else tile
        feat = torch.empty((self.model.feat_dim, y1 - y0, x1 - x0), dtype=torch.float32, device=self.device)
        for ty in range(y0, y1, tile_h):
            for tx in range(x0, x1, tile_w):
                check(cancel)
                th, tw = min(tile_h, y1 - ty), min(tile_w, x1 - tx)
                cy0, cy1 = max(0, ty - halo), min(h, ty + th + halo)
                cx0, cx1 = max(0, tx - halo), min(w, tx + tw + halo)
                crop = torch.from_numpy(to_unit(pixels[cy0:cy1, cx0:cx1]))
                inp = ((crop.permute(2, 0, 1).unsqueeze(0) - 0.5) / 0.5).to(self.device)
                if self._channels_last:
                    inp = inp.contiguous(memory_format=torch.channels_last)
                if self.encode_dtype is not None:
                    with torch.autocast(self.device.type, dtype=self.encode_dtype):
                        out = self.model.encode(inp, blur_share)[0]
                else:
                    out = self.model.encode(inp, blur_share)[0]
                # One pass converts a bf16 result to float32 and its channels-last layout to (C, h, w),
                # for only the part kept (not the halo): the same values as converting it whole first.
                feat[:, ty - y0 : ty - y0 + th, tx - x0 : tx - x0 + tw] = out[
                    :, ty - cy0 : ty - cy0 + th, tx - cx0 : tx - cx0 + tw
                ]
                del out, inp
        return feat

    @torch.inference_mode()
    def encode(
        self, rgb: np.ndarray, cancel: CancelToken | None = None, progress: ProgressCallback | None = None
    ) -> FeatureMap:
        """Encode a whole (H, W, 3) image (uint8, uint16 or float in [0, 1]) into one `FeatureMap`.

        Tiled with a halo of the encoder's receptive radius, so the result equals the untiled encoder
        (within float tolerance) at bounded memory. For photos of any size, `open_store` encodes only
        what is asked for.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ArgumentError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        share = self.blur_share(rgb)
        tile_h, tile_w = self.encode_tiles(h, w, share)
        feat = torch.empty((self.model.feat_dim, h, w), dtype=torch.float32, device=self.device)
        tiles = [(y, x) for y in range(0, h, tile_h) for x in range(0, w, tile_w)]
        for n, (ty, tx) in enumerate(tiles):
            th, tw = min(tile_h, h - ty), min(tile_w, w - tx)
            feat[:, ty : ty + th, tx : tx + tw] = self.encode_region(
                rgb, ty, ty + th, tx, tx + tw, cancel, share
            )
            if progress is not None:
                progress(n + 1, len(tiles))
        return FeatureMap(feat)

    @property
    def model_key(self) -> str:
        """A digest of the encoder's architecture and weights: what a cached tile was encoded with. The
        decoder is left out, so models sharing the official encoder (the official model, liif-lm) share
        tiles."""
        if self._model_key is None:
            h = hashlib.blake2b(digest_size=16)
            encoder_spec = self.model.spec["args"]["encoder_spec"]
            h.update(json.dumps(encoder_spec, sort_keys=True, default=str).encode())
            h.update(f"encode {self.encode_dtype}".encode())  # bf16-encoded tiles differ from fp32 ones
            for name, t in sorted(self.model.encoder.state_dict().items()):
                h.update(name.encode())
                h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._model_key = h.hexdigest()
        return self._model_key

    def open_store(
        self,
        pixels: np.ndarray,
        *,
        budget_bytes: int | None = None,
        disk: TileDiskCache | None = None,
        content_key: str | None = None,
        tile: int = DEFAULT_TILE,
        dtype: torch.dtype | None = None,
    ) -> FeatureStore:
        """A lazily encoded store of `pixels` (H, W, 3; held as given, uint8 or uint16): nothing is encoded
        until a render, `prefetch` or `crop` asks for it. With `disk`, tiles are also written to and read
        from the disk cache, keyed by `content_key` (default: a digest of the pixels) and the model.
        `dtype` overrides how tiles are stored (default `feature_dtype`).

        A tiny photo is encoded inside an edge-replicated frame (`frame_width`); the store's grid is then
        the framed photo, and its `origin` says where the photo is in it (renders take care of that)."""
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ArgumentError(f"expected an (H, W, 3) image, got shape {pixels.shape}")
        share = self.blur_share(pixels)  # of the photo, not of the frame around a tiny one
        pad = self.frame_width(*pixels.shape[:2])
        if pad:
            content_key = f"{content_key or photo_key(pixels)} framed {pad}"
            pixels = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        h, w = pixels.shape[:2]
        store_dtype = dtype or self.feature_dtype
        if store_dtype not in (torch.float16, torch.float32):
            raise ArgumentError(f"tiles are stored in float16 or float32, not {store_dtype}")
        ns = None
        if disk is not None and disk.enabled:
            ns = TileNamespace(
                content_key or photo_key(pixels),
                self.model_key,
                "float32" if store_dtype == torch.float32 else "float16",
                tile,
            )

        def encode(y0: int, y1: int, x0: int, x1: int, cancel: CancelToken | None) -> torch.Tensor:
            return self.encode_region(pixels, y0, y1, x0, x1, cancel, share)

        batch = max(tile, self._encode_side() - 2 * self.model.receptive_radius)
        store = FeatureStore(
            encode,
            h,
            w,
            self.model.feat_dim,
            self.device,
            tile=tile,
            batch=batch,
            budget_bytes=budget_bytes,
            dtype=store_dtype,
            disk=disk,
            namespace=ns,
        )
        if pad:
            store.set_frame(pad)
        store.blur_share = share
        return store

    def prefetch_window(
        self,
        fm: Latents,
        rect: SourceRect,
        out_w: int,
        out_h: int,
        window: tuple[int, int, int, int] | None = None,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Encode the latents that rendering `window` of the grid over `rect` (photo pixels) needs (none for
        a whole `FeatureMap`)."""
        return self._prefetch_grid(fm, grid_rect(fm, rect), out_w, out_h, window, cancel, progress)

    def _prefetch_grid(
        self,
        fm: Latents,
        rect: SourceRect,
        out_w: int,
        out_h: int,
        window: tuple[int, int, int, int] | None = None,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """`prefetch_window` for `rect` already in the latent grid's pixels."""
        win = window if window is not None else (0, 0, out_h, out_w)
        box = clip_box(self.projection_box(window_latents(rect, out_w, out_h, win)), fm.height, fm.width)
        return 0 if box is None else fm.prefetch(box, cancel, progress)

    def projection_box(self, box: Box) -> Box:
        """The latents the decoder's projection cache reads to serve queries on `box`: whole blocks of it,
        plus the unfold's neighbour on each side. Prefetching this, not just `box`, encodes everything in
        one pass instead of thin strips later."""
        b = 32  # ProjectionCache's block edge
        p = self.decoder.kernel // 2
        y0, y1, x0, x1 = box
        return (y0 // b * b - p, -(-y1 // b) * b + p, x0 // b * b - p, -(-x1 // b) * b + p)

    # -- querying -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def query(self, fm: Latents, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """Raw decoder output (normalised units, unclamped) at coord (N, 2) with cell (N, 2) or (2,)."""
        cache = fm.projection(self.decoder)
        out = []
        for s in range(0, coord.shape[0], self.chunk):
            c = cell if cell.dim() == 1 else cell[s : s + self.chunk]
            out.append(query(self.decoder, cache, coord[s : s + self.chunk], c))
        return torch.cat(out) if out else torch.empty((0, 3), device=self.device)

    @torch.inference_mode()
    def render(
        self,
        fm: Latents,
        rect: SourceRect,
        out_w: int,
        out_h: int,
        *,
        window: tuple[int, int, int, int] | None = None,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Render `rect` (photo pixels) as an out_w x out_h grid (or the block `window=(r0, c0, r1, c1)` of it).

        Each output pixel samples its centre with a cell equal to its footprint. A window's pixels are
        bit-identical to the same pixels of the whole grid, so tiles need no blending. A tiny photo's
        framed store is rendered over the photo's own region of its grid (`grid_rect`). Returns float32
        (rows, cols, 3) in [0, 1]; raises Cancelled when `cancel` is set.
        """
        if out_w <= 0 or out_h <= 0:
            raise ArgumentError(f"invalid output size {out_w}x{out_h}")
        r0, c0, r1, c1 = window if window is not None else (0, 0, out_h, out_w)
        if not (0 <= r0 < r1 <= out_h and 0 <= c0 < c1 <= out_w):
            raise ArgumentError(f"window {window} is outside the {out_w}x{out_h} output")
        rect = grid_rect(fm, rect)
        self._prefetch_grid(fm, rect, out_w, out_h, (r0, c0, r1, c1), cancel)
        h, w = fm.height, fm.width
        ncols = c1 - c0
        n_rows = r1 - r0
        rows, cols, cell_np = pixel_grid(rect, out_w, out_h, h, w, (r0, c0, r1, c1))
        rows_t = torch.from_numpy(rows).to(self.device)
        cols_t = torch.from_numpy(cols).to(self.device)
        cell = torch.from_numpy(cell_np)
        cache = fm.projection(self.decoder)
        out = np.empty((n_rows, ncols, 3), dtype=np.float32)
        # Whole rows at a time, about `chunk` pixels (at least one row), through the grid query.
        band = max(1, self.chunk // ncols)
        centres = (latent_centres(h, self.device), latent_centres(w, self.device))
        threads = _decode_threads(self.device)
        if threads > 1 and math.ceil(n_rows / band) >= threads * PART_BANDS:
            parts = _row_parts(n_rows, band, threads)
            self._render_parts(cache, cols_t, cell, centres, rows_t, out, band, parts, cancel, progress)
            return out
        grid = GridQuery(self.decoder, cache, cols_t, cell, centres)
        total = max(1, math.ceil(n_rows / band))
        done = 0
        s = 0
        while s < n_rows:
            check(cancel)
            e = min(n_rows, s + band)
            try:
                pred = grid(rows_t[s:e])
            except torch.OutOfMemoryError:
                if self.chunk <= 1024 or band == 1:
                    raise
                self.chunk //= 2  # retry this band smaller; later renders keep the smaller size
                band = max(1, self.chunk // ncols)
                total = done + math.ceil((n_rows - s) / band)
                continue
            out[s:e] = (pred * 0.5 + 0.5).clamp_(0, 1).cpu().numpy().reshape(e - s, ncols, 3)
            s = e
            done += 1
            if progress is not None:
                progress(done, max(total, done))
        return out

    def _render_parts(
        self,
        cache: ProjectionCache,
        cols_t: torch.Tensor,
        cell: torch.Tensor,
        centres: tuple[torch.Tensor, torch.Tensor],
        rows_t: torch.Tensor,
        out: np.ndarray,
        band: int,
        parts: list[tuple[int, int]],
        cancel: CancelToken | None,
        progress: ProgressCallback | None,
    ) -> None:
        """`render`'s bands on a CPU, decoded by one thread per part of `parts`, each with one intra-op
        thread (the first part by the calling thread, which alone reports progress). Each thread decodes
        its own part from the top down, then takes bands from the bottom of the part with the most left
        (neighbouring bands share latent rows, which a thread then has already): the threads end
        together. The same pixels as one thread (each band's arithmetic is the same), sooner: see
        `_decode_threads`. A thread that fails (or is cancelled) stops the others at their next band, and
        its error is raised."""
        ncols, n_rows = cols_t.shape[0], rows_t.shape[0]
        fronts = [r0 // band for r0, _ in parts]  # the next band of each part, from its top
        backs = [math.ceil(r1 / band) for _, r1 in parts]  # one past its last band not taken
        total = backs[-1]
        lock = threading.Lock()
        done = [0]
        stop = threading.Event()
        threads = torch.get_num_threads()  # the calling thread's (this also sets up a pool thread's)
        per_part = max(1, threads // len(parts))
        set_threads = _per_thread_setter()
        assert set_threads is not None  # `_decode_threads` splits nothing without it

        def take(own: int) -> int | None:
            with lock:
                if fronts[own] < backs[own]:
                    fronts[own] += 1
                    return fronts[own] - 1
                most = max(range(len(parts)), key=lambda k: backs[k] - fronts[k])
                if backs[most] <= fronts[most]:
                    return None
                backs[most] -= 1
                return backs[most]

        def decode(own: int) -> None:
            torch.get_num_threads()  # a new thread takes torch's default first, then this one's own count
            set_threads(per_part)
            try:
                grid = GridQuery(self.decoder, cache, cols_t, cell, centres)
                while (b := take(own)) is not None:
                    if stop.is_set():
                        return
                    check(cancel)
                    s, e = b * band, min(n_rows, (b + 1) * band)
                    pred = grid(rows_t[s:e])
                    out[s:e] = (pred * 0.5 + 0.5).clamp_(0, 1).numpy().reshape(e - s, ncols, 3)
                    with lock:
                        done[0] += 1
                        now = done[0]
                    if own == 0 and progress is not None:
                        progress(now, total)
            except BaseException:
                stop.set()
                raise

        try:
            helpers = [_decode_pool().submit(decode, k) for k in range(1, len(parts))]
            try:
                decode(0)
            finally:
                futures.wait(helpers)
            for helper in helpers:
                helper.result()
        finally:
            set_threads(threads)  # the calling thread's own count again
        if progress is not None:
            progress(total, total)

    def render_scale(
        self,
        fm: Latents,
        out_w: int,
        out_h: int,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """The whole photo at out_w x out_h (LIIF's demo)."""
        return self.render(
            fm,
            SourceRect(0, 0, fm.photo_width, fm.photo_height),
            out_w,
            out_h,
            cancel=cancel,
            progress=progress,
        )
