"""The engine: encode a photo once (tiled), then render any source rectangle at any output size.

The GUI's worker and the command line both use `Engine`. It holds the model on one device and keeps no
per-image state: `encode` returns a `FeatureMap`, and `render` takes one. Renders are split into chunks
of queries; between chunks the cancellation token is checked and progress is reported.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from viewer.engine.cancel import CancelToken, ProgressCallback, check
from viewer.engine.device import dtype_name, resolve_device, resolve_precision
from viewer.errors import ArgumentError
from viewer.liif.liif import LIIF
from viewer.liif.query import Decoder, ProjectionCache, latent_centres, query


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


@dataclass
class FeatureMap:
    """An encoded photo: its latent grid (C, H, W) on the engine's device, plus caches derived from it."""

    feat: torch.Tensor
    _caches: dict[int, ProjectionCache] = field(default_factory=dict, repr=False)
    _derived: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def height(self) -> int:
        return int(self.feat.shape[1])

    @property
    def width(self) -> int:
        return int(self.feat.shape[2])

    def projection(self, decoder: Decoder) -> ProjectionCache:
        """The per-latent projection cache for `decoder`, created on first use."""
        with self._lock:
            cache = self._caches.get(id(decoder))
            if cache is None:
                cache = ProjectionCache(self.feat, decoder)
                self._caches[id(decoder)] = cache
            return cache

    def derived(self, key: str, make: Callable[[], Any]) -> Any:
        """A value computed from this map once (e.g. its PCA image), then reused.

        `make` runs outside the lock, so a slow one does not block the projection cache; if two threads
        race, the first stored value wins and both get it.
        """
        with self._lock:
            if key in self._derived:
                return self._derived[key]
        value = make()
        with self._lock:
            return self._derived.setdefault(key, value)


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


def _default_chunk(device: torch.device) -> int:
    return 4096 if device.type == "cpu" else 262144


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
        self.model = model.to(self.device).eval()
        self._channels_last = self.device.type == "cpu"
        """On a CPU the encoder's convolutions run about 15% faster (25% for the old-photo clean-up network)
        with channels-last tensors (oneDNN's native layout); the features are the same within 1e-5."""
        if self._channels_last:
            # A documented keyword of Module.to that torch's type stubs leave out.
            self.model.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model_name = model_name
        self.chunk = chunk or _default_chunk(self.device)
        self.decoder = Decoder(self.model, self.dtype, self.device)
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
    def _encode_side(self) -> int:
        """Edge (source pixels) of the largest square crop whose activations fit the encode memory budget."""
        enc = self.model.encoder
        width = int(getattr(enc, "out_dim", 64))
        depth = int(getattr(enc, "depth", 0))  # RDN concatenates every block's output before fusing
        peak_channels = width * (depth + 4)
        return int(math.sqrt(self.encode_budget_bytes / (4 * peak_channels)))

    def encode_tile_size(self) -> int:
        """Tile edge (source pixels) so one tile's activations, halo included, stay within the budget."""
        return max(64, self._encode_side() - 2 * self.model.receptive_radius)

    def encode_tiles(self, h: int, w: int) -> tuple[int, int]:
        """Tile height and width for an h x w photo: an axis that fits the budget's crop whole is not cut.

        A crop needs no halo where it meets the photo's edge, so a side of up to the budget's crop edge is
        encoded in one piece; cutting it would encode the halo twice over (for the old-photo models, whose
        halo is twice the official one, a 512-pixel photo took four crops and 1.6 times the work).
        """
        side, tile = self._encode_side(), self.encode_tile_size()
        return (h if h <= side else tile), (w if w <= side else tile)

    @torch.inference_mode()
    def encode(
        self, rgb: np.ndarray, cancel: CancelToken | None = None, progress: ProgressCallback | None = None
    ) -> FeatureMap:
        """Encode an (H, W, 3) float image in [0, 1]. Tiled with a halo of the encoder's receptive radius,
        so the result equals the untiled encoder (within float tolerance) at bounded memory."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ArgumentError(f"expected an (H, W, 3) image, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        halo = self.model.receptive_radius
        tile_h, tile_w = self.encode_tiles(h, w)
        feat = torch.empty((self.model.feat_dim, h, w), dtype=torch.float32, device=self.device)
        tiles = [(y, x) for y in range(0, h, tile_h) for x in range(0, w, tile_w)]
        for n, (ty, tx) in enumerate(tiles):
            check(cancel)
            y0, y1 = max(0, ty - halo), min(h, ty + tile_h + halo)
            x0, x1 = max(0, tx - halo), min(w, tx + tile_w + halo)
            crop = torch.from_numpy(np.ascontiguousarray(rgb[y0:y1, x0:x1], dtype=np.float32))
            inp = ((crop.permute(2, 0, 1).unsqueeze(0) - 0.5) / 0.5).to(self.device)
            if self._channels_last:
                inp = inp.contiguous(memory_format=torch.channels_last)
            out = self.model.encode(inp)[0]
            th, tw = min(tile_h, h - ty), min(tile_w, w - tx)
            feat[:, ty : ty + th, tx : tx + tw] = out[:, ty - y0 : ty - y0 + th, tx - x0 : tx - x0 + tw]
            del out, inp
            if progress is not None:
                progress(n + 1, len(tiles))
        return FeatureMap(feat)

    # -- querying -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def query(self, fm: FeatureMap, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
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
        fm: FeatureMap,
        rect: SourceRect,
        out_w: int,
        out_h: int,
        *,
        window: tuple[int, int, int, int] | None = None,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Render `rect` as an out_w x out_h grid (or the block `window=(r0, c0, r1, c1)` of it).

        Each output pixel samples its centre with a cell equal to its footprint. A window's pixels are
        bit-identical to the same pixels of the whole grid, so tiles need no blending. Returns float32
        (rows, cols, 3) in [0, 1]; raises Cancelled when `cancel` is set.
        """
        if out_w <= 0 or out_h <= 0:
            raise ArgumentError(f"invalid output size {out_w}x{out_h}")
        r0, c0, r1, c1 = window if window is not None else (0, 0, out_h, out_w)
        if not (0 <= r0 < r1 <= out_h and 0 <= c0 < c1 <= out_w):
            raise ArgumentError(f"window {window} is outside the {out_w}x{out_h} output")
        h, w = fm.height, fm.width
        ncols = c1 - c0
        n = (r1 - r0) * ncols
        rows, cols, cell_np = pixel_grid(rect, out_w, out_h, h, w, (r0, c0, r1, c1))
        rows_t = torch.from_numpy(rows).to(self.device)
        cols_t = torch.from_numpy(cols).to(self.device)
        cell = torch.from_numpy(cell_np)
        cache = fm.projection(self.decoder)
        centres = (latent_centres(h, self.device), latent_centres(w, self.device))
        out = np.empty((n, 3), dtype=np.float32)
        total = max(1, math.ceil(n / self.chunk))
        done = 0
        s = 0
        while s < n:
            check(cancel)
            e = min(n, s + self.chunk)
            idx = torch.arange(s, e, device=self.device)
            coord = torch.stack((rows_t[idx // ncols], cols_t[idx % ncols]), dim=1)
            try:
                pred = query(self.decoder, cache, coord, cell, centres)
            except torch.OutOfMemoryError:
                if self.chunk <= 1024:
                    raise
                self.chunk //= 2  # retry this chunk smaller; later renders keep the smaller size
                total = done + math.ceil((n - s) / self.chunk)
                continue
            out[s:e] = (pred * 0.5 + 0.5).clamp_(0, 1).cpu().numpy()
            s = e
            done += 1
            if progress is not None:
                progress(done, max(total, done))
        return out.reshape(r1 - r0, ncols, 3)

    def render_scale(
        self,
        fm: FeatureMap,
        out_w: int,
        out_h: int,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """The whole image at out_w x out_h (LIIF's demo)."""
        return self.render(
            fm, SourceRect(0, 0, fm.width, fm.height), out_w, out_h, cancel=cancel, progress=progress
        )
