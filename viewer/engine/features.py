"""Encoded photos: a dense feature map, or a lazy tiled store that encodes only what is asked for.

Both answer the same questions for the query: their size, and `crop(y0, y1, x0, x1)`, the exact latents
of a rectangle as float32 (C, h, w). The query's projection cache reads latents only through `crop`.

`FeatureStore` is what the viewer and the command line use. The latent grid is cut into square tiles
(32 latents by default). A tile is encoded on demand from its source crop plus the encoder's receptive
halo, so any set of tiles equals the same part of a whole-photo encode. Tiles are kept in memory under a
byte budget with least-recently-used eviction, in half precision unless exact fp32 was asked for, and
optionally written through to an on-disk cache (`diskcache.TileDiskCache`) keyed by the photo's content
and the model, so that reopening a photo is instant. `prefetch` lets a caller encode the tiles it will
need in one pass, in the order it chooses (centre first), with cancellation between encode batches.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from viewer.engine.cancel import CancelToken, ProgressCallback, check
from viewer.engine.diskcache import TileDiskCache, TileNamespace
from viewer.engine.memory import default_memory_budget
from viewer.liif.query import Decoder, ProjectionCache

#: Edge of a stored tile, in latents (= source pixels): the decoder's projection block (32), so the first
#: tile of a zoomed view encodes at most about 164 x 164 source pixels with its halo instead of 260 x 260
#: with 64-latent tiles (its first refined tile came 1.5 to 2x sooner, `liif-viewer bench --big`).
DEFAULT_TILE = 32

EncodeRegion = Callable[[int, int, int, int, "CancelToken | None"], torch.Tensor]
"""encode(y0, y1, x0, x1, cancel) -> float32 (C, y1-y0, x1-x0): the exact latents of a source rectangle."""

Box = tuple[int, int, int, int]
"""(y0, y1, x0, x1), half-open, in latents."""


class Latents:
    """What the query needs of an encoded photo: its size, exact crops, and caches derived from it."""

    def __init__(self, height: int, width: int, channels: int, device: torch.device) -> None:
        self.height = int(height)
        self.width = int(width)
        self.channels = int(channels)
        self.device = device
        self.origin: tuple[int, int] = (0, 0)
        """(row, col) of the photo's pixel (0, 0) in the latent grid. Not (0, 0) only for a tiny photo, which
        the engine encodes inside an edge-replicated frame (`Engine.open_store`): renders take the photo's
        own region of the grid (`render.grid_rect`)."""
        self.photo_height = self.height
        self.photo_width = self.width
        """The photo's size in pixels: the grid's, less any frame."""
        self._caches: dict[int, ProjectionCache] = {}
        self._derived: dict[str, Any] = {}
        self._lock = threading.Lock()

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Latents [y0, y1) x [x0, x1) (inside the map) as float32 (C, h, w) on the device."""
        raise NotImplementedError

    def set_frame(self, pad: int) -> None:
        """Mark the grid as the photo edge-replicated by `pad` pixels on every side (see `origin`)."""
        self.origin = (pad, pad)
        self.photo_height = self.height - 2 * pad
        self.photo_width = self.width - 2 * pad

    def photo_box(self) -> Box:
        """The photo's own latents (y0, y1, x0, x1) in the grid: the whole grid unless it has a frame."""
        oy, ox = self.origin
        return (oy, oy + self.photo_height, ox, ox + self.photo_width)

    def prefetch(
        self,
        box: Box,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Make the latents of `box` ready (encode what is missing); returns how many tiles were encoded."""
        return 0

    def projection(self, decoder: Decoder) -> ProjectionCache:
        """The per-latent projection cache for `decoder`, created on first use."""
        with self._lock:
            cache = self._caches.get(id(decoder))
            if cache is None:
                cache = ProjectionCache(self, decoder)
                self._caches[id(decoder)] = cache
            return cache

    def forget(self) -> None:
        """Drop everything computed from the latents (projections, derived values), so the next query
        computes them again: what a photo opened anew would cost (benchmarks)."""
        with self._lock:
            self._caches.clear()
            self._derived.clear()

    def derived(self, key: str, make: Callable[[], Any]) -> Any:
        """A value computed from this map once (e.g. its PCA basis), then reused.

        `make` runs outside the lock, so a slow one does not block the projection cache; if two threads
        race, the first stored value wins and both get it.
        """
        with self._lock:
            if key in self._derived:
                return self._derived[key]
        value = make()
        with self._lock:
            return self._derived.setdefault(key, value)


class FeatureMap(Latents):
    """A whole encoded photo held as one tensor (C, H, W): for small images, tests and evaluation."""

    def __init__(self, feat: torch.Tensor) -> None:
        super().__init__(feat.shape[1], feat.shape[2], feat.shape[0], feat.device)
        self.feat = feat

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        return self.feat[:, y0:y1, x0:x1].float()


def clip_box(box: Box, h: int, w: int) -> Box | None:
    """`box` clipped to an h x w grid, or None if nothing is left."""
    y0, y1, x0, x1 = max(0, box[0]), min(h, box[1]), max(0, box[2]), min(w, box[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


class FeatureStore(Latents):
    """Lazily encoded tiles of one photo under a memory budget (LRU), optionally backed by a disk cache.

    Thread-safe: the viewport worker and an export may use one store. Encodes are serialised (one device).
    """

    def __init__(
        self,
        encode: EncodeRegion,
        height: int,
        width: int,
        channels: int,
        device: torch.device,
        *,
        tile: int = DEFAULT_TILE,
        batch: int = 512,
        budget_bytes: int | None = None,
        dtype: torch.dtype = torch.float16,
        disk: TileDiskCache | None = None,
        namespace: TileNamespace | None = None,
    ) -> None:
        super().__init__(height, width, channels, device)
        if tile < 8:
            raise ValueError(f"tile edge {tile} is too small")
        self.tile = int(tile)
        self.batch_tiles = max(1, int(batch) // self.tile)
        """Tiles per side of one encode pass (the engine sizes it from its encode memory budget)."""
        self.dtype = dtype
        self.budget_bytes = int(budget_bytes if budget_bytes is not None else default_memory_budget())
        self._encode = encode
        self._disk = disk if disk is not None and namespace is not None else None
        self._ns = namespace
        self._tiles: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._tiles_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self.rows = math.ceil(self.height / self.tile)
        self.cols = math.ceil(self.width / self.tile)
        self.encoded = 0
        """Tiles encoded by the model so far (not counting disk hits)."""
        self.from_disk = 0
        self.evicted = 0
        self.blur_share: float | None = None
        """The photo's blur estimate where the engine's deblur pass has a photo gate (`Engine.open_store`
        sets it), so the viewer can say what the pass does to this photo; None otherwise."""

    def forget(self) -> None:
        """Drop the tiles held in memory too (the disk cache keeps its copies)."""
        super().forget()
        with self._tiles_lock:
            self._tiles.clear()
            self._bytes = 0

    # -- geometry ------------------------------------------------------------------------------------
    def tile_box(self, i: int, j: int) -> Box:
        t = self.tile
        return (i * t, min(self.height, (i + 1) * t), j * t, min(self.width, (j + 1) * t))

    def tiles_in(self, box: Box) -> list[tuple[int, int]]:
        """Indices of the tiles that `box` touches, row by row."""
        b = clip_box(box, self.height, self.width)
        if b is None:
            return []
        t = self.tile
        return [
            (i, j)
            for i in range(b[0] // t, (b[1] - 1) // t + 1)
            for j in range(b[2] // t, (b[3] - 1) // t + 1)
        ]

    # -- state ---------------------------------------------------------------------------------------
    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._tiles)

    def has(self, i: int, j: int) -> bool:
        with self._tiles_lock:
            return (i, j) in self._tiles

    def missing(self, box: Box) -> list[tuple[int, int]]:
        """Tiles of `box` not in memory."""
        with self._tiles_lock:
            return [k for k in self.tiles_in(box) if k not in self._tiles]

    def _get(self, key: tuple[int, int]) -> torch.Tensor | None:
        with self._tiles_lock:
            hit = self._tiles.get(key)
            if hit is not None:
                self._tiles.move_to_end(key)
            return hit

    def _insert(self, key: tuple[int, int], value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        with self._tiles_lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            self._tiles[key] = value
            self._bytes += size
            while self._bytes > self.budget_bytes and len(self._tiles) > 1:
                _, gone = self._tiles.popitem(last=False)
                self._bytes -= gone.numel() * gone.element_size()
                self.evicted += 1

    def _from_disk(self, key: tuple[int, int]) -> bool:
        if self._disk is None or self._ns is None:
            return False
        y0, y1, x0, x1 = self.tile_box(*key)
        arr = self._disk.get(self._ns, key, (self.channels, y1 - y0, x1 - x0))
        if arr is None:
            return False
        self._insert(key, torch.from_numpy(arr.copy()).to(self.device))
        self.from_disk += 1
        return True

    # -- encoding ------------------------------------------------------------------------------------
    def _encode_box(self, keys: list[tuple[int, int]], cancel: CancelToken | None) -> int:
        """Encode the bounding box of `keys` in one pass and store its tiles; returns tiles stored."""
        t = self.tile
        i0, i1 = min(k[0] for k in keys), max(k[0] for k in keys)
        j0, j1 = min(k[1] for k in keys), max(k[1] for k in keys)
        y0, y1 = i0 * t, min(self.height, (i1 + 1) * t)
        x0, x1 = j0 * t, min(self.width, (j1 + 1) * t)
        feat = self._encode(y0, y1, x0, x1, cancel)
        stored = 0
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                if self.has(i, j):
                    continue
                ty0, ty1, tx0, tx1 = self.tile_box(i, j)
                part = feat[:, ty0 - y0 : ty1 - y0, tx0 - x0 : tx1 - x0].to(self.dtype).contiguous()
                self._insert((i, j), part)
                if self._disk is not None and self._ns is not None:
                    self._disk.put(self._ns, (i, j), part.cpu().numpy())
                stored += 1
        self.encoded += stored
        return stored

    def _groups(
        self, keys: list[tuple[int, int]], centre: tuple[float, float]
    ) -> list[list[tuple[int, int]]]:
        """Missing tiles split into encode passes of at most batch_tiles per side (the bounding box cut
        into nearly equal parts), the pass nearest `centre` (in tiles) first."""
        k = self.batch_tiles
        i0, i1 = min(p[0] for p in keys), max(p[0] for p in keys) + 1
        j0, j1 = min(p[1] for p in keys), max(p[1] for p in keys) + 1
        ni, nj = math.ceil((i1 - i0) / k), math.ceil((j1 - j0) / k)
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i, j in keys:
            groups.setdefault(((i - i0) * ni // (i1 - i0), (j - j0) * nj // (j1 - j0)), []).append((i, j))

        def dist(g: list[tuple[int, int]]) -> float:
            ci = sum(p[0] for p in g) / len(g) + 0.5
            cj = sum(p[1] for p in g) / len(g) + 0.5
            return (ci - centre[0]) ** 2 + (cj - centre[1]) ** 2

        return sorted(groups.values(), key=dist)

    def prefetch(
        self,
        box: Box,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Encode the missing tiles of `box`, centre out, in passes of up to batch_tiles x batch_tiles.

        Tiles found in the disk cache are loaded instead. Checks `cancel` between passes; what was
        encoded before a cancellation is kept. Returns the number of tiles encoded by the model.
        """
        todo = [k for k in self.missing(box) if not self._from_disk(k)]
        if not todo:
            return 0
        t = self.tile
        centre = ((box[0] + box[1]) / 2 / t, (box[2] + box[3]) / 2 / t)
        groups = self._groups(todo, centre)
        done = 0
        for n, group in enumerate(groups):
            check(cancel)
            with self._encode_lock:
                still = [k for k in group if not self.has(*k)]
                if still:
                    done += self._encode_box(still, cancel)
            if progress is not None:
                progress(n + 1, len(groups))
        return done

    def _tile(self, key: tuple[int, int]) -> torch.Tensor:
        hit = self._get(key)
        if hit is not None:
            return hit
        with self._encode_lock:
            hit = self._get(key)
            if hit is None and not self._from_disk(key):
                self._encode_box([key], None)
            hit = self._get(key)
        if hit is None:  # evicted at once: the budget is smaller than one tile
            y0, y1, x0, x1 = self.tile_box(*key)
            return self._encode(y0, y1, x0, x1, None).to(self.dtype)
        return hit

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Latents [y0, y1) x [x0, x1), assembled from tiles; missing tiles are encoded first (one pass)."""
        box = (y0, y1, x0, x1)
        if self.missing(box):
            self.prefetch(box)
        out = torch.empty((self.channels, y1 - y0, x1 - x0), dtype=torch.float32, device=self.device)
        for i, j in self.tiles_in(box):
            ty0, ty1, tx0, tx1 = self.tile_box(i, j)
            a0, a1, b0, b1 = max(y0, ty0), min(y1, ty1), max(x0, tx0), min(x1, tx1)
            part = self._tile((i, j))
            out[:, a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = part[:, a0 - ty0 : a1 - ty0, b0 - tx0 : b1 - tx0]
        return out

    def encoded_fraction(self, box: Box) -> float:
        """Share of the tiles of `box` that are in memory (what a view can show refined at once)."""
        keys = self.tiles_in(box)
        if not keys:
            return 1.0
        with self._tiles_lock:
            return sum(k in self._tiles for k in keys) / len(keys)


def photo_key(pixels: np.ndarray) -> str:
    """A key for a photo's content: a digest of its decoded pixels, shape and dtype."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{pixels.shape}{pixels.dtype}".encode())
    flat = np.ascontiguousarray(pixels).reshape(-1).view(np.uint8)
    step = 64 << 20
    for s in range(0, flat.size, step):
        h.update(flat[s : s + step].data)
    return h.hexdigest()
