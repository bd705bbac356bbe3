"""The compare worker: tiles of the same grid as LIIF's, for the compare view (Pillow; no torch).

It resamples the photo with bicubic interpolation, or shows its source pixels as they are (nearest
neighbour: each screen pixel takes the photo pixel under its centre), so a person can see what the scan
really holds next to what LIIF makes of it."""

from __future__ import annotations

from typing import Any

import numpy as np

from viewer.app.messages import CompareMethod, TileKind
from viewer.app.tile_thread import Emit, Running, TileThread
from viewer.errors import Cancelled


class BicubicWorker(TileThread):
    """Bicubic or nearest-neighbour tiles of the same grid as LIIF's, for the compare view (Pillow; no
    torch, fast)."""

    kind: TileKind = "bicubic"
    _PAD = 2

    def __init__(self, emit: Emit) -> None:
        super().__init__(emit, "liif-bicubic")
        self._source: Any = None
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
        """Use `rgb8` (uint8 H x W x 3) for photo `content` (called from the GUI thread; cheap: the padded
        copy is made in the worker thread when compare mode first asks for a tile)."""
        with self._cond:
            self._rgb8 = rgb8
            self._source = None
            self._content = content
            self._cond.notify_all()

    def _padded(self) -> Any:
        """Worker thread: the photo with an edge-replicated border, as a PIL image (built once per photo)."""
        from PIL import Image

        with self._cond:
            source, rgb8, content = self._source, self._rgb8, self._content
        if source is None and rgb8 is not None:
            p = self._PAD
            padded = np.pad(rgb8, ((p, p), (p, p), (0, 0)), mode="edge")
            source = Image.fromarray(padded, "RGB")
            del padded
            with self._cond:
                if self._content == content:
                    self._source = source
        return source

    def retag(self, content: int) -> None:
        """The same photo under a new content id (the model changed; bicubic pixels did not)."""
        with self._cond:
            self._content = content
            self._cond.notify_all()

    def _tiles_ready_locked(self) -> bool:
        req = self._tiles.request
        return self._rgb8 is not None and req is not None and req.content == self._content

    def _render(self, run: Running) -> np.ndarray:
        """Worker thread: PIL's bicubic (or nearest) resize of the tile's source box (same pixel-centre
        convention as LIIF: output pixel c samples the source point x + (c + 0.5)·w/out_w)."""
        from PIL import Image

        with self._cond:
            method = self._method
        resample = Image.Resampling.NEAREST if method == "nearest" else Image.Resampling.BICUBIC
        source = self._padded()
        if source is None or run.token.cancelled:
            raise Cancelled()
        spec = run.spec
        x, y, w, h = spec.rect
        r0, c0, r1, c1 = spec.window
        sx, sy = w / spec.out_w, h / spec.out_h
        p = self._PAD
        box = (x + c0 * sx + p, y + r0 * sy + p, x + c1 * sx + p, y + r1 * sy + p)
        box = (
            max(0.0, box[0]),
            max(0.0, box[1]),
            min(float(source.width), box[2]),
            min(float(source.height), box[3]),
        )
        out = source.resize((c1 - c0, r1 - r0), resample, box=box)
        rgb = np.asarray(out, dtype=np.uint8)
        bgra = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
        bgra[..., 0] = rgb[..., 2]
        bgra[..., 1] = rgb[..., 1]
        bgra[..., 2] = rgb[..., 0]
        bgra[..., 3] = 255
        return bgra
