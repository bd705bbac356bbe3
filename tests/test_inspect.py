"""Inspection (viewer.engine.inspect): the probe is the engine's query, the PCA image is deterministic and
of the photo's size, the lattice and the heat map are plain arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from viewer.engine import inspect as ins
from viewer.engine.render import Engine, FeatureMap, SourceRect
from viewer.errors import ArgumentError, WeightsMissingError
from viewer.liif.liif import make_liif


@pytest.fixture(scope="module")
def tiny() -> tuple[Engine, FeatureMap]:
    engine = Engine(make_liif(n_resblocks=1, n_feats=8, hidden=(16,), seed=0), "cpu", "fp32")
    img = np.random.default_rng(0).random((21, 34, 3), dtype=np.float32)
    return engine, engine.encode(img)


def _assert_probe_is_query(engine: Engine, fm: FeatureMap, p: ins.Probe) -> None:
    """The probe's numbers are the engine's: blended == query(coord, cell), weights sum to 1."""
    coord = torch.tensor([p.coord], dtype=torch.float32)
    cell = torch.tensor(p.cell, dtype=torch.float32)
    raw = engine.query(fm, coord, cell)[0].tolist()
    np.testing.assert_allclose(p.raw, raw, rtol=0, atol=1e-6)
    assert math.isclose(p.weight_sum, 1.0, abs_tol=1e-6)
    assert all(0.0 <= m.weight <= 1.0 for m in p.members)
    blended = sum(np.array(m.raw) * m.weight for m in p.members)
    np.testing.assert_allclose(p.raw, blended, rtol=0, atol=1e-5)


def test_probe_equals_render_at_random_points(tiny: tuple[Engine, FeatureMap]) -> None:
    engine, fm = tiny
    rng = np.random.default_rng(7)
    for _ in range(40):
        x, y = rng.uniform(-0.3, fm.width + 0.3), rng.uniform(-0.3, fm.height + 0.3)
        cw, ch = rng.uniform(0.02, 1.5), rng.uniform(0.02, 1.5)
        p = ins.probe(engine, fm, x, y, cw, ch)
        painted = engine.render(fm, SourceRect(x - cw / 2, y - ch / 2, cw, ch), 1, 1)[0, 0]
        assert np.array_equal(np.array(p.rgb_clamped, dtype=np.float32), painted)
        assert (p.x, p.y) == pytest.approx((x, y))
        _assert_probe_is_query(engine, fm, p)


def test_probe_pixel_equals_that_pixel_of_a_whole_render(tiny: tuple[Engine, FeatureMap]) -> None:
    engine, fm = tiny
    rect, out_w, out_h = SourceRect(3.2, 4.1, 10.5, 7.7), 57, 43
    whole = engine.render(fm, rect, out_w, out_h)
    rng = np.random.default_rng(3)
    for _ in range(30):
        r, c = int(rng.integers(out_h)), int(rng.integers(out_w))
        p = ins.probe_pixel(engine, fm, rect, out_w, out_h, r, c)
        np.testing.assert_allclose(p.rgb_clamped, whole[r, c], rtol=0, atol=1e-6)
    with pytest.raises(ArgumentError):
        ins.probe_pixel(engine, fm, rect, out_w, out_h, out_h, 0)


def test_probe_geometry(tiny: tuple[Engine, FeatureMap]) -> None:
    """Members surround the point, their offsets are the distances to their centres, weights favour
    the nearest code (the area opposite it is the largest)."""
    engine, fm = tiny
    p = ins.probe(engine, fm, 10.8, 6.3, 0.25, 0.25)
    assert [m.name for m in p.members] == list(ins.MEMBER_NAMES)
    assert [m.index for m in p.members] == [(5, 10), (5, 11), (6, 10), (6, 11)]
    for m in p.members:
        assert m.centre == (m.index[1] + 0.5, m.index[0] + 0.5)
        assert m.offset == pytest.approx((p.x - m.centre[0], p.y - m.centre[1]), abs=1e-5)
        assert m.rel == pytest.approx((2 * m.offset[1], 2 * m.offset[0]), abs=1e-5)
        assert m.rgb == pytest.approx(tuple(v * 0.5 + 0.5 for v in m.raw))
    nearest = min(p.members, key=lambda m: math.hypot(*m.offset))
    assert nearest.weight == max(m.weight for m in p.members)
    assert p.coord == pytest.approx((-1 + 2 * 6.3 / fm.height, -1 + 2 * 10.8 / fm.width), abs=1e-6)
    assert p.cell == pytest.approx((2 * 0.25 / fm.height, 2 * 0.25 / fm.width))
    assert p.rel_cell == pytest.approx((0.5, 0.5))
    assert p.magnification == pytest.approx(4.0)


def test_probe_without_local_ensemble_has_one_member() -> None:
    engine = Engine(make_liif(n_feats=6, hidden=(8,), seed=2, local_ensemble=False), "cpu", "fp32")
    fm = engine.encode(np.random.default_rng(2).random((9, 11, 3), dtype=np.float32))
    p = ins.probe(engine, fm, 4.2, 3.9, 0.5, 0.5)
    assert len(p.members) == 1 and p.members[0].index == (3, 4) and p.members[0].weight == 1.0
    _assert_probe_is_query(engine, fm, p)


def test_probe_with_the_official_model() -> None:
    try:
        engine = Engine.from_name("edsr-baseline-liif", "cpu", "fp32")
    except WeightsMissingError:
        pytest.skip("the official weights are not installed (liif-viewer fetch-weights)")
    img = np.random.default_rng(5).random((24, 32, 3), dtype=np.float32)
    fm = engine.encode(img)
    for x, y, cell in [(10.3, 20.7, 0.1), (31.9, 0.2, 0.37), (16.0, 12.0, 1.0)]:
        p = ins.probe(engine, fm, x, y, cell, cell)
        painted = engine.render(fm, SourceRect(x - cell / 2, y - cell / 2, cell, cell), 1, 1)[0, 0]
        assert np.array_equal(np.array(p.rgb_clamped, dtype=np.float32), painted)
        _assert_probe_is_query(engine, fm, p)


def test_pca_rgb_is_deterministic_and_of_the_photo_size(tiny: tuple[Engine, FeatureMap]) -> None:
    _, fm = tiny
    a = ins.pca_rgb(fm)
    assert a.shape == (fm.height, fm.width, 3) and a.dtype == np.uint8
    assert a is ins.pca_rgb(fm)  # computed once per feature map
    fresh = FeatureMap(fm.feat.clone())
    assert np.array_equal(ins.pca_rgb(fresh), a)
    assert a.std() > 10  # it shows structure, not a flat colour
    assert not a.flags.writeable


def test_pca_sign_convention_survives_a_sign_flip(tiny: tuple[Engine, FeatureMap]) -> None:
    """Negating every channel flips every component; the convention flips it back: same picture."""
    _, fm = tiny
    basis = ins.pca_basis(fm)
    flipped = ins.pca_basis(FeatureMap(-fm.feat))
    np.testing.assert_allclose(flipped.components, basis.components, atol=1e-9)
    for comp in basis.components:
        assert comp[np.argmax(np.abs(comp))] > 0
    assert np.all(np.diff(basis.explained) <= 0) and basis.explained.sum() <= 1 + 1e-9


def test_pca_subsamples_a_large_map() -> None:
    """A map bigger than the sample budget still gives a full-size image (covariance from a subgrid)."""
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(5, 300, 260, generator=g)
    assert ins._sample_stride(300, 260) > 1
    a = ins.pca_rgb(FeatureMap(feat))
    assert a.shape == (300, 260, 3)


def test_channel_image(tiny: tuple[Engine, FeatureMap]) -> None:
    _, fm = tiny
    img = ins.channel_image(fm, 3)
    assert img.shape == (fm.height, fm.width, 3) and img.dtype == np.uint8
    zero = ins.channel_image(FeatureMap(torch.zeros(2, 4, 5)), 1)
    assert np.all(zero == ins.colormap(np.array(0.5), ins.DIVERGING))  # zero is the neutral middle
    with pytest.raises(ArgumentError):
        ins.channel_image(fm, 8)


def test_difference_heatmap() -> None:
    a = np.zeros((4, 6, 3), dtype=np.uint8)
    b = a.copy()
    b[1, 2] = 255
    b[3, 5] = 10
    heat = ins.difference_heatmap(a, b)
    assert heat.shape == (4, 6, 4) and heat.dtype == np.uint8
    assert heat[0, 0, 3] == 0  # no difference: transparent
    assert heat[1, 2, 3] == 255 and tuple(heat[1, 2, :3]) == ins.INFERNO[-1][1]
    assert 0 < heat[3, 5, 3] < 255
    mag = ins.difference_magnitude(a.astype(np.float32) / 255, b)
    assert mag[1, 2] == pytest.approx(1.0) and mag[0, 0] == 0
    with pytest.raises(ArgumentError):
        ins.difference_heatmap(a, b[:3])


def test_colormap_endpoints_and_monotone_brightness() -> None:
    t = np.linspace(0, 1, 50)
    rgb = ins.colormap(t).astype(int)
    assert tuple(rgb[0]) == ins.INFERNO[0][1] and tuple(rgb[-1]) == ins.INFERNO[-1][1]
    assert np.all(np.diff(rgb.sum(axis=1)) >= 0)
    assert tuple(ins.colormap(np.array([-3.0]))[0]) == ins.INFERNO[0][1]  # clipped


def test_lattice_lines() -> None:
    lat = ins.lattice_lines(SourceRect(2.5, 3.25, 10, 8), 100, 80)
    assert lat.spacing == (10.0, 10.0)
    np.testing.assert_allclose(lat.xs, np.arange(5, 100, 10))
    np.testing.assert_allclose(lat.ys, np.arange(7.5, 80, 10))
    assert lat.first_col == 2 and lat.first_row == 3
    np.testing.assert_allclose(lat.centre_xs, np.arange(0, 101, 10))
    np.testing.assert_allclose(lat.centre_ys, np.arange(2.5, 80, 10))
    # Below 8 output px per source px: nothing.
    assert ins.lattice_lines(SourceRect(0, 0, 10, 10), 79, 200).empty
    assert not ins.lattice_lines(SourceRect(0, 0, 10, 10), 80, 80).empty
    # Bounded by the photo: no lines or centres beyond its edges.
    lat = ins.lattice_lines(SourceRect(-2, -1, 6, 4), 60, 40, bounds=(3, 2))
    np.testing.assert_allclose(lat.xs, [20, 30, 40, 50])
    np.testing.assert_allclose(lat.centre_xs, [25, 35, 45])
    np.testing.assert_allclose(lat.centre_ys, [15, 25])
    assert (lat.first_col, lat.first_row) == (0, 0)
    assert ins.lattice_lines(SourceRect(5, 5, 2, 2), 40, 40, bounds=(3, 3)).empty


def test_extrapolated_beyond_x4() -> None:
    assert not ins.extrapolated(4.0)
    assert ins.extrapolated(4.01)


def test_a_box_of_the_feature_image_is_the_whole_image_cropped(tiny: tuple[Engine, FeatureMap]) -> None:
    """For a photo under `FEATURE_WHOLE_MP` the box uses the whole photo's PCA and colour range."""
    _, fm = tiny
    box = (5, 3, 29, 17)
    whole = ins.pca_rgb(fm)
    assert np.array_equal(ins.pca_rgb(fm, box), whole[3:17, 5:29])
    assert np.array_equal(ins.channel_image(fm, 2, box), ins.channel_image(fm, 2)[3:17, 5:29])
    with pytest.raises(ArgumentError, match="not inside"):
        ins.pca_rgb(fm, (0, 0, fm.width + 1, 4))


def test_a_big_photo_feature_image_encodes_the_sample_and_its_box_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over `FEATURE_WHOLE_MP` (lowered here), the PCA comes from blocks spread over the photo, and a box's
    image encodes the box's tiles and those blocks', not the whole lazily encoded photo; the PCA does not
    depend on the box, and a cancelled request stops."""
    from viewer.engine.cancel import CancelToken
    from viewer.errors import Cancelled

    monkeypatch.setattr(ins, "FEATURE_WHOLE_MP", 0.01)
    monkeypatch.setattr(ins, "PCA_SAMPLE", 4096)  # 4 x 4 blocks of 16 x 16 latents
    engine = Engine(make_liif(n_resblocks=1, n_feats=8, hidden=(16,), seed=0), "cpu", "fp32")
    img = np.random.default_rng(1).random((960, 1280, 3), dtype=np.float32)
    store = engine.open_store(img)
    assert ins.is_big(store)
    box = (200, 120, 264, 184)
    a = ins.pca_rgb(store, box)
    assert a.shape == (64, 64, 3) and a.std() > 5
    encoded = store.encoded_fraction((0, store.height, 0, store.width))
    assert 0 < encoded < 0.3  # the sample blocks and the box, not the photo
    again = ins.pca_rgb(store, (0, 0, 64, 64))  # another box: the same PCA, so the same colours
    full = ins._pca_image(store, ins.pca_basis(store), ins.whole_box(store), None)
    assert np.array_equal(again, full[:64, :64]) and np.array_equal(a, full[120:184, 200:264])
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        ins.channel_image(engine.open_store(img), 1, box, token)
