"""The view controller with fake workers: debounce, hysteresis, the cache, and what it paints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QRectF

from viewer.app import planning as pl
from viewer.app.messages import RequestDone, TileRequest, TileResult
from viewer.app.photo import Photo, build_pyramid
from viewer.app.planning import TileKey
from viewer.app.view_controller import ViewController

from .helpers import textured


class Sink:
    """Records what the controller asks a worker to do."""

    def __init__(self) -> None:
        self.requests: list[TileRequest] = []
        self.cancels = 0

    def submit(self, request: TileRequest) -> None:
        self.requests.append(request)

    def cancel_tiles(self) -> None:
        self.cancels += 1


def make_photo(w: int = 400, h: int = 300, content: int = 1) -> Photo:
    from viewer.app.photo import bgra_to_pixmap

    rgb8 = textured(w, h)
    return Photo(Path("t.png"), w, h, content, [bgra_to_pixmap(a) for a in build_pyramid(rgb8)], None, rgb8)


@pytest.fixture
def setup(qapp: Any) -> tuple[ViewController, Sink, Sink]:
    liif, bic = Sink(), Sink()
    view = ViewController(liif, bic, debounce_ms=30, tile=128)
    view.set_canvas_geometry(640, 480, 1.0)
    view.set_photo(make_photo())
    return view, liif, bic


def deliver(view: ViewController, req: TileRequest, only_visible: bool = False) -> None:
    for spec in req.tiles:
        if only_visible and not spec.visible:
            continue
        cols, rows = spec.size
        px = np.full((rows, cols, 4), 128, np.uint8)
        view.on_tile(TileResult(req.generation, req.content, req.kind, spec.key, px, 0.0, spec))
    view.on_request_done(RequestDone(req.generation, req.kind, 0.1, len(req.tiles)))


def test_a_burst_of_zooms_sends_one_request(qtbot: Any, setup: tuple[ViewController, Sink, Sink]) -> None:
    view, liif, _ = setup
    n0 = len(liif.requests)
    for _ in range(10):
        view.zoom_by(1.05, (100, 100))
    qtbot.wait(120)
    assert len(liif.requests) == n0 + 1
    assert view.viewport is not None
    assert liif.requests[-1].tiles[0].key.zoom == view.viewport.device_zoom


def test_a_long_drag_still_sends_requests(qtbot: Any, setup: tuple[ViewController, Sink, Sink]) -> None:
    view, liif, _ = setup
    view.zoom_to(4.0)
    view.centre_on(0, 150)  # at the left edge, with 960 device px to pan across
    view.flush()
    n0 = len(liif.requests)
    t_end = time.perf_counter() + 0.8
    while time.perf_counter() < t_end:  # a continuous drag: an event every 10 ms, never a pause
        view.pan_by(12, 0)
        qtbot.wait(10)
    assert len(liif.requests) - n0 >= 2


def test_small_moves_send_nothing_and_cached_tiles_are_not_asked_again(
    setup: tuple[ViewController, Sink, Sink],
) -> None:
    view, liif, _ = setup
    view.zoom_to(4.0)
    view.flush()
    req = liif.requests[-1]
    assert view.viewport is not None
    assert [s.visible for s in req.tiles][: req.tiles.__len__()].count(True) == pl.plan_tiles(
        view.viewport, tile=128
    ).n_visible
    deliver(view, req)
    assert view.is_settled() and view.refine.last_seconds == 0.1
    n = len(liif.requests)
    view.pan_by(20, 10)
    view.flush()
    assert len(liif.requests) == n  # inside the prefetch ring: hysteresis
    view.pan_by(600, 0)
    view.flush()
    new = liif.requests[-1]
    cached = {k for kind, k in view.cached_keys()}
    assert len(liif.requests) == n + 1 and not cached & new.key_set


def test_frame_blits_settled_tiles_one_to_one(setup: tuple[ViewController, Sink, Sink]) -> None:
    view, liif, _ = setup
    view.zoom_to(3.0)
    view.flush()
    deliver(view, liif.requests[-1])
    frame = view.frame()
    ops = frame.layers[0].ops
    assert ops and all(not op.smooth for op in ops)  # no preview underneath, no scaling
    for op in ops:
        t = op.target
        assert t.x() == int(t.x()) and t.y() == int(t.y())
        assert (t.width(), t.height()) == (op.source.width(), op.source.height())


def test_frame_uses_scaled_placeholders_over_the_preview(setup: tuple[ViewController, Sink, Sink]) -> None:
    view, liif, _ = setup
    view.zoom_to(3.0)
    view.flush()
    deliver(view, liif.requests[-1], only_visible=True)
    view.zoom_to(2.0)  # within 2x, but wider than the 3x tiles: the preview shows around them
    ops = view.frame().layers[0].ops
    assert view.photo is not None
    assert ops[0].smooth and ops[0].pixmap is view.photo.levels[0]  # the interpolated preview first
    scaled = [op for op in ops[1:] if op.smooth]
    assert scaled and all(op.target.width() == pytest.approx(op.source.width() * 2 / 3) for op in scaled)
    view.zoom_to(4.5)  # inside the 3x tiles: they cover the view, so the preview under them is skipped
    ops = view.frame().layers[0].ops
    assert ops and all(op.pixmap is not view.photo.levels[0] for op in ops)
    assert all(op.smooth and op.target.width() == pytest.approx(op.source.width() * 1.5) for op in ops)
    covered = QRectF(ops[0].target)
    for op in ops[1:]:
        covered = covered.united(op.target)
    assert covered.contains(QRectF(0, 0, 640, 480))
    view.zoom_to(12.0)  # beyond 2x: only the preview
    assert len(view.frame().layers[0].ops) == 1


def test_below_one_to_one_the_preview_comes_from_the_pyramid(
    setup: tuple[ViewController, Sink, Sink],
) -> None:
    view, liif, _ = setup
    view.set_canvas_geometry(100, 80, 1.0)
    view.fit()
    assert view.viewport is not None
    assert not view.viewport.refinable
    ops = view.frame().layers[0].ops
    assert view.photo is not None
    assert len(ops) == 1 and ops[0].pixmap is view.photo.levels[2]  # 400 px -> 100 px: the quarter level
    assert liif.cancels > 0


def test_compare_splits_liif_and_bicubic(setup: tuple[ViewController, Sink, Sink]) -> None:
    view, _, bic = setup
    view.zoom_to(3.0)
    view.set_compare(True)
    assert bic.requests and bic.requests[-1].kind == "bicubic"
    frame = view.frame()
    assert frame.split_x == 320 and len(frame.layers) == 2
    assert frame.layers[0].clip is not None and frame.layers[1].clip is not None
    assert frame.layers[0].clip.right() == 320 and frame.layers[1].clip.left() == 320
    view.set_compare(False)
    assert bic.cancels > 0


def test_the_cache_stays_within_its_budget_and_keeps_what_is_on_screen(qapp: Any) -> None:
    liif = Sink()
    view = ViewController(liif, Sink(), cache_bytes=1, tile=128)
    view.set_canvas_geometry(300, 200, 1.0)
    budget = view.cache.budget_bytes  # raised to a floor of a few screens' worth
    assert budget >= 3 * 300 * 200 * 4
    view.set_photo(make_photo(1200, 900))
    for z in (2.0, 3.0, 5.0, 7.0, 9.0, 11.0):
        view.zoom_to(z)
        view.flush()
        deliver(view, liif.requests[-1])
        assert view.cache.nbytes <= budget
        assert view.is_settled()  # the visible tiles are never the ones evicted


@pytest.mark.parametrize("zoom", [2.2, 2.6, 3.3, 3.7, 4.1, 4.5, 5.2])
def test_placeholders_and_preview_cover_the_photo_edge(
    setup: tuple[ViewController, Sink, Sink], zoom: float
) -> None:
    view, liif, _ = setup
    view.set_photo(make_photo(401, 299))
    view.zoom_to(3.0)
    view.pan_by(5000, 5000)  # the photo's bottom-right corner in view
    view.flush()
    deliver(view, liif.requests[-1], only_visible=True)  # zooming out, they cover only part of the view
    view.zoom_to(zoom)
    view.pan_by(5000, 5000)
    frame = view.frame()
    ops = frame.layers[0].ops
    assert ops and all(op.smooth for op in ops)
    area = frame.image_rect.intersected(QRectF(0, 0, 640, 480))
    assert not area.isEmpty()
    # Sample the area's pixel centres: each lies under some op (no background shows through).
    for fx in np.linspace(0, 1, 41):
        for fy in np.linspace(0, 1, 41):
            x = area.left() + 0.5 + fx * (area.width() - 1)
            y = area.top() + 0.5 + fy * (area.height() - 1)
            assert any(op.target.contains(x, y) for op in ops), (x, y)


def cut_view(view: ViewController) -> TileRequest:
    """A view at 3x whose canvas edges cut tiles on all four sides; returns its request."""
    view.zoom_to(3.0)
    view.pan_by(37, 23)
    view.flush()
    return view_last(view)


def view_last(view: ViewController) -> TileRequest:
    sink = view._sinks["liif"]
    assert isinstance(sink, Sink)
    return sink.requests[-1]


def test_edge_tiles_are_asked_for_their_visible_part_first(setup: tuple[ViewController, Sink, Sink]) -> None:
    view, _, _ = setup
    req = cut_view(view)
    vp = view.viewport
    assert vp is not None
    parts = [s.part for s in req.tiles]
    n_vis = sum(s.visible for s in req.tiles)
    assert all(s.visible for s in req.tiles[:n_vis]) and not any(s.visible for s in req.tiles[n_vis:])
    assert "visible" in parts[:n_vis] and "visible" not in parts[n_vis:]
    # The first renders are exactly the canvas: not one pixel outside it.
    assert sum(s.size[0] * s.size[1] for s in req.tiles[:n_vis]) == 640 * 480
    # Each cut tile is completed after the visible ones, before the prefetch ring.
    cut = [s.key for s in req.tiles[:n_vis] if s.part == "visible"]
    after = [s.key for s in req.tiles[n_vis : n_vis + len(cut)]]
    assert sorted(after) == sorted(cut)


def solid(spec: pl.TileSpec, value: int) -> np.ndarray:
    """Opaque grey pixels of `spec`'s size, as a worker delivers them."""
    cols, rows = spec.size
    px = np.full((rows, cols, 4), value, np.uint8)
    px[..., 3] = 255
    return px


def pixel(view: ViewController, key: pl.TileKey, x: int, y: int) -> tuple[int, int, int, int]:
    pm = view.cache.peek(("liif", key))
    assert pm is not None
    c = pm.toImage().pixelColor(x, y)  # type: ignore[attr-defined]
    return c.red(), c.green(), c.blue(), c.alpha()


def test_a_visible_part_shows_at_once_and_its_rest_completes_the_tile(
    setup: tuple[ViewController, Sink, Sink],
) -> None:
    view, _, _ = setup
    req = cut_view(view)
    n_vis = sum(s.visible for s in req.tiles)
    for spec in req.tiles[:n_vis]:
        view.on_tile(TileResult(req.generation, req.content, "liif", spec.key, solid(spec, 100), 0.0, spec))
    assert view.is_settled()  # what is on the canvas is refined...
    side = next(
        s for s in req.tiles[:n_vis] if s.part == "visible" and s.window[0] == 0 and s.window[2] == s.shape[0]
    )
    _, c0, _, c1 = side.window
    inside, outside = (c0 + c1) // 2, (c1 if c0 == 0 else c0 - 1)
    assert pixel(view, side.key, inside, 5)[3] == 255
    assert pixel(view, side.key, outside, 5)[3] == 0  # ...the rest of an edge tile is not rendered yet
    ops = view.frame().layers[0].ops
    assert not any(op.smooth for op in ops)  # the canvas is covered: no placeholder under the tiles
    rest = next(s for s in req.tiles[n_vis:] if s.key == side.key)
    assert rest.part == "rest" and pl.completes(side.window, rest.window, side.shape)
    assert view.on_tile(
        TileResult(req.generation, req.content, "liif", rest.key, solid(rest, 200), 0.0, rest)
    )
    assert pixel(view, side.key, inside, 5) == (100, 100, 100, 255)
    assert pixel(view, side.key, outside, 5) == (200, 200, 200, 255)
    # A part that arrives late never replaces the whole tile.
    late = solid(side, 50)
    assert not view.on_tile(TileResult(req.generation, req.content, "liif", side.key, late, 0.0, side))
    assert pixel(view, side.key, inside, 5)[0] == 100


def test_a_pan_over_a_partial_tile_shows_the_placeholder_and_asks_for_it(
    setup: tuple[ViewController, Sink, Sink],
) -> None:
    view, _, _ = setup
    req = cut_view(view)
    n_vis = sum(s.visible for s in req.tiles)
    deliver(view, TileRequest(req.generation, req.content, "liif", req.tiles[:n_vis], req.submitted))
    assert view.is_settled()
    view.pan_by(-30, 0)  # brings the unrendered part of the left edge tiles on screen, inside the ring
    assert not view.is_settled()
    assert any(op.smooth for op in view.frame().layers[0].ops)  # the preview shows through
    # The next request (a replan, e.g. after the first was cancelled) asks for what is now missing.
    view._replan(force=True)
    again = view_last(view)
    vp = view.viewport
    assert vp is not None
    missing = {
        TileKey(vp.device_zoom, tx, ty)
        for tx, ty in pl.visible_range(vp, 128).cells()
        if not view._shows("liif", vp, TileKey(vp.device_zoom, tx, ty))
    }
    assert missing and missing <= {s.key for s in again.tiles if s.visible}
