"""Viewport geometry and tile planning: pure functions, no Qt and no torch."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import pytest

from viewer.app import planning as pl
from viewer.app.planning import Range, TileKey, Viewport


def vp(
    zoom: float = 1.0, cx: float = 500.0, cy: float = 400.0, dpr: float = 1.0, w: int = 1000, h: int = 800
):
    return pl.clamp_centre(Viewport(1000, 800, w, h, dpr, pl.canonical_zoom(zoom), cx, cy))


def test_module_imports_neither_qt_nor_torch() -> None:
    code = "import sys, viewer.app.planning, viewer.app.tilecache; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("dpr", [1.0, 2.0, 1.5])
@pytest.mark.parametrize("anchor", [(10.0, 10.0), (640.0, 300.0), (333.3, 777.7)])
def test_zoom_keeps_the_source_point_under_the_cursor(dpr: float, anchor: tuple[float, float]) -> None:
    v = Viewport(4000, 3000, 1280, 800, dpr, 2.0, 2000.0, 1500.0)
    before = v.screen_to_source(*anchor)
    for factor in (1.37, 3.0, 0.8, 12.5):
        v2 = pl.zoom_by(v, factor, anchor)
        after = v2.screen_to_source(*anchor)
        # Each viewport's origin is snapped to a whole device pixel: within half a device pixel of each view.
        tol = 0.5 / v2.device_zoom + 0.5 / v.device_zoom + 1e-9
        assert abs(after[0] - before[0]) <= tol and abs(after[1] - before[1]) <= tol
        v, before = v2, after


def test_repeated_anchored_zoom_does_not_drift() -> None:
    v = Viewport(4000, 3000, 1280, 800, 1.0, 1.0, 2000.0, 1500.0)
    anchor = (301.0, 207.0)
    start = v.screen_to_source(*anchor)
    for _ in range(20):
        v = pl.zoom_by(v, 1.26, anchor)
    for _ in range(20):
        v = pl.zoom_by(v, 1 / 1.26, anchor)
    end = v.screen_to_source(*anchor)
    assert math.dist(start, end) < 1.0 / v.device_zoom


def test_fit_is_exact_and_centred() -> None:
    v = pl.fit(Viewport(1000, 800, 500, 300, 1.0))
    assert v.zoom == pytest.approx(300 / 800, rel=1e-12)
    x, y, w, h = v.image_rect_device()
    assert h == 300 and y == 0
    assert w == round(1000 * 300 / 800) and x == round((500 - w) / 2)
    wide = pl.fit(Viewport(1000, 100, 500, 300, 2.0))
    x, y, w, h = wide.image_rect_device()
    assert (x, w) == (0, 1000)  # 500 logical = 1000 device pixels, exactly the photo's width


def test_hundred_percent_is_one_source_pixel_per_logical_pixel() -> None:
    v = pl.with_zoom(vp(0.5), 1.0)
    assert v.zoom == 1.0
    a = v.screen_to_source(100, 100)
    b = v.screen_to_source(200, 100)
    assert b[0] - a[0] == pytest.approx(100.0, abs=1e-12)
    hidpi = pl.with_zoom(replace(vp(0.5), dpr=2.0), 1.0)
    assert hidpi.device_zoom == 2.0  # one source pixel covers 2x2 device pixels on a HiDPI screen


def test_pan_stops_at_the_limits() -> None:
    v = pl.with_zoom(vp(), 4.0)
    far = pl.pan_by(v, 1e6, 1e6)
    x, y, w, h = far.source_rect()
    assert x + w == pytest.approx(1000, abs=1 / far.device_zoom) and y + h == pytest.approx(
        800, abs=1 / far.device_zoom
    )
    assert pl.pan_by(far, 1e6, 0) == far
    near = pl.pan_by(v, -1e6, -1e6)
    x, y, _, _ = near.source_rect()
    assert x == pytest.approx(0, abs=1 / near.device_zoom) and y == pytest.approx(0, abs=1 / near.device_zoom)


def test_a_photo_smaller_than_the_canvas_stays_centred() -> None:
    v = pl.pan_by(pl.fit(Viewport(100, 50, 1000, 800, 1.0)), 300, 300)
    assert (v.cx, v.cy) == (50, 25)


def test_zoom_limits() -> None:
    v = vp()
    assert pl.with_zoom(v, 1e6).zoom == pl.MAX_ZOOM
    assert pl.with_zoom(v, 1e-6).zoom == pl.min_zoom(v)
    assert pl.MAX_ZOOM >= 64


def test_step_zoom_snaps_to_stops_and_is_reversible() -> None:
    assert pl.step_zoom(1.0, 1) == pl.canonical_zoom(math.sqrt(2))
    assert pl.step_zoom(pl.step_zoom(1.0, 1), -1) == 1.0
    assert pl.step_zoom(1.3, 1) == pl.canonical_zoom(math.sqrt(2))
    assert pl.step_zoom(1.3, -1) == 1.0
    z = 1.0
    for _ in range(12):
        z = pl.step_zoom(z, 1)
    assert z == 64.0


def test_canonical_zoom_merges_float_noise() -> None:
    assert 0.1 * 3 != 0.3 and pl.canonical_zoom(0.1 * 3) == 0.3
    assert 0.7 * 3 != 2.1 and pl.canonical_zoom(0.7 * 3) == 2.1
    assert pl.canonical_zoom(1.0 + 1e-14) == 1.0


def test_visible_tiles_and_spec_clip_to_the_photo() -> None:
    v = pl.with_zoom(vp(), 1.3)  # virtual image 1300 x 1040 device px
    assert v.virtual_size == (1300, 1040)
    grid = pl.grid_range(v)
    assert grid == Range(0, 0, 6, 5)
    spec = pl.tile_spec(v, 5, 4)
    assert spec.window == (0, 0, 1040 - 4 * 256, 1300 - 5 * 256)
    assert spec.rect == pytest.approx((5 * 256 / 1.3, 4 * 256 / 1.3, 256 / 1.3, 256 / 1.3))
    with pytest.raises(ValueError):
        pl.tile_spec(v, 6, 0)


def test_tile_sampling_matches_the_viewport_sampling() -> None:
    """Device pixel (r, c) of the canvas samples the same source point as its tile's pixel."""
    v = pl.pan_by(pl.with_zoom(vp(), 3.7), 123.4, 56.7)
    zd = v.device_zoom
    ox, oy = v.origin
    sx, sy, sw, sh = v.source_rect()
    dw, dh = v.device_size
    for r, c in [(0, 0), (17, 300), (dh - 1, dw - 1)]:
        canvas_pt = (sx + (c + 0.5) * sw / dw, sy + (r + 0.5) * sh / dh)
        tx, ty = (ox + c) // 256, (oy + r) // 256
        spec = pl.tile_spec(v, tx, ty)
        x, y, w, h = spec.rect
        lc, lr = ox + c - tx * 256, oy + r - ty * 256
        tile_pt = (x + (lc + 0.5) * w / spec.out_w, y + (lr + 0.5) * h / spec.out_h)
        assert tile_pt == pytest.approx(canvas_pt, abs=1e-9)
        assert zd == spec.key.zoom


def test_plan_is_centre_first_then_ring() -> None:
    v = pl.with_zoom(vp(), 4.0)
    plan = pl.plan_tiles(v)
    vis = plan.visible.cells()
    assert plan.n_visible == len(vis) == plan.visible.n_tiles()
    ox, oy = v.origin
    dw, dh = v.device_size
    centre = (ox + dw / 2, oy + dh / 2)
    d = [math.hypot((tx + 0.5) * 256 - centre[0], (ty + 0.5) * 256 - centre[1]) for tx, ty in plan.order]
    assert d[: plan.n_visible] == sorted(d[: plan.n_visible])
    assert d[plan.n_visible :] == sorted(d[plan.n_visible :])
    assert set(plan.order[: plan.n_visible]) == set(vis)
    ring = set(plan.order[plan.n_visible :])
    assert ring and not ring & set(vis)
    assert all(plan.covered.contains(Range(tx, ty, tx + 1, ty + 1)) for tx, ty in ring)


def test_no_tiles_at_or_below_one_to_one() -> None:
    """At <= 1x a plain downscale of the source is shown; LIIF has nothing to add."""
    for z in (0.3, 1.0):
        v = pl.with_zoom(vp(), z)
        assert not v.refinable and pl.plan_tiles(v).order == ()
    assert pl.with_zoom(replace(vp(), dpr=2.0), 1.0).refinable  # 100% on HiDPI is 2x in device pixels


def test_hysteresis_small_moves_replan_nothing() -> None:
    v = pl.with_zoom(vp(), 4.0)
    plan = pl.plan_tiles(v)
    assert not pl.needs_replan(plan, v)
    assert not pl.needs_replan(plan, pl.pan_by(v, 5, -7))
    assert not pl.needs_replan(plan, pl.pan_by(v, 60, 0))  # still inside the prefetch ring
    assert pl.needs_replan(plan, pl.pan_by(v, 700, 0))
    assert pl.needs_replan(plan, pl.zoom_by(v, 1.01))
    assert pl.needs_replan(None, v)


def test_placeholder_levels_within_a_factor_of_two_best_last() -> None:
    levels = [1.0, 3.0, 3.9, 4.5, 9.0, 4.0]
    assert pl.placeholder_levels(4.0, levels) == [4.5, 3.9]
    assert pl.placeholder_levels(4.0, [9.0, 1.0]) == []


def test_tiles_over_rect_and_device_rect() -> None:
    v = pl.with_zoom(vp(), 4.0)
    other = 3.0
    rng = pl.tiles_over_rect(other, v.source_rect(), 1000, 800)
    x, _, w, _ = v.source_rect()
    assert rng.tx0 <= math.floor(x * other / 256) and rng.tx1 >= math.ceil((x + w) * other / 256)
    key = TileKey(other, rng.tx0, rng.ty0)
    dx, dy, dw, _ = pl.tile_device_rect(v, key, 256, 256)
    assert dw == pytest.approx(256 * 4 / 3)
    # The placeholder tile's top-left source point lands where the current level puts that point.
    sx, sy = key.tx * 256 / other, key.ty * 256 / other
    ox, oy = v.origin
    assert (dx, dy) == pytest.approx((sx * 4 - ox, sy * 4 - oy))


def test_pyramid_level() -> None:
    assert pl.pyramid_level(2.0, 5) == 0
    assert pl.pyramid_level(0.6, 5) == 0
    assert pl.pyramid_level(0.5, 5) == 1
    assert pl.pyramid_level(0.2, 5) == 2
    assert pl.pyramid_level(0.001, 5) == 4


@pytest.mark.parametrize(("zoom", "dx", "dy"), [(3.7, 123.4, 56.7), (2.0, 0.0, 0.0), (5.3, -77.0, 210.0)])
def test_edge_tiles_render_exactly_the_canvas(zoom: float, dx: float, dy: float) -> None:
    """The visible tiles' first renders cover the canvas (within the photo) once, with no pixel beyond it;
    each cut tile's later render completes it without rendering a pixel twice, except at a corner."""
    v = pl.pan_by(pl.with_zoom(vp(w=1003, h=797), zoom), dx, dy)
    ox, oy = v.origin
    dw, dh = v.device_size
    vw, vh = v.virtual_size
    shown = (min(vw, ox + dw) - max(0, ox)) * (min(vh, oy + dh) - max(0, oy))
    rendered, corners, cut = 0, 0, 0
    for tx, ty in pl.visible_range(v).cells():
        whole = pl.tile_spec(v, tx, ty)
        window = pl.on_canvas(v, tx, ty)
        if window == whole.window:
            rendered += whole.size[0] * whole.size[1]
            continue
        cut += 1
        part, rest = pl.edge_specs(v, tx, ty)
        rendered += part.size[0] * part.size[1]
        assert (part.part, part.visible, part.window) == ("visible", True, window)
        assert not rest.visible and rest.key == part.key and rest.shape == whole.shape
        if rest.part == "rest":
            assert pl.completes(part.window, rest.window, whole.shape)
        else:
            assert rest.window == whole.window
            corners += 1
    assert rendered == shown
    assert cut > 0 and corners <= 4


def test_rest_and_completes() -> None:
    v = pl.with_zoom(vp(), 4.0)
    whole = pl.tile_spec(v, 2, 2)
    assert whole.shape == (256, 256)
    right = pl.rest_of(whole, (0, 0, 256, 100))
    assert (right.part, right.window) == ("rest", (0, 100, 256, 256))
    top = pl.rest_of(whole, (30, 0, 256, 256))
    assert (top.part, top.window) == ("rest", (0, 0, 30, 256))
    assert pl.rest_of(whole, (30, 0, 256, 100)).part == "whole"  # a corner: not one rectangle
    assert pl.completes((0, 0, 256, 100), (0, 100, 256, 256), (256, 256))
    assert not pl.completes((0, 0, 256, 101), (0, 100, 256, 256), (256, 256))  # overlap
    assert not pl.completes((0, 0, 256, 99), (0, 100, 256, 256), (256, 256))  # a gap
    assert pl.covers((0, 0, 256, 100), (10, 10, 200, 90)) and not pl.covers((0, 0, 256, 100), (0, 0, 1, 101))
