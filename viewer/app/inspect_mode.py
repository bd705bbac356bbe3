"""Inspect mode's plumbing: requests and results, the worker-side queue and computations, the GUI controller.

Like the viewport's tiles, every inspection is a frozen request with a generation from one
`itertools.count()`, built on the GUI thread from a snapshot of the viewport and sent to the render worker
(the one thread that owns the engine and the feature map). The worker answers with plain values (numpy
arrays, a `Probe`), and the GUI applies a result only if it answers the newest request of its kind.
The canvas paints the cached results through `InspectController.paint`, which never calls the model.

- a *probe* explains one on-screen pixel: it is computed for the exact tile pixel the canvas shows, so its
  blended colour is that pixel;
- a *feature* image is the feature map's PCA (or one channel), once per photo and model;
- *difference* tiles ("what the model adds") compare the LIIF tiles of the view with bicubic tiles of the
  same grid, so they are as sharp as the view; the worker reuses the tiles it has just rendered.

Torch is never imported here at module level; the worker-side functions import the engine lazily.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, QTimer, Signal
from PySide6.QtGui import QPainter

from viewer.app import planning as pl
from viewer.app.bicubic_worker import source_tile
from viewer.app.inspect_panel import InspectOptions
from viewer.app.overlays import (
    ImageLayer,
    paint_confidence_cue,
    paint_lattice,
    paint_layer,
    paint_probe,
)
from viewer.app.planning import TileKey, TileSpec, Viewport
from viewer.engine.cancel import CancelToken
from viewer.engine.inspect import EMPTY_LATTICE, Lattice, Probe, difference_heatmap, lattice_lines
from viewer.errors import Cancelled

if TYPE_CHECKING:
    from viewer.app.view_controller import ViewController
    from viewer.app.worker import WorkerContext
    from viewer.engine.render import Engine, Latents

FeatureKind = Literal["pca", "channel"]
ProbePurpose = Literal["hover", "illustration"]

HOVER_COALESCE_MS = 15
"""Mouse moves within this time become one probe request."""
DIFFERENCE_DEBOUNCE_MS = 250
"""The view must rest this long before its difference tiles are asked for."""
DIFFERENCE_CACHE_TILES = 256
FEATURE_BOX_GRID = 64
"""A big photo's feature image is asked for a box of the view plus a margin, snapped out to this grid of
photo pixels, so small pans stay inside the box they already have."""
RECENT_TILE_BYTES = 96 << 20
"""The render worker keeps this much of its latest LIIF tiles for the difference view."""

log = logging.getLogger(__name__)


# -- requests (GUI -> render worker) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeRequest:
    """Explain output pixel (row, col) of the grid `out_w` x `out_h` over source rectangle `rect`."""

    generation: int
    content: int
    rect: tuple[float, float, float, float]
    out_w: int
    out_h: int
    row: int
    col: int
    purpose: ProbePurpose = "hover"

    @property
    def slot(self) -> str:
        return "probe" if self.purpose == "hover" else "illustration"


@dataclass(frozen=True)
class FeatureRequest:
    """The feature map as an image: its PCA, or one channel; of `box` (x0, y0, x1, y1 photo pixels), or of
    the whole photo when None."""

    generation: int
    content: int
    kind: FeatureKind
    channel: int = 0
    slot: str = "feature"
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class DifferenceRequest:
    """Difference (LIIF - bicubic) tiles for these tile specs, visible ones first."""

    generation: int
    content: int
    tiles: tuple[TileSpec, ...]
    slot: str = "difference"


InspectRequest = ProbeRequest | FeatureRequest | DifferenceRequest


# -- results (render worker -> GUI) ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeResult:
    generation: int
    content: int
    purpose: ProbePurpose
    probe: Probe
    seconds: float


@dataclass(frozen=True)
class FeatureResult:
    """(H, W, 3) uint8 pixels of the feature image of `box` (photo pixels), or of the whole photo."""

    generation: int
    content: int
    kind: FeatureKind
    channel: int
    pixels: np.ndarray
    n_channels: int
    seconds: float
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class DifferenceTile:
    """One tile of the heat map: RGBA uint8 (rows, cols, 4) over the tile's source rectangle."""

    generation: int
    content: int
    key: TileKey
    rect: tuple[float, float, float, float]
    pixels: np.ndarray
    mean: float
    """Mean RMS difference over the tile (0-1 units)."""


@dataclass(frozen=True)
class InspectFailed:
    generation: int
    content: int
    slot: str
    message: str


INSPECT_EVENTS = (ProbeResult, FeatureResult, DifferenceTile, InspectFailed)


# -- worker side -------------------------------------------------------------------------------------------------
HEAVY_SLOTS = ("feature", "difference")
"""Slots that wait until the viewport's tiles are done (they can take seconds)."""
SLOT_ORDER = ("probe", "illustration", "feature", "difference")


@dataclass
class InspectQueue:
    """The newest request per slot, and the token of the one running. The worker's lock guards it."""

    pending: dict[str, InspectRequest] = field(default_factory=dict)
    running: dict[str, CancelToken] = field(default_factory=dict)

    def put(self, req: InspectRequest) -> None:
        """Make `req` the request of its slot; stop a running one of the same slot."""
        self.pending[req.slot] = req
        token = self.running.get(req.slot)
        if token is not None:
            token.cancel()

    def clear(self) -> None:
        self.pending.clear()
        for token in self.running.values():
            token.cancel()

    def _ready(self, fm_content: int, tiles_busy: bool) -> str | None:
        for slot in SLOT_ORDER:
            req = self.pending.get(slot)
            if req is None:
                continue
            if req.content < fm_content:
                del self.pending[slot]  # asks about a photo or model that is gone
                continue
            if req.content == fm_content and not (tiles_busy and slot in HEAVY_SLOTS):
                return slot
        return None

    def has_ready(self, fm_content: int, tiles_busy: bool) -> bool:
        return self._ready(fm_content, tiles_busy) is not None

    def take(self, fm_content: int, tiles_busy: bool) -> tuple[InspectRequest, CancelToken] | None:
        """Pop the most urgent request that can run now: probes first, heavy ones when tiles are idle."""
        slot = self._ready(fm_content, tiles_busy)
        if slot is None:
            return None
        req = self.pending.pop(slot)
        token = CancelToken()
        self.running[slot] = token
        return req, token

    def done(self, slot: str, token: CancelToken) -> None:
        if self.running.get(slot) is token:
            del self.running[slot]


class RecentTiles:
    """The render worker's latest LIIF tiles (BGRA uint8) by key, within a byte budget (worker thread)."""

    def __init__(self, budget: int = RECENT_TILE_BYTES) -> None:
        self._budget = budget
        self._bytes = 0
        self._content = -1
        self._tiles: OrderedDict[TileKey, np.ndarray] = OrderedDict()

    def put(self, content: int, key: TileKey, bgra: np.ndarray) -> None:
        if content != self._content:
            self._tiles.clear()
            self._bytes = 0
            self._content = content
        old = self._tiles.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
        self._tiles[key] = bgra
        self._bytes += bgra.nbytes
        while self._bytes > self._budget and len(self._tiles) > 1:
            _, gone = self._tiles.popitem(last=False)
            self._bytes -= gone.nbytes

    def get(self, content: int, key: TileKey) -> np.ndarray | None:
        return self._tiles.get(key) if content == self._content else None


def bgra_to_rgb(bgra: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgra[..., 2::-1])


TileRenderer = Callable[[TileSpec, CancelToken], np.ndarray]
"""Renders one LIIF tile as BGRA uint8 (the worker's own tile path, with its out-of-memory handling)."""


def run_inspect(
    req: InspectRequest,
    engine: Engine,
    fm: Latents,
    token: CancelToken,
    emit: Callable[[object], None],
    *,
    source: Callable[[], np.ndarray],
    recent: RecentTiles,
    render_tile: TileRenderer,
) -> None:
    """Render worker thread: answer one inspection request with events (model calls happen here only).

    `source` gives the photo's pixels for bicubic tiles (`source_tile`); `recent` holds the LIIF tiles
    just rendered, so the difference view usually needs no model call at all.
    """
    from viewer.engine import inspect as ins

    t0 = time.perf_counter()
    if isinstance(req, ProbeRequest):
        from viewer.engine.render import SourceRect

        probe = ins.probe_pixel(engine, fm, SourceRect(*req.rect), req.out_w, req.out_h, req.row, req.col)
        emit(ProbeResult(req.generation, req.content, req.purpose, probe, time.perf_counter() - t0))
    elif isinstance(req, FeatureRequest):
        if req.kind == "pca":
            pixels = ins.pca_rgb(fm, req.box, token)
        else:
            pixels = ins.channel_image(fm, req.channel, req.box, token)
        seconds = time.perf_counter() - t0
        emit(
            FeatureResult(
                req.generation, req.content, req.kind, req.channel, pixels, fm.channels, seconds, req.box
            )
        )
    else:
        src = source()
        for spec in req.tiles:
            token.raise_if_cancelled()
            bgra = recent.get(req.content, spec.key)
            if bgra is None:
                bgra = render_tile(spec, token)
                recent.put(req.content, spec.key, bgra)
            liif = bgra_to_rgb(bgra)
            bic = source_tile(src, spec)
            heat = difference_heatmap(liif, bic)
            mean = float(ins.difference_magnitude(liif, bic).mean())
            emit(DifferenceTile(req.generation, req.content, spec.key, tile_covers(spec), heat, mean))


def tile_covers(spec: TileSpec) -> tuple[float, float, float, float]:
    """The source rectangle a tile's rendered pixels (its window) cover."""
    x, y, w, h = spec.rect
    r0, c0, r1, c1 = spec.window
    sx, sy = w / spec.out_w, h / spec.out_h
    return x + c0 * sx, y + r0 * sy, (c1 - c0) * sx, (r1 - r0) * sy


class _LockedRecentTiles(RecentTiles):
    """`RecentTiles` filled from the GUI thread (tiles the view received) and read by the render worker."""

    def __init__(self, budget: int = RECENT_TILE_BYTES) -> None:
        super().__init__(budget)
        self._lock = threading.Lock()

    def put(self, content: int, key: TileKey, bgra: np.ndarray) -> None:
        with self._lock:
            super().put(content, key, bgra)

    def get(self, content: int, key: TileKey) -> np.ndarray | None:
        with self._lock:
            return super().get(content, key)


class InspectWorkerSide:
    """Inspect mode's link to the render worker: the controller's sink and the worker's extension.

    `inspect` (GUI thread) queues the newest request of its kind and wakes the worker; the worker asks
    `has_work`/`take` with its own lock held and runs the job `take` returns in its thread, with the engine
    and the encoded photo. Every failure comes back as an `InspectFailed` event, never as an exception.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._queue = InspectQueue()
        self.recent: RecentTiles = _LockedRecentTiles()
        """The LIIF tiles the view received lately (fed by `remember_tile`), so "what the model adds"
        usually needs no model call."""

    # -- GUI thread ---------------------------------------------------------------------------------------
    def inspect(self, request: InspectRequest) -> None:
        """GUI thread: make `request` the newest of its kind (a running one of that kind is cancelled)."""
        with self._lock:
            self._queue.put(request)
        self._wake()  # outside our lock: the worker calls has_work/take with its lock, then ours

    def clear(self) -> None:
        """GUI thread: drop every queued request and cancel the running ones."""
        with self._lock:
            self._queue.clear()

    def remember_tile(self, content: int, key: TileKey, bgra: np.ndarray) -> None:
        """GUI thread: a LIIF tile the view received (the arrays are never modified)."""
        self.recent.put(content, key, bgra)

    # -- render worker thread (its lock held: quick) ----------------------------------------------------------
    def has_work(self, fm_content: int, tiles_pending: bool) -> bool:
        with self._lock:
            return self._queue.has_ready(fm_content, tiles_pending)

    def take(self, fm_content: int, tiles_pending: bool) -> Callable[[WorkerContext], None] | None:
        with self._lock:
            got = self._queue.take(fm_content, tiles_pending)
        if got is None:
            return None
        req, token = got
        return lambda ctx: self._run(req, token, ctx)

    # -- render worker thread -------------------------------------------------------------------------------
    def _run(self, req: InspectRequest, token: CancelToken, ctx: WorkerContext) -> None:
        try:
            run_inspect(
                req, ctx.engine, ctx.feature_map, token, ctx.emit,
                source=lambda: self._rgb8(ctx), recent=self.recent,
                render_tile=lambda spec, tok: self._render_tile(ctx, spec, tok),
            )  # fmt: skip
        except Cancelled:
            pass
        except Exception as exc:  # reported to the panel; the worker carries on
            log.exception("inspection failed")
            ctx.emit(InspectFailed(req.generation, req.content, req.slot, f"{type(exc).__name__}: {exc}"))
        finally:
            with self._lock:
                self._queue.done(req.slot, token)

    @staticmethod
    def _rgb8(ctx: WorkerContext) -> np.ndarray:
        """The open photo's pixels as loaded (8 or 16 bits: `source_tile` makes each crop 8-bit), so a big
        16-bit scan is not converted whole for the difference view."""
        return ctx.loaded.pixels

    @staticmethod
    def _render_tile(ctx: WorkerContext, spec: TileSpec, token: CancelToken) -> np.ndarray:
        from viewer.app.worker import to_bgra
        from viewer.engine.render import SourceRect

        rgb = ctx.engine.render(
            ctx.feature_map, SourceRect(*spec.rect), spec.out_w, spec.out_h, window=spec.window, cancel=token
        )
        return to_bgra(rgb)


# -- GUI side ----------------------------------------------------------------------------------------------------
class InspectSink(Protocol):
    """What the controller needs from the render worker: take the newest inspection request."""

    def inspect(self, request: InspectRequest) -> None: ...


@dataclass(frozen=True)
class _LatticeKey:
    rect: tuple[float, float, float, float]
    size: tuple[int, int]
    bounds: tuple[int, int]


class InspectController(QObject):
    """Inspect mode's state on the GUI thread: options, requests, and the cached results the canvas paints.

    It needs the view controller (viewport, photo, tile size) and a sink for requests (the render worker).
    """

    changed = Signal()
    """Something Inspect mode paints changed: repaint the canvas."""
    probe_changed = Signal(object)
    """A new hover probe (`Probe`) arrived, or None when it was cleared."""
    feature_ready = Signal()
    """A feature image for the open photo arrived (illustrations may use it)."""
    illustration_probe = Signal(object)
    """The probe for Help ▸ How it works arrived (`Probe`)."""
    status = Signal(str)
    """A line for the panel: waiting, computing, failed, ..."""
    channels_known = Signal(int)

    def __init__(self, view: ViewController, sink: InspectSink, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._view = view
        self._sink = sink
        self._generations = itertools.count(1)
        self._current: dict[str, int] = {}
        self.active = False
        self.options = InspectOptions()
        self.probe: Probe | None = None
        self.probe_point: tuple[float, float] | None = None
        """Source point under the pointer (what the probe explains once it arrives)."""
        self._hover: tuple[float, float] | None = None
        self._features: dict[tuple[int, FeatureKind, int], ImageLayer] = {}
        self._diff: OrderedDict[tuple[int, TileKey], ImageLayer] = OrderedDict()
        self._diff_pending: set[tuple[int, TileKey]] = set()
        self._lattice_key: _LatticeKey | None = None
        self._lattice: Lattice = EMPTY_LATTICE
        self.n_channels = 0
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_COALESCE_MS)
        self._hover_timer.timeout.connect(self._send_probe)
        self._diff_timer = QTimer(self)
        self._diff_timer.setSingleShot(True)
        self._diff_timer.setInterval(DIFFERENCE_DEBOUNCE_MS)
        self._diff_timer.timeout.connect(self._request_difference)
        self._feature_timer = QTimer(self)
        self._feature_timer.setSingleShot(True)
        self._feature_timer.setInterval(DIFFERENCE_DEBOUNCE_MS)
        self._feature_timer.timeout.connect(self._request_layer)
        view.view_changed.connect(self._on_view_changed)

    # -- state ----------------------------------------------------------------------------------------------
    def _next(self, slot: str) -> int:
        gen = next(self._generations)
        self._current[slot] = gen
        return gen

    def current_generation(self, slot: str) -> int:
        return self._current.get(slot, 0)

    @property
    def content(self) -> int | None:
        photo = self._view.photo
        return photo.content if photo is not None else None

    def set_active(self, on: bool) -> None:
        """GUI thread (menu action): turn Inspect mode on or off."""
        self.active = on
        if not on:
            self._hover_timer.stop()
            self._diff_timer.stop()
            self._feature_timer.stop()
            self._set_probe(None)
        else:
            self._request_layer()
        self.changed.emit()

    def set_options(self, options: InspectOptions) -> None:
        """GUI thread (panel): new options; asks for whatever layer they need."""
        layer_changed = (options.layer, options.channel) != (self.options.layer, self.options.channel)
        self.options = options
        if not options.probe:
            self._set_probe(None)
        if layer_changed and self.active:
            self._request_layer()
        self.changed.emit()

    def reset(self) -> None:
        """GUI thread: the photo or the model changed; every cached result is void."""
        self._features.clear()
        self._diff.clear()
        self._diff_pending.clear()
        for slot in SLOT_ORDER:
            self._next(slot)  # results in flight no longer match
        self._set_probe(None)
        if self.active:
            self._request_layer()
        self.changed.emit()

    def _set_probe(self, probe: Probe | None) -> None:
        self.probe = probe
        if probe is None:
            self.probe_point = None
        self.probe_changed.emit(probe)

    # -- requests ---------------------------------------------------------------------------------------------
    def hover(self, lx: float, ly: float) -> None:
        """GUI thread (canvas mouse move): probe the device pixel under logical position (lx, ly)."""
        if not (self.active and self.options.probe) or self._view.viewport is None:
            return
        self._hover = (lx, ly)
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def leave(self) -> None:
        """GUI thread: the pointer left the canvas; keep the last probe shown."""
        self._hover = None

    def probe_request(self, lx: float, ly: float, purpose: ProbePurpose = "hover") -> ProbeRequest | None:
        """The request for the device pixel under (lx, ly): that pixel of the tile the canvas paints there."""
        vp, content = self._view.viewport, self.content
        if vp is None or content is None:
            return None
        ox, oy = vp.origin
        vx = math.floor(lx * vp.dpr) + ox
        vy = math.floor(ly * vp.dpr) + oy
        vw, vh = vp.virtual_size
        if not (0 <= vx < vw and 0 <= vy < vh):
            return None
        tile = self._view.tile_size
        spec = pl.tile_spec(vp, vx // tile, vy // tile, tile=tile)
        gen = self._next("probe" if purpose == "hover" else "illustration")
        return ProbeRequest(gen, content, spec.rect, spec.out_w, spec.out_h, vy % tile, vx % tile, purpose)

    def _send_probe(self) -> None:
        """GUI thread (coalescing timer): send the probe for the latest pointer position."""
        if self._hover is None:
            return
        req = self.probe_request(*self._hover)
        if req is None:
            return
        vp = self._view.viewport
        if vp is not None:
            self.probe_point = vp.screen_to_source(*self._hover)
        self._sink.inspect(req)

    def request_illustration(self, centre: tuple[float, float], magnification: float) -> bool:
        """GUI thread: ask for the PCA image and a probe at `centre` for Help ▸ How it works."""
        content = self.content
        photo = self._view.photo
        if content is None or photo is None:
            return False
        self._request_feature("pca", 0)
        zd = magnification
        vx, vy = math.floor(centre[0] * zd), math.floor(centre[1] * zd)
        rect = (vx / zd, vy / zd, 1 / zd, 1 / zd)
        gen = self._next("illustration")
        self._sink.inspect(ProbeRequest(gen, content, rect, 1, 1, 0, 0, "illustration"))
        return True

    def feature_pixels(self, kind: FeatureKind = "pca", channel: int = 0) -> np.ndarray | None:
        """The cached feature image of the open photo, if it has arrived."""
        content = self.content
        layer = self._features.get((content, kind, channel if kind == "channel" else 0)) if content else None
        return layer.pixels if layer is not None else None

    def feature_box(self) -> tuple[int, int, int, int] | None:
        """The box of a big photo (over `FEATURE_WHOLE_MP`) its feature image is asked for: the view and an
        eighth of its size around it, snapped out to `FEATURE_BOX_GRID` and clipped to the photo (at 100%
        on a 1280 x 800 canvas about 1.8 MP); None for a smaller photo (its feature image is whole) or
        before there is a view."""
        from viewer.engine.inspect import FEATURE_WHOLE_MP

        photo, vp = self._view.photo, self._view.viewport
        if photo is None or vp is None or photo.width * photo.height <= FEATURE_WHOLE_MP * 1e6:
            return None
        x, y, w, h = vp.source_rect()
        g = FEATURE_BOX_GRID
        x0 = min(max(0, int((x - w / 8) // g) * g), photo.width - 1)
        y0 = min(max(0, int((y - h / 8) // g) * g), photo.height - 1)
        x1 = min(photo.width, -int(-(x + w * 1.125) // g) * g)
        y1 = min(photo.height, -int(-(y + h * 1.125) // g) * g)
        return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))

    def _covers_view(self, layer: ImageLayer) -> bool:
        """Whether a feature layer covers the part of the photo in view."""
        photo, vp = self._view.photo, self._view.viewport
        if photo is None or vp is None:
            return True
        x, y, w, h = vp.source_rect()
        lx, ly, lw, lh = layer.covers
        return (
            lx <= max(0.0, x)
            and ly <= max(0.0, y)
            and min(float(photo.width), x + w) <= lx + lw
            and min(float(photo.height), y + h) <= ly + lh
        )

    def _request_feature(self, kind: FeatureKind, channel: int) -> None:
        from viewer.engine.inspect import FEATURE_WHOLE_MP

        content = self.content
        if content is None:
            return
        ch = channel if kind == "channel" else 0
        have = self._features.get((content, kind, ch))
        if have is not None and self._covers_view(have):
            return
        box = self.feature_box()
        if box is not None:
            mp = (box[2] - box[0]) * (box[3] - box[1]) / 1e6
            if mp > FEATURE_WHOLE_MP:
                self._next("feature")  # a result in flight for another box is no longer wanted
                self.status.emit(
                    f"Zoom in to see the feature image: on a photo this big it is made for the part in view, "
                    f"up to {FEATURE_WHOLE_MP:g} MP at a time (this view needs {mp:.0f} MP)."
                )
                return
        self.status.emit("Computing the feature image…")
        self._sink.inspect(FeatureRequest(self._next("feature"), content, kind, ch, box=box))

    def _request_layer(self) -> None:
        o = self.options
        if o.layer == "pca":
            self._request_feature("pca", 0)
        elif o.layer == "channel":
            self._request_feature("channel", o.channel)
        elif o.layer == "difference":
            self._diff_timer.start()

    def _on_view_changed(self) -> None:
        """GUI thread: the viewport moved; the difference view follows once it rests."""
        if self.active and self.options.layer == "difference":
            self._diff_timer.start()
        elif self.active and self.options.layer in ("pca", "channel") and self.feature_box() is not None:
            self._feature_timer.start()  # a big photo's feature image follows the view once it rests

    def _request_difference(self) -> None:
        """GUI thread (debounce timer): ask for the visible difference tiles not cached yet."""
        vp, content = self._view.viewport, self.content
        if vp is None or content is None:
            return
        if not vp.refinable:
            self.status.emit("At 100% or less the view is the photo itself: zoom in to see what LIIF adds.")
            return
        tile = self._view.tile_size
        specs = tuple(
            pl.tile_spec(vp, tx, ty, tile=tile)
            for tx, ty in pl.visible_range(vp, tile).cells()
            if (content, TileKey(vp.device_zoom, tx, ty)) not in self._diff
        )
        if not specs:
            return
        self._diff_pending = {(content, s.key) for s in specs}
        self.status.emit(f"Comparing {len(specs)} tiles with bicubic…")
        self._sink.inspect(DifferenceRequest(self._next("difference"), content, specs))

    # -- results (GUI thread; queued from the render worker) ------------------------------------------------
    def on_event(self, ev: object) -> bool:
        """Apply an inspection result if it answers the newest request of its kind; True if applied."""
        content = self.content
        if isinstance(ev, ProbeResult):
            slot = "probe" if ev.purpose == "hover" else "illustration"
            if ev.generation != self.current_generation(slot) or ev.content != content:
                return False
            if ev.purpose == "illustration":
                self.illustration_probe.emit(ev.probe)
                return True
            if not (self.active and self.options.probe):
                return False
            self.probe_point = (ev.probe.x, ev.probe.y)
            self._set_probe(ev.probe)
            self.changed.emit()
            return True
        if isinstance(ev, FeatureResult):
            if ev.content != content or (
                ev.box is not None and ev.generation != self.current_generation("feature")
            ):
                return False
            x0, y0 = (ev.box[0], ev.box[1]) if ev.box is not None else (0, 0)
            self._features[(ev.content, ev.kind, ev.channel)] = ImageLayer(
                ev.pixels, (float(x0), float(y0), float(ev.pixels.shape[1]), float(ev.pixels.shape[0]))
            )
            if ev.n_channels != self.n_channels:
                self.n_channels = ev.n_channels
                self.channels_known.emit(ev.n_channels)
            self.status.emit(f"Feature image ready ({ev.seconds:.1f} s).")
            self.feature_ready.emit()
            self.changed.emit()
            return True
        if isinstance(ev, DifferenceTile):
            if ev.generation != self.current_generation("difference") or ev.content != content:
                return False
            key = (ev.content, ev.key)
            self._diff[key] = ImageLayer(ev.pixels, ev.rect, smooth=False)
            self._diff.move_to_end(key)
            while len(self._diff) > DIFFERENCE_CACHE_TILES:
                self._diff.popitem(last=False)
            self._diff_pending.discard(key)
            if not self._diff_pending:
                self.status.emit("“What the model adds” is up to date for this view.")
            self.changed.emit()
            return True
        if isinstance(ev, InspectFailed):
            if ev.generation == self.current_generation(ev.slot) and ev.content == content:
                self.status.emit(f"Inspection failed: {ev.message}")
                return True
            return False
        return False

    # -- painting (GUI thread; cached data only) -----------------------------------------------------------------
    def lattice_for(self, vp: Viewport, image_w: int, image_h: int) -> Lattice:
        """The lattice for `vp` in canvas device pixels (pure arithmetic, cached per viewport)."""
        dw, dh = vp.device_size
        key = _LatticeKey(vp.source_rect(), (dw, dh), (image_w, image_h))
        if key != self._lattice_key:
            self._lattice_key = key
            self._lattice = lattice_lines(key.rect, dw, dh, bounds=key.bounds)
        return self._lattice

    def paint(self, painter: QPainter, clip: QRectF | None = None) -> None:
        """GUI thread (canvas paintEvent): draw the active overlays from cached data, in device pixels.

        The painter must be in device pixels (the canvas scales by 1/dpr around this call). Never calls the
        model: layers are arrays from the worker, the lattice is arithmetic.
        """
        vp, photo = self._view.viewport, self._view.photo
        if not self.active or vp is None or photo is None:
            return
        dw, dh = vp.device_size
        canvas = QRectF(0, 0, dw, dh)
        view = vp.source_rect()
        o = self.options
        if o.layer in ("pca", "channel"):
            kind: FeatureKind = "pca" if o.layer == "pca" else "channel"
            feature = self._features.get((photo.content, kind, o.channel if kind == "channel" else 0))
            if feature is not None:
                paint_layer(painter, feature, view, canvas, o.opacity)
        elif o.layer == "difference" and vp.refinable:
            zd = vp.device_zoom
            for (content, tile_key), layer in self._diff.items():
                if content == photo.content and tile_key.zoom == zd:
                    paint_layer(painter, layer, view, canvas, o.opacity)
        if o.lattice:
            paint_lattice(painter, self.lattice_for(vp, photo.width, photo.height))
        if o.probe and self.probe is not None:
            zd = vp.device_zoom
            ox, oy = vp.origin
            paint_probe(painter, self.probe, lambda x, y: QPointF(x * zd - ox, y * zd - oy))

    def paint_cue(self, painter: QPainter, rect: QRectF) -> None:
        """GUI thread (canvas paintEvent, logical pixels): the confidence cue beyond x4 in Inspect mode."""
        vp = self._view.viewport
        if self.active and vp is not None and self._view.photo is not None:
            paint_confidence_cue(painter, rect, vp.magnification)


def describe_probe_wait(engine_ready: bool, encoded: bool) -> str:
    """The panel's status line while no probe can be computed yet."""
    if not engine_ready:
        return "Waiting for the model to load…"
    if not encoded:
        return "Waiting for the photo to be encoded…"
    return "Hover over the photo to probe a pixel."
