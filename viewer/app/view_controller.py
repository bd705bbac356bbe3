"""The logic behind the canvas: viewport state, tile requests, the tile cache and what to paint.

Every interaction produces a new immutable `Viewport` and a repaint from what is cached; a short
single-shot timer (debounce) then plans the tiles and sends one request per kind to its worker. Results
come back as events; a tile is applied (cached and painted) only if it answers the current generation.
Nothing here calls the model: painting uses cached pixmaps, scaled placeholders and the preview pyramid.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
from PySide6.QtCore import QObject, QRectF, QTimer, Signal

from viewer.app import planning as pl
from viewer.app.messages import (
    CompareMethod,
    RequestDone,
    RequestProgress,
    TileKind,
    TileRequest,
    TileResult,
)
from viewer.app.photo import Photo, bgra_to_pixmap
from viewer.app.planning import TileKey, TilePlan, Viewport
from viewer.app.tilecache import TileCache

DEBOUNCE_MS = 60
"""Coalesces a burst of wheel or drag events into one tile request."""
MAX_WAIT_S = 0.25
"""...but a long continuous drag still sends a request at least this often."""

DEFAULT_CACHE_BYTES = 512 << 20

CacheKey = tuple[TileKind, TileKey]


class TileSink(Protocol):
    """What the view controller needs from a worker: submit the newest request, or drop everything."""

    def submit(self, request: TileRequest) -> None: ...

    def cancel_tiles(self) -> None: ...


@dataclass(frozen=True)
class DrawOp:
    """Paint `source` (pixmap pixels) of `pixmap` into `target` (device pixels)."""

    pixmap: object
    target: QRectF
    source: QRectF
    smooth: bool


@dataclass
class Layer:
    """Draw operations clipped to `clip` (device pixels; None: the whole canvas)."""

    clip: QRectF | None
    ops: list[DrawOp] = field(default_factory=list)


@dataclass
class Frame:
    """Everything the canvas paints for one viewport, bottom layer first."""

    layers: list[Layer]
    image_rect: QRectF
    split_x: float | None


@dataclass
class RefineState:
    """Progress of the current request, for the status bar."""

    done: int = 0
    total: int = 0
    last_seconds: float | None = None
    running: bool = False


class ViewController(QObject):
    """Owns the viewport, the tile cache and the tile requests for the open photo (GUI thread only)."""

    view_changed = Signal()
    """The viewport moved or zoomed (repaint, navigator, status)."""
    area_changed = Signal(QRectF)
    """A region of the canvas (logical px) has new pixels."""
    tile_applied = Signal(str, object, int)
    """(kind, TileKey, generation) of a result that was cached and painted."""
    refine_changed = Signal()
    """Progress of the refine changed."""
    refined = Signal(float)
    """All visible LIIF tiles of the current view are painted; seconds since the request."""

    def __init__(
        self,
        liif: TileSink,
        bicubic: TileSink,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        debounce_ms: int = DEBOUNCE_MS,
        margin: int = 1,
        tile: int = pl.TILE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._sinks: dict[TileKind, TileSink] = {"liif": liif, "bicubic": bicubic}
        self._cache_bytes = cache_bytes
        self._cache: TileCache[CacheKey, object] = TileCache(
            cache_bytes, group_of=lambda k: (k[0], k[1].zoom)
        )
        self._generations = itertools.count(1)
        self._current: dict[TileKind, int] = {"liif": 0, "bicubic": 0}
        self._plans: dict[TileKind, TilePlan | None] = {"liif": None, "bicubic": None}
        self._partial: dict[CacheKey, tuple[tuple[int, int, int, int], np.ndarray]] = {}
        """Cached edge tiles of which only a window is rendered (the rest transparent): the window and the
        BGRA pixels of the whole tile, so the `rest` render can complete them."""
        self._margin = margin
        self._tile = tile
        self.photo: Photo | None = None
        self.viewport: Viewport | None = None
        self._canvas = (800, 600, 1.0)
        self.fit_mode = True
        self.compare = False
        self.compare_method: CompareMethod = "bicubic"
        """What the right side of compare mode shows (its tiles come from the `bicubic` sink)."""
        self.divider = 0.5
        self.selection: tuple[float, float, float, float] | None = None
        self.refine = RefineState()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._replan)
        self._burst_start = 0.0

    # -- photo ----------------------------------------------------------------------------------------
    def set_photo(self, photo: Photo | None) -> None:
        """Show `photo` at fit; drop every tile of the previous one."""
        self.photo = photo
        self.selection = None
        self.clear_tiles()
        if photo is None:
            self.viewport = None
        else:
            w, h, dpr = self._canvas
            self.viewport = pl.fit(Viewport(photo.width, photo.height, w, h, dpr))
            self.fit_mode = True
        self._changed(replan_now=True)

    def set_content(self, content: int) -> None:
        """The model changed: same photo, new pixels. Drops LIIF tiles and asks again."""
        if self.photo is not None:
            self.photo.content = content
        self.clear_tiles()
        self._changed(replan_now=True)

    def set_display(self, display: object, levels: tuple[np.ndarray, ...]) -> None:
        """The display target changed: same photo and model, new colours. Takes the photo's new transform
        and pyramid (BGRA levels) and drops every tile converted for the old target (a new generation,
        so none still on its way is painted), then asks again. The workers convert with `display` by now."""
        if self.photo is None:
            return
        self.photo.display = display
        self.photo.levels = [bgra_to_pixmap(a) for a in levels]
        self.clear_tiles()
        self._changed(replan_now=True)

    @property
    def tile_size(self) -> int:
        return self._tile

    def set_tile_size(self, tile: int) -> None:
        """Plan with another tile edge (the engine moved to another kind of device); drops cached tiles."""
        if tile == self._tile:
            return
        self._tile = tile
        self.clear_tiles()
        self._changed(replan_now=True)

    def clear_tiles(self) -> None:
        self._cache.clear()
        self._partial.clear()
        self._plans = {"liif": None, "bicubic": None}
        for kind, sink in self._sinks.items():
            self._current[kind] = next(self._generations)
            sink.cancel_tiles()
        self.refine = RefineState(last_seconds=self.refine.last_seconds)

    # -- geometry and interaction (GUI thread) ----------------------------------------------------------
    def set_canvas_geometry(self, w: int, h: int, dpr: float) -> None:
        """The canvas was resized or moved to a screen with another pixel ratio."""
        self._canvas = (max(1, w), max(1, h), dpr)
        # Room for the screen (with its prefetch ring) three times over: both kinds, and a level to scale from.
        screen_bytes = round(w * dpr + 2 * self._tile) * round(h * dpr + 2 * self._tile) * 4
        self._cache.budget_bytes = max(self._cache_bytes, 3 * screen_bytes)
        for gone in [k for k in self._partial if k not in self._cache]:  # evicted by the new budget
            del self._partial[gone]
        if self.viewport is None:
            return
        vp = pl.resized(self.viewport, *self._canvas)
        self._set_viewport(pl.fit(vp) if self.fit_mode else vp, keep_fit=self.fit_mode)

    def zoom_by(self, factor: float, anchor: tuple[float, float] | None = None) -> None:
        """Wheel or pinch: multiply the zoom about `anchor` (logical canvas px; None: the centre)."""
        if self.viewport is not None:
            self._set_viewport(pl.zoom_by(self.viewport, factor, anchor))

    def zoom_to(self, zoom: float, anchor: tuple[float, float] | None = None) -> None:
        """Set the zoom (logical px per source px, 1.0 = 100%)."""
        if self.viewport is not None:
            self._set_viewport(pl.with_zoom(self.viewport, zoom, anchor))

    def zoom_step(self, steps: int, anchor: tuple[float, float] | None = None) -> None:
        """Keyboard zoom to the next stop in (+) or out (-)."""
        if self.viewport is not None:
            self.zoom_to(pl.step_zoom(self.viewport.zoom, steps), anchor)

    def fit(self) -> None:
        if self.viewport is not None:
            self._set_viewport(pl.fit(self.viewport), keep_fit=True)

    def actual_size(self) -> None:
        """100%: one source pixel per logical pixel, about the centre."""
        self.zoom_to(1.0)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the view by logical pixels (drag, arrow keys)."""
        if self.viewport is not None:
            self._set_viewport(pl.pan_by(self.viewport, dx, dy))

    def centre_on(self, sx: float, sy: float) -> None:
        """Navigator: centre on a source point."""
        if self.viewport is not None:
            self._set_viewport(pl.centre_on(self.viewport, sx, sy))

    def set_compare(self, on: bool) -> None:
        self.compare = on
        self._plans["bicubic"] = None
        if not on:
            self._current["bicubic"] = next(self._generations)
            self._sinks["bicubic"].cancel_tiles()
        self._changed(replan_now=True)

    def set_compare_method(self, method: CompareMethod) -> None:
        """Compare mode's right side changed method (bicubic, source pixels): drop its tiles, ask again.

        The caller gives the worker the method first, so every tile of the new generation uses it."""
        if method == self.compare_method:
            return
        self.compare_method = method
        for ck in [k for k in self.cached_keys() if k[0] == "bicubic"]:
            self._cache.discard(ck)
            self._partial.pop(ck, None)
        self._plans["bicubic"] = None
        self._current["bicubic"] = next(self._generations)
        self._sinks["bicubic"].cancel_tiles()
        self._changed(replan_now=True)

    def set_divider(self, fraction: float) -> None:
        """Compare mode: the divider's position as a fraction of the canvas width."""
        self.divider = min(1.0, max(0.0, fraction))
        self.view_changed.emit()

    def set_selection(self, rect: tuple[float, float, float, float] | None) -> None:
        """The export region (source px), clipped to the photo; None clears it."""
        if rect is not None and self.photo is not None:
            x, y, w, h = rect
            x0, y0 = max(0.0, min(x, x + w)), max(0.0, min(y, y + h))
            x1 = min(float(self.photo.width), max(x, x + w))
            y1 = min(float(self.photo.height), max(y, y + h))
            rect = (x0, y0, x1 - x0, y1 - y0) if x1 - x0 >= 1 and y1 - y0 >= 1 else None
        self.selection = rect
        self.view_changed.emit()

    def view_region(self) -> tuple[float, float, float, float] | None:
        """The part of the photo on screen (source px)."""
        if self.viewport is None or self.photo is None:
            return None
        x, y, w, h = self.viewport.source_rect()
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(self.photo.width), x + w), min(float(self.photo.height), y + h)
        return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None

    def _set_viewport(self, vp: Viewport, keep_fit: bool = False) -> None:
        self.fit_mode = keep_fit
        if vp == self.viewport:
            return
        self.viewport = vp
        self._changed()

    def _changed(self, replan_now: bool = False) -> None:
        self.view_changed.emit()
        if replan_now:
            self._timer.stop()
            self._replan(force=True)
            return
        now = time.perf_counter()
        if not self._timer.isActive():
            self._burst_start = now
            self._timer.start()
        elif now - self._burst_start < MAX_WAIT_S:
            self._timer.start()  # restart: wait for the burst to end
        # else: leave it running, so it fires within DEBOUNCE_MS even if the burst goes on

    # -- requests ----------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send the pending request now instead of after the debounce (tests, benchmarks)."""
        if self._timer.isActive():
            self._timer.stop()
            self._replan()

    def _kinds(self) -> list[TileKind]:
        return ["liif", "bicubic"] if self.compare else ["liif"]

    def _replan(self, force: bool = False) -> None:
        """Plan the tiles of the current view and send what is missing (debounce timer, GUI thread)."""
        vp, photo = self.viewport, self.photo
        if vp is None or photo is None:
            return
        for kind in self._kinds():
            prev = self._plans[kind]
            if not force and not pl.needs_replan(prev, vp, self._tile):
                continue
            plan = pl.plan_tiles(vp, margin=self._margin, tile=self._tile)
            self._plans[kind] = plan
            gen = next(self._generations)
            self._current[kind] = gen
            specs = self._missing_specs(kind, vp, plan)
            if specs:
                self._sinks[kind].submit(TileRequest(gen, photo.content, kind, specs, time.perf_counter()))
            else:
                self._sinks[kind].cancel_tiles()
            if kind == "liif":
                n_vis = sum(1 for s in specs if s.visible)
                self.refine = replace(
                    self.refine, done=plan.n_visible - n_vis, total=plan.n_visible, running=n_vis > 0
                )
                self.refine_changed.emit()

    def _partial_window(self, ck: CacheKey) -> tuple[int, int, int, int] | None:
        """The rendered window of a cached partial tile; None if the tile is not cached or is whole."""
        entry = self._partial.get(ck)
        if entry is None or ck not in self._cache:
            return None
        return entry[0]

    def _missing_specs(self, kind: TileKind, vp: Viewport, plan: TilePlan) -> tuple[pl.TileSpec, ...]:
        """What `plan` still needs rendered, in order: the visible tiles (of a tile the canvas edge cuts,
        only the part on the canvas), then what completes those edge tiles, then the prefetch ring."""
        first: list[pl.TileSpec] = []
        completions: list[pl.TileSpec] = []
        ring: list[pl.TileSpec] = []
        for i, (tx, ty) in enumerate(plan.order):
            ck = (kind, TileKey(plan.zoom, tx, ty))
            have = self._partial_window(ck)
            if ck in self._cache and have is None:
                continue
            whole = pl.tile_spec(vp, tx, ty, visible=i < plan.n_visible, tile=self._tile)
            if i >= plan.n_visible:
                ring.append(whole if have is None else pl.rest_of(whole, have))
                continue
            needed = pl.on_canvas(vp, tx, ty, self._tile)
            if have is not None and pl.covers(have, needed):
                completions.append(pl.rest_of(whole, have))
            elif needed == whole.window:
                first.append(whole)
            else:
                part, rest = pl.edge_specs(vp, tx, ty, self._tile)
                first.append(part)
                completions.append(rest)
        return (*first, *completions, *ring)

    # -- results (GUI thread; queued from the workers) -------------------------------------------------------
    def on_tile(self, ev: TileResult) -> bool:
        """Cache and paint a tile if it answers the current request; returns whether it was applied."""
        if self.photo is None or ev.generation != self._current[ev.kind] or ev.content != self.photo.content:
            return False
        ck: CacheKey = (ev.kind, ev.key)
        pixels, partial = self._assemble(ck, ev)
        if pixels is None:
            return False
        pixmap = bgra_to_pixmap(pixels, alpha=partial is not None)
        vp = self.viewport
        if vp is not None and vp.refinable:
            # What is on screen stays most recent, so a tight budget evicts old levels and the
            # prefetch ring first, never the tiles being looked at.
            zd = vp.device_zoom
            self._cache.touch(
                (ev.kind, TileKey(zd, tx, ty)) for tx, ty in pl.visible_range(vp, self._tile).cells()
            )
        for gone in self._cache.put(ck, pixmap, int(pixels.nbytes)):
            self._partial.pop(gone, None)
        if partial is None:
            self._partial.pop(ck, None)
        else:
            self._partial[ck] = (partial, pixels)
        self.tile_applied.emit(ev.kind, ev.key, ev.generation)
        if vp is not None and ev.key.zoom == vp.device_zoom:
            rows, cols = pixels.shape[:2]
            x, y, w, h = pl.tile_device_rect(vp, ev.key, cols, rows, self._tile)
            d = vp.dpr
            self.area_changed.emit(QRectF(x / d, y / d, w / d, h / d).adjusted(-1, -1, 1, 1))
        return True

    def _assemble(
        self, ck: CacheKey, ev: TileResult
    ) -> tuple[np.ndarray | None, tuple[int, int, int, int] | None]:
        """The whole tile's BGRA pixels for a result, and its rendered window if still partial.

        A `visible` part becomes a transparent tile with that window filled in; a `rest` is merged into the
        cached part it completes. (None, None): nothing to apply (a part of a tile already cached whole, or
        a rest whose part is no longer cached)."""
        spec = ev.spec
        if spec is None or spec.part == "whole":
            return ev.pixels, None
        r0, c0, r1, c1 = spec.window
        if spec.part == "visible":
            if ck in self._cache and self._partial_window(ck) is None:
                return None, None
            full = np.zeros((*spec.shape, 4), np.uint8)
            full[r0:r1, c0:c1] = ev.pixels
            return full, spec.window
        have = self._partial_window(ck)
        if have is None or not pl.completes(have, spec.window, spec.shape):
            return None, None
        full = self._partial[ck][1].copy()
        full[r0:r1, c0:c1] = ev.pixels
        return full, None

    def on_progress(self, ev: RequestProgress) -> None:
        if ev.kind == "liif" and ev.generation == self._current["liif"]:
            plan = self._plans["liif"]
            if plan is not None:
                vis = sum(1 for k in plan.keys()[: plan.n_visible] if ("liif", k) in self._cache)
                self.refine = replace(self.refine, done=vis, total=plan.n_visible)
                self.refine_changed.emit()

    def on_request_done(self, ev: RequestDone) -> None:
        if ev.kind == "liif" and ev.generation == self._current["liif"]:
            self.refine = replace(self.refine, done=self.refine.total, running=False, last_seconds=ev.seconds)
            self.refine_changed.emit()
            self.refined.emit(ev.seconds)

    def on_encoded(self) -> None:
        """The photo is encoded: its tiles can run now (they were already requested; nothing to resend)."""
        self.refine_changed.emit()

    # -- queries -------------------------------------------------------------------------------------------
    def current_generation(self, kind: TileKind = "liif") -> int:
        return self._current[kind]

    def is_settled(self, kind: TileKind = "liif") -> bool:
        """True when every visible tile of `kind` at the current level is cached (or none is needed)."""
        vp = self.viewport
        if vp is None or not vp.refinable:
            return True
        vis = pl.visible_range(vp, self._tile)
        return all(self._shows(kind, vp, TileKey(vp.device_zoom, tx, ty)) for tx, ty in vis.cells())

    def _shows(self, kind: TileKind, vp: Viewport, key: TileKey) -> bool:
        """True if the cached tile `key` has every one of its pixels that is on the canvas."""
        ck: CacheKey = (kind, key)
        if ck not in self._cache:
            return False
        have = self._partial_window(ck)
        return have is None or pl.covers(have, pl.on_canvas(vp, key.tx, key.ty, self._tile))

    def cached_keys(self) -> list[CacheKey]:
        return self._cache.keys()

    @property
    def cache(self) -> TileCache[CacheKey, object]:
        return self._cache

    # -- painting --------------------------------------------------------------------------------------------
    def frame(self) -> Frame:
        """What to paint now, from the preview pyramid and cached tiles only (GUI thread, no model)."""
        vp, photo = self.viewport, self.photo
        if vp is None or photo is None:
            return Frame([], QRectF(), None)
        dw, dh = vp.device_size
        ix, iy, iw, ih = vp.image_rect_device()
        image = QRectF(ix, iy, iw, ih)
        canvas = QRectF(0, 0, dw, dh)
        if not self.compare:
            return Frame(self._side_layers("liif", vp, photo, image, canvas), image, None)
        split = round(self.divider * dw)
        left = QRectF(0, 0, split, dh)
        right = QRectF(split, 0, dw - split, dh)
        layers = self._side_layers("liif", vp, photo, image, left) + self._side_layers(
            "bicubic", vp, photo, image, right
        )
        return Frame(layers, image, float(split))

    def _side_layers(
        self, kind: TileKind, vp: Viewport, photo: Photo, image: QRectF, clip: QRectF
    ) -> list[Layer]:
        area = image.intersected(clip)
        if area.isEmpty():
            return []
        layer = Layer(clip)
        exact: list[DrawOp] = []
        complete = False
        if vp.refinable:
            exact, complete = self._exact_ops(kind, vp, area)
        if not complete:
            placeholders, covered = self._placeholder_ops(kind, vp, photo) if vp.refinable else ([], None)
            if covered is None:
                layer.ops.append(self._preview_op(vp, photo, area))
            else:
                # A level's scaled edge tiles can end a pixel short of the photo's edge: fill that strip.
                for strip in (
                    QRectF(covered.right(), area.top(), area.right() - covered.right(), area.height()),
                    QRectF(area.left(), covered.bottom(), area.width(), area.bottom() - covered.bottom()),
                ):
                    strip = strip.intersected(area)
                    if strip.width() > 0 and strip.height() > 0:
                        layer.ops.append(self._preview_op(vp, photo, strip))
            layer.ops.extend(placeholders)
        layer.ops.extend(exact)
        return [layer]

    def _preview_op(self, vp: Viewport, photo: Photo, area: QRectF) -> DrawOp:
        """The source, smoothly scaled from the pyramid level nearest above the display size."""
        zd = vp.device_zoom
        level = pl.pyramid_level(zd, len(photo.levels))
        pm = photo.levels[level]
        sx, sy = pm.width() / photo.width, pm.height() / photo.height
        ox, oy = vp.origin
        src = QRectF(
            (area.x() + ox) / zd * sx,
            (area.y() + oy) / zd * sy,
            area.width() / zd * sx,
            area.height() / zd * sy,
        )
        return DrawOp(pm, QRectF(area), src, True)

    def _visible_keys(self, vp: Viewport, area: QRectF) -> Iterator[TileKey]:
        ox, oy = vp.origin
        t = self._tile
        x0, y0 = int(area.left() + ox) // t, int(area.top() + oy) // t
        x1, y1 = (int(area.right() + ox) - 1) // t + 1, (int(area.bottom() + oy) - 1) // t + 1
        zd = vp.device_zoom
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                yield TileKey(zd, tx, ty)

    def _exact_ops(self, kind: TileKind, vp: Viewport, area: QRectF) -> tuple[list[DrawOp], bool]:
        ops: list[DrawOp] = []
        complete = True
        for key in self._visible_keys(vp, area):
            pm = self._cache.get((kind, key))
            if pm is None:
                complete = False
                continue
            if not self._shows(kind, vp, key):
                complete = False  # a partial edge tile after a pan: the placeholder shows through
            w, h = pm.width(), pm.height()  # type: ignore[attr-defined]
            x, y, tw, th = pl.tile_device_rect(vp, key, w, h, self._tile)
            ops.append(DrawOp(pm, QRectF(x, y, tw, th), QRectF(0, 0, w, h), False))
        return ops, complete

    def _placeholder_ops(
        self, kind: TileKind, vp: Viewport, photo: Photo
    ) -> tuple[list[DrawOp], QRectF | None]:
        """Tiles of nearby levels (within 2x), scaled, while the current level renders, worst level first.

        Also returns the device rectangle one level alone covers, when it has every tile in view (else
        None): the preview under it, and any worse level, would be painted over entirely, so they are left
        out (each is a full-viewport smooth scale, which is what makes a zoom step's repaint slow).
        """
        levels = {g[1] for g in self._cache.groups() if isinstance(g, tuple) and g[0] == kind}
        per_level: list[list[DrawOp]] = []
        rect = vp.source_rect()
        covered: QRectF | None = None
        for z in reversed(pl.placeholder_levels(vp.device_zoom, levels)):  # best level first
            rng = pl.tiles_over_rect(z, rect, photo.width, photo.height, self._tile)
            ops: list[DrawOp] = []
            missing = False
            for tx, ty in rng.cells():
                key = TileKey(z, tx, ty)
                pm = self._cache.peek((kind, key))
                if pm is None:
                    missing = True
                    continue
                if self._partial_window((kind, key)) is not None:
                    missing = True  # partly transparent: what is under it must be painted too
                w, h = pm.width(), pm.height()  # type: ignore[attr-defined]
                x, y, tw, th = pl.tile_device_rect(vp, key, w, h, self._tile)
                ops.append(DrawOp(pm, QRectF(x, y, tw, th), QRectF(0, 0, w, h), True))
            per_level.append(ops)
            if ops and not missing:
                covered = QRectF(ops[0].target)
                for op in ops[1:]:
                    covered = covered.united(op.target)
                break
        return [op for ops in reversed(per_level) for op in ops], covered


REFINE_WORDS = {
    "refined": "refined by LIIF",
    "refining": "being refined by LIIF",
    "interpolated": "interpolated",
}
"""What the magnification label says of a view above 100%, by what is really on screen."""


def describe_zoom(vp: Viewport | None, state: str = "refined") -> tuple[str, str]:
    """Status texts: zoom percent and magnification against source pixels, with what the view shows
    (`state`: refined, refining or interpolated; below 100% the source is downscaled whatever it is)."""
    if vp is None:
        return "", ""
    pct = vp.zoom * 100
    zoom = f"{pct:.0f}%" if pct >= 10 else f"{pct:.1f}%"
    mag = vp.device_zoom
    word = REFINE_WORDS[state] if vp.refinable else "source downscaled"
    return zoom, f"×{mag:.2f} source px ({word})"
