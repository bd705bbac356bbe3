"""Inspect mode's plumbing without the window: the request queue, the worker-side computations, and the GUI
controller's generations (a stale result is never applied)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from viewer.app import inspect_mode as im
from viewer.app import planning as pl
from viewer.app.bicubic_worker import source_tile
from viewer.app.inspect_panel import InspectOptions
from viewer.app.photo import Photo, load_photo
from viewer.app.planning import TileKey, Viewport
from viewer.app.view_controller import ViewController
from viewer.app.worker import to_bgra
from viewer.engine.cancel import CancelToken

from .helpers import make_tiny_engine, textured
from .inspect_data import plain_probe

RGBA = tuple[int, int, int, int]
"""What `QColor.getRgb` returns (the PySide6 stubs say `object`)."""


class Sink:
    """Collects what a controller sends to a worker."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def submit(self, request: Any) -> None:
        self.requests.append(request)

    def cancel_tiles(self) -> None:
        pass

    def inspect(self, request: Any) -> None:
        self.requests.append(request)


def _spec(zoom: float = 4.0, tx: int = 0, ty: int = 0, w: int = 24, h: int = 20) -> pl.TileSpec:
    return pl.tile_spec(Viewport(w, h, 200, 200, 1.0, zoom, w / 2, h / 2), tx, ty, tile=32)


# -- the queue -----------------------------------------------------------------------------------------------
def test_queue_latest_wins_probes_first_heavy_waits_for_tiles() -> None:
    q = im.InspectQueue()
    q.put(im.DifferenceRequest(1, 5, ()))
    q.put(im.FeatureRequest(2, 5, "pca"))
    q.put(im.ProbeRequest(3, 5, (0, 0, 1, 1), 1, 1, 0, 0))
    q.put(im.ProbeRequest(4, 5, (0, 0, 1, 1), 1, 1, 0, 0))
    assert q.has_ready(5, tiles_busy=True)
    req, token = q.take(5, tiles_busy=True)  # type: ignore[misc]
    assert isinstance(req, im.ProbeRequest) and req.generation == 4
    assert q.take(5, tiles_busy=True) is None  # feature and difference wait for the tiles
    req2, _ = q.take(5, tiles_busy=False)  # type: ignore[misc]
    assert isinstance(req2, im.FeatureRequest)
    # A newer request of a running slot cancels the running one.
    q.put(im.ProbeRequest(6, 5, (0, 0, 1, 1), 1, 1, 0, 0))
    assert token.cancelled
    # Requests for an older content are dropped; newer ones wait for their encode.
    q.put(im.FeatureRequest(7, 4, "pca"))
    q.put(im.DifferenceRequest(8, 9, ()))
    assert q.take(9, tiles_busy=True) is None  # the probe is for content 5 < 9: dropped; difference waits
    assert "probe" not in q.pending and "feature" not in q.pending
    assert q.take(9, tiles_busy=False) is not None


def test_recent_tiles_budget_and_content() -> None:
    rt = im.RecentTiles(budget=3 * 32 * 32 * 4)
    for i in range(5):
        rt.put(1, TileKey(2.0, i, 0), np.zeros((32, 32, 4), np.uint8))
    assert rt.get(1, TileKey(2.0, 0, 0)) is None and rt.get(1, TileKey(2.0, 4, 0)) is not None
    assert rt.get(2, TileKey(2.0, 4, 0)) is None
    rt.put(2, TileKey(2.0, 0, 0), np.zeros((32, 32, 4), np.uint8))
    assert rt.get(1, TileKey(2.0, 4, 0)) is None  # a new content forgets the old tiles


def test_bicubic_tile_matches_the_compare_view_worker() -> None:
    """The difference view compares with exactly what compare mode shows as bicubic."""
    from viewer.app.tile_thread import Running
    from viewer.app.worker import BicubicWorker

    rgb8 = textured(24, 20)
    spec = _spec(zoom=3.0)
    worker = BicubicWorker(lambda ev: None)
    worker.set_source(1, rgb8)
    bgra = worker._render(Running(spec, 1, 1, CancelToken()))
    mine = source_tile(rgb8, spec)
    assert np.array_equal(mine, im.bgra_to_rgb(bgra))


def _padded_resample(rgb8: np.ndarray, spec: pl.TileSpec, method: str) -> np.ndarray:
    """The reference: the whole photo padded by 2 edge pixels, then resized over the window's box."""
    pad = 2
    source = Image.fromarray(np.pad(rgb8, ((pad, pad), (pad, pad), (0, 0)), mode="edge"), "RGB")
    x, y, w, h = spec.rect
    r0, c0, r1, c1 = spec.window
    sx, sy = w / spec.out_w, h / spec.out_h
    box = (
        max(0.0, x + c0 * sx + pad),
        max(0.0, y + r0 * sy + pad),
        min(float(source.width), x + c1 * sx + pad),
        min(float(source.height), y + r1 * sy + pad),
    )
    resample = Image.Resampling.NEAREST if method == "nearest" else Image.Resampling.BICUBIC
    return np.asarray(source.resize((c1 - c0, r1 - r0), resample, box=box), dtype=np.uint8)


@pytest.mark.parametrize("method", ["bicubic", "nearest"])
def test_source_tiles_from_crops_equal_resampling_the_padded_photo(method: str) -> None:
    """`source_tile` resamples a crop, not a padded copy of the whole photo, with the same pixels, at
    magnifications from 1/7 to 40, on tiles inside the photo and over its edges, clipped windows too:
    nearest exactly; bicubic within one level (Pillow places its filter from the box's corner, which is
    rounded differently in the crop's coordinates: 3% of the values at 0.37, 0.004% at 40, none else)."""
    rgb8 = textured(211, 157, seed=4)
    rng = np.random.default_rng(3)
    checked = differ = values = 0
    for zoom in (1 / 7, 0.37, 1.0, 1.6, 3.0, 8.0, 40.0):
        vp = Viewport(211, 157, 300, 220, 1.0, zoom, float(rng.uniform(0, 211)), float(rng.uniform(0, 157)))
        for tx, ty in pl.visible_range(vp, 64).cells():
            spec = pl.tile_spec(vp, tx, ty, tile=64)
            mine, ref = source_tile(rgb8, spec, method), _padded_resample(rgb8, spec, method)  # type: ignore[arg-type]
            assert mine.shape == ref.shape
            gap = np.abs(mine.astype(int) - ref)
            assert gap.max() <= (0 if method == "nearest" else 1), (zoom, tx, ty)
            checked, differ, values = checked + 1, differ + int((gap > 0).sum()), values + gap.size
    assert checked > 20 and differ <= 0.01 * values


# -- worker-side computations with the tiny model ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any, np.ndarray]:
    engine = make_tiny_engine()
    rgb8 = textured(24, 20)
    return engine, engine.encode(rgb8.astype(np.float32) / 255), rgb8


def _run(req: Any, tiny: Any, recent: im.RecentTiles | None = None, renders: list | None = None) -> list:
    engine, fm, rgb8 = tiny
    out: list = []

    def render_tile(spec: pl.TileSpec, token: CancelToken) -> np.ndarray:
        from viewer.engine.render import SourceRect

        if renders is not None:
            renders.append(spec.key)
        rgb = engine.render(fm, SourceRect(*spec.rect), spec.out_w, spec.out_h, window=spec.window)
        return to_bgra(rgb)

    im.run_inspect(
        req, engine, fm, CancelToken(), out.append,
        source=lambda: rgb8, recent=recent or im.RecentTiles(), render_tile=render_tile,
    )  # fmt: skip
    return out


def test_probe_request_explains_the_painted_tile_pixel(tiny: Any) -> None:
    engine, fm, _ = tiny
    from viewer.engine.render import SourceRect

    spec = _spec(zoom=5.0)
    tile = to_bgra(engine.render(fm, SourceRect(*spec.rect), spec.out_w, spec.out_h, window=spec.window))
    for row, col in [(0, 0), (7, 19), (31, 2)]:
        (ev,) = _run(im.ProbeRequest(3, 1, spec.rect, spec.out_w, spec.out_h, row, col), tiny)
        assert isinstance(ev, im.ProbeResult) and ev.generation == 3
        painted = tile[row, col, 2::-1]
        assert tuple(painted) == tuple(round(v * 255) for v in ev.probe.rgb_clamped)


def test_feature_requests(tiny: Any) -> None:
    _, _fm, _ = tiny
    (pca,) = _run(im.FeatureRequest(1, 1, "pca"), tiny)
    assert pca.pixels.shape == (20, 24, 3) and pca.n_channels == 8
    (ch,) = _run(im.FeatureRequest(2, 1, "channel", 3), tiny)
    assert ch.channel == 3 and ch.pixels.shape == (20, 24, 3)


def test_difference_reuses_recent_tiles(tiny: Any) -> None:
    specs = (_spec(zoom=4.0, tx=0), _spec(zoom=4.0, tx=1))
    recent = im.RecentTiles()
    renders: list = []
    first = _run(im.DifferenceRequest(1, 1, specs), tiny, recent, renders)
    assert [e.key for e in first] == [s.key for s in specs] and len(renders) == 2
    again = _run(im.DifferenceRequest(2, 1, specs), tiny, recent, renders)
    assert len(renders) == 2  # no model call: the tiles were cached
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(first, again, strict=True))
    tile = first[0]
    assert tile.pixels.shape == (32, 32, 4) and tile.pixels.dtype == np.uint8 and tile.mean > 0
    assert tile.rect == pytest.approx((0.0, 0.0, 8.0, 8.0))


# -- the GUI controller --------------------------------------------------------------------------------------
@pytest.fixture
def controller(qtbot: Any, tmp_path: Path) -> tuple[im.InspectController, ViewController, Sink]:
    p = tmp_path / "p.png"
    Image.fromarray(textured(24, 20)).save(p)
    ev = load_photo(1, p)
    tiles = Sink()
    view = ViewController(tiles, tiles, debounce_ms=0)
    view.set_canvas_geometry(240, 200, 1.0)
    view.set_photo(Photo.from_event(ev, 7))  # type: ignore[arg-type]
    sink = Sink()
    ctl = im.InspectController(view, sink)
    return ctl, view, sink


def test_hover_sends_a_probe_for_the_tile_pixel_under_the_pointer(controller: Any, qtbot: Any) -> None:
    ctl, view, sink = controller
    ctl.hover(10, 10)
    assert not sink.requests  # inactive: nothing
    ctl.set_active(True)
    view.zoom_to(8.0)
    ctl.hover(100.5, 60.2)
    ctl.hover(101.5, 61.2)  # coalesced with the first
    qtbot.waitUntil(lambda: len(sink.requests) == 1)
    req = sink.requests[0]
    assert isinstance(req, im.ProbeRequest) and req.content == 7
    vp = view.viewport
    ox, oy = vp.origin
    vx, vy = 101 + ox, 61 + oy
    t = view.tile_size
    assert (req.row, req.col) == (vy % t, vx % t)
    assert req.rect == pl.tile_spec(vp, vx // t, vy // t, tile=t).rect


def test_stale_results_are_not_applied(controller: Any, qtbot: Any) -> None:
    ctl, view, _sink = controller
    ctl.set_active(True)
    view.zoom_to(8.0)
    old = ctl.probe_request(50, 50)
    new = ctl.probe_request(60, 60)
    assert old is not None and new is not None and new.generation > old.generation
    p = plain_probe()
    assert not ctl.on_event(im.ProbeResult(old.generation, 7, "hover", p, 0.0))
    assert ctl.probe is None
    with qtbot.waitSignal(ctl.probe_changed):
        assert ctl.on_event(im.ProbeResult(new.generation, 7, "hover", p, 0.0))
    assert ctl.probe is p
    assert not ctl.on_event(im.ProbeResult(new.generation, 8, "hover", p, 0.0))  # another photo/model


def test_layers_are_requested_once_and_painted_from_cache(controller: Any, qtbot: Any) -> None:
    ctl, _view, sink = controller
    ctl.set_active(True)
    ctl.set_options(InspectOptions(layer="pca"))
    (req,) = [r for r in sink.requests if isinstance(r, im.FeatureRequest)]
    pixels = np.full((20, 24, 3), (255, 0, 0), np.uint8)
    assert ctl.on_event(im.FeatureResult(req.generation, 7, "pca", 0, pixels, 8, 0.1))
    ctl.set_options(InspectOptions(layer="none"))
    ctl.set_options(InspectOptions(layer="pca", opacity=1.0, lattice=False))
    assert len([r for r in sink.requests if isinstance(r, im.FeatureRequest)]) == 1  # cached
    image = QImage(240, 200, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    ctl.paint(painter)
    painter.end()
    assert cast(RGBA, image.pixelColor(120, 100).getRgb())[:3] == (255, 0, 0)  # the photo's area is covered


def test_difference_requests_visible_tiles_when_the_view_rests(controller: Any, qtbot: Any) -> None:
    ctl, view, sink = controller
    ctl.set_active(True)
    view.zoom_to(4.0)
    ctl.set_options(InspectOptions(layer="difference"))
    qtbot.waitUntil(lambda: any(isinstance(r, im.DifferenceRequest) for r in sink.requests), timeout=3000)
    req = next(r for r in sink.requests if isinstance(r, im.DifferenceRequest))
    vp = view.viewport
    assert {s.key for s in req.tiles} == {
        TileKey(vp.device_zoom, tx, ty) for tx, ty in pl.visible_range(vp, view.tile_size).cells()
    }
    for s in req.tiles:
        rows, cols = s.size[1], s.size[0]
        ctl.on_event(
            im.DifferenceTile(
                req.generation, 7, s.key, im.tile_covers(s), np.zeros((rows, cols, 4), np.uint8), 0.0
            )
        )
    sink.requests.clear()
    view.pan_by(1, 0)
    qtbot.wait(im.DIFFERENCE_DEBOUNCE_MS + 100)
    assert not [r for r in sink.requests if isinstance(r, im.DifferenceRequest)]  # all cached


def test_paint_draws_the_cue_beyond_x4(controller: Any) -> None:
    ctl, view, _ = controller
    ctl.set_active(True)
    image = QImage(240, 200, QImage.Format.Format_ARGB32_Premultiplied)
    for zoom, expect in ((4.0, False), (6.0, True)):
        view.zoom_to(zoom)
        image.fill(QColor(0, 0, 0))
        painter = QPainter(image)
        ctl.paint_cue(painter, QRectF(0, 0, 240, 200))
        painter.end()
        corner = {cast(RGBA, image.pixelColor(x, 185).getRgb())[:3] for x in range(10, 120)}
        assert (corner != {(0, 0, 0)}) == expect


def test_a_big_photo_feature_image_follows_the_view(
    controller: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over `FEATURE_WHOLE_MP` (lowered here, with a finer box grid) the feature image is asked for the
    part in view: none while the view shows more than that (the panel says to zoom in), then the view's
    box, painted where it lies; a pan outside it asks for a new box once the view rests."""
    from viewer.engine import inspect as ins

    monkeypatch.setattr(ins, "FEATURE_WHOLE_MP", 0.0002)  # the 24 x 20 test photo (480 px) counts as big
    monkeypatch.setattr(im, "FEATURE_BOX_GRID", 4)
    ctl, view, sink = controller
    said: list[str] = []
    ctl.status.connect(said.append)
    ctl.set_active(True)
    ctl.set_options(InspectOptions(layer="pca", opacity=1.0, lattice=False))
    assert not [r for r in sink.requests if isinstance(r, im.FeatureRequest)]
    assert said and said[-1].startswith("Zoom in to see the feature image")
    view.zoom_to(40.0)
    view.centre_on(6.0, 5.0)
    view.flush()
    qtbot.waitUntil(lambda: any(isinstance(r, im.FeatureRequest) for r in sink.requests), timeout=3000)
    req = [r for r in sink.requests if isinstance(r, im.FeatureRequest)][-1]
    assert req.box is not None
    x0, y0, x1, y1 = req.box
    sx, sy, sw, sh = view.viewport.source_rect()
    assert x0 <= max(0.0, sx) and y0 <= max(0.0, sy) and x1 >= min(24.0, sx + sw) and y1 >= min(20.0, sy + sh)
    assert (x1 - x0) * (y1 - y0) <= 200 and (x1 - x0) * (y1 - y0) < 24 * 20
    pixels = np.full((y1 - y0, x1 - x0, 3), (0, 255, 0), np.uint8)
    assert ctl.on_event(im.FeatureResult(req.generation, 7, "pca", 0, pixels, 8, 0.1, req.box))
    image = QImage(240, 200, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(0, 0, 0))
    painter = QPainter(image)
    ctl.paint(painter)
    painter.end()
    assert cast(RGBA, image.pixelColor(120, 100).getRgb())[:3] == (0, 255, 0)  # the box is where the view is
    stale = im.FeatureResult(req.generation - 1, 7, "pca", 0, pixels, 8, 0.1, (0, 0, 4, 4))
    assert not ctl.on_event(stale)  # an older box's answer is not applied
    sink.requests.clear()
    view.centre_on(20.0, 16.0)  # outside the box
    view.flush()
    qtbot.waitUntil(lambda: any(isinstance(r, im.FeatureRequest) for r in sink.requests), timeout=3000)
    new = [r for r in sink.requests if isinstance(r, im.FeatureRequest)][-1]
    assert new.box is not None and new.box != req.box and new.generation > req.generation


def test_a_16_bit_photo_is_resampled_as_the_screen_shows_it() -> None:
    """A 16-bit photo's tiles come from its own pixels, each crop made 8-bit (no whole 8-bit copy): the
    same tiles as from the photo's 8-bit screen copy."""
    from viewer.engine.imageio import display_8bit

    deep = (textured(40, 30, seed=6).astype(np.uint32) * 257 + 91).clip(0, 65535).astype(np.uint16)
    for zoom in (0.5, 3.0):
        spec = _spec(zoom=zoom, w=40, h=30)
        assert np.array_equal(source_tile(deep, spec), source_tile(display_8bit(deep), spec))
