"""The fast query against an independent, plain implementation of the paper's formulas.

`paper_query` below is written from the paper (arXiv 2012.09161, eqs. 2-6) and the reference code's
conventions, one query at a time, with explicit loops: no shared code with viewer.liif.query.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, cast

import numpy as np
import pytest
import torch

from viewer.engine.cancel import CancelToken
from viewer.engine.render import Engine, SourceRect, pixel_grid
from viewer.errors import ArgumentError, Cancelled
from viewer.liif.liif import make_liif


def paper_query(model, feat: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """I(x_q) = sum_t S_t/S * f(z*_t, x_q - v*_t, cell), one query at a time (float64)."""
    feat = feat.double()
    c, h, w = feat.shape
    padded = torch.nn.functional.pad(feat, (1, 1, 1, 1))

    def latent(i: int, j: int) -> torch.Tensor:
        if model.feat_unfold:  # 3x3 neighbourhood, channel-major, zero outside the image
            return padded[:, i : i + 3, j : j + 3].reshape(c * 9)
        return feat[:, i, j]

    def centre(k: int, n: int) -> float:
        return -1 + (2 * k + 1) / n

    def nearest(x: float, n: int) -> int:
        x = min(max(x, -1 + 1e-6), 1 - 1e-6)
        return min(n - 1, max(0, int(np.floor((x + 1) / 2 * n))))

    imnet = model.imnet.double()
    out = []
    for q in range(coord.shape[0]):
        y, x = float(coord[q, 0]), float(coord[q, 1])
        if model.local_ensemble:
            shifts = [(-1, -1), (-1, 1), (1, -1), (1, 1)]
            eps = 1e-6
        else:
            shifts, eps = [(0, 0)], 0.0
        preds, areas = [], []
        for sy, sx in shifts:
            i = nearest(y + sy / h + eps, h)
            j = nearest(x + sx / w + eps, w)
            rel = torch.tensor([(y - centre(i, h)) * h, (x - centre(j, w)) * w], dtype=torch.float64)
            parts = [latent(i, j), rel]
            if model.cell_decode:
                parts.append(
                    torch.tensor([float(cell[q, 0]) * h, float(cell[q, 1]) * w], dtype=torch.float64)
                )
            preds.append(imnet(torch.cat(parts)[None])[0])
            areas.append(abs(float(rel[0] * rel[1])) + 1e-9)
        total = sum(areas)
        if model.local_ensemble:
            areas = areas[::-1]  # the area of the diagonally opposite neighbour weights each prediction
        out.append(sum(p * (a / total) for p, a in zip(preds, areas, strict=True)))
    model.imnet.float()
    return torch.stack(out).float()


FLAGS = [
    dict(zip(("local_ensemble", "feat_unfold", "cell_decode"), v, strict=True))
    for v in itertools.product([True, False], repeat=3)
]


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(k for k, v in f.items() if v) or "none")
@pytest.mark.parametrize(
    "hyper",
    [(0, 0, 0), (20, 0, 0), (20, 2, 0), (20, 0, 2), (20, 0, 5)],
    ids=["mlp", "lm-mlp", "lm-mlp-blocks", "lm-mlp-coord", "lm-mlp-coord-quadratic"],
)
def test_fast_fp32_matches_paper_formulation(flags: dict[str, Any], hyper: tuple[int, int, int]) -> None:
    """The engine's query (for a latent-modulated decoder: its cached shifts, hypernetwork blocks and
    coordinate weights included) computes what the decoder computes on the paper's input, one query at a
    time."""
    model = make_liif(
        n_resblocks=1,
        n_feats=6,
        hidden=(24, 16),
        hyper_hidden=hyper[0],
        hyper_blocks=hyper[1],
        coord_weights=hyper[2] > 0,
        coord_quadratic=hyper[2] == 5,
        seed=3,
        **flags,
    )
    engine = Engine(model, "cpu", "fp32", chunk=97)
    img = np.random.default_rng(1).random((9, 13, 3), dtype=np.float32)
    fm = engine.encode(img)
    gen = torch.Generator().manual_seed(2)
    coord = torch.rand(300, 2, generator=gen) * 2.2 - 1.1  # includes points outside [-1, 1]
    cell = torch.rand(300, 2, generator=gen) * 0.5
    fast = engine.query(fm, coord, cell)
    slow = paper_query(model, fm.feat, coord, cell)
    assert torch.isfinite(fast).all()
    assert (fast - slow).abs().max().item() < 1e-4


def test_tile_equals_crop_of_whole_render() -> None:
    model = make_liif(n_resblocks=2, n_feats=8, hidden=(64, 64), seed=5)
    engine = Engine(model, "cpu", "fp32", chunk=1000)
    img = np.random.default_rng(0).random((40, 50, 3), dtype=np.float32)
    fm = engine.encode(img)
    rect = SourceRect(3.25, 5.5, 31.0, 22.75)
    whole = engine.render(fm, rect, 173, 121)
    for window in [(0, 0, 64, 64), (64, 64, 121, 173), (13, 101, 77, 160), (120, 0, 121, 173)]:
        r0, c0, r1, c1 = window
        tile = engine.render(fm, rect, 173, 121, window=window)
        assert np.array_equal(tile, whole[r0:r1, c0:c1]), window


def test_tiled_encoder_equals_untiled() -> None:
    model = make_liif(n_resblocks=3, n_feats=8, hidden=(16,), seed=1)
    engine = Engine(model, "cpu", "fp32", encode_budget_bytes=90_000)
    tile = engine.encode_tile_size()
    img = np.random.default_rng(4).random((150, 170, 3), dtype=np.float32)
    assert tile < 150, "the budget must force several tiles for this test to mean anything"
    tiled = engine.encode(img).feat
    with torch.no_grad():
        whole = model.encode((torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5)[0]
    assert torch.allclose(tiled, whole, atol=1e-5, rtol=1e-5)


def test_a_side_that_fits_the_budget_is_encoded_whole() -> None:
    """Only an axis longer than the budget's crop edge is cut: fewer, larger crops, the same features."""
    model = make_liif(n_resblocks=3, n_feats=8, hidden=(16,), seed=1)
    engine = Engine(model, "cpu", "fp32", encode_budget_bytes=100 * 100 * 4 * 8 * 4)
    halo = model.receptive_radius
    tile = engine.encode_tile_size()
    assert tile == 100 - 2 * halo and tile < 90, "a 90-pixel side must be cut under the old rule"
    img = np.random.default_rng(5).random((90, 230, 3), dtype=np.float32)
    assert engine.encode_tiles(90, 230) == (90, tile)
    assert engine.encode_tiles(100, 100) == (100, 100)
    assert engine.encode_tiles(101, 40) == (tile, 40)
    calls: list[tuple[int, int]] = []
    tiled = engine.encode(img, progress=lambda n, total: calls.append((n, total))).feat
    assert calls[-1] == (-(-230 // tile), -(-230 // tile))
    with torch.no_grad():
        whole = model.encode((torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5)[0]
    assert torch.allclose(tiled, whole, atol=1e-5, rtol=1e-5)


def test_tiled_encoder_halo_is_needed() -> None:
    """With too small a halo the tiles disagree: proves the test above exercises the seams."""
    model = make_liif(n_resblocks=3, n_feats=8, hidden=(16,), seed=1)
    engine = Engine(model, "cpu", "fp32", encode_budget_bytes=90_000)
    img = np.random.default_rng(4).random((150, 170, 3), dtype=np.float32)
    cast(Any, model.encoder).receptive_radius = 1
    broken = engine.encode(img).feat
    cast(Any, model.encoder).receptive_radius = 8
    with torch.no_grad():
        whole = model.encode((torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5)[0]
    assert not torch.allclose(broken, whole, atol=1e-5, rtol=1e-5)


def test_render_whole_image_matches_reference_grid() -> None:
    """render() of the full image uses the reference's pixel-centre coordinates and cell (2/H, 2/W)."""
    from viewer.liif.reference import batched_predict, make_coord

    model = make_liif(n_resblocks=1, n_feats=8, hidden=(32,), seed=7)
    engine = Engine(model, "cpu", "fp32")
    img = np.random.default_rng(2).random((11, 14, 3), dtype=np.float32)
    out = engine.render_scale(engine.encode(img), 37, 29)
    coord = make_coord((29, 37), torch.device("cpu")).view(1, -1, 2)
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / 29
    cell[..., 1] *= 2 / 37
    inp = (torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5
    ref = (batched_predict(model, inp, coord, cell, bsize=300) * 0.5 + 0.5).clamp(0, 1).view(29, 37, 3)
    assert np.abs(out - ref.numpy()).max() < 1e-5


def test_no_shared_state_between_feature_maps() -> None:
    """Two photos rendered concurrently from two threads give what each gives alone."""
    model = make_liif(n_resblocks=1, n_feats=8, hidden=(32,), seed=9)
    engine = Engine(model, "cpu", "fp32", chunk=50)
    rng = np.random.default_rng(3)
    imgs = [rng.random((12, 15, 3), dtype=np.float32), rng.random((20, 9, 3), dtype=np.float32)]
    fms = [engine.encode(i) for i in imgs]
    alone = [engine.render_scale(fm, 40, 33) for fm in fms]
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}

    def work(k: int) -> None:
        for _ in range(3):
            results[k].append(engine.render_scale(fms[k], 40, 33))

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in (0, 1):
        assert all(np.array_equal(r, alone[k]) for r in results[k])
    assert not np.array_equal(alone[0], alone[1])


def _render_cancelled_after_two_bands(
    threads: int | None, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[int, int]]:
    """Progress reports of a 50 x 50 render in 25 bands that cancels itself once two are done, with
    `threads` decode threads (None: as the engine picks); the render must raise Cancelled."""
    import viewer.engine.render as render_module

    if threads is not None:
        monkeypatch.setattr(render_module, "_decode_threads", lambda device: threads)
    engine = Engine(make_liif(seed=0), "cpu", "fp32", chunk=100)
    fm = engine.encode(np.zeros((8, 8, 3), np.float32))
    token = CancelToken()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.render_scale(fm, 50, 50, cancel=token, progress=progress)
    return seen


def test_cancel_between_chunks_and_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """One decode thread: every band is reported, and a cancel stops the render before the next band."""
    assert _render_cancelled_after_two_bands(1, monkeypatch) == [(1, 25), (2, 25)]


def test_cancel_stops_a_render_decoded_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several decode threads (`viewer.engine.render._render_parts`): progress may skip counts the other
    parts made, but it never goes back, and a cancel stops every part well before the end."""
    seen = _render_cancelled_after_two_bands(None, monkeypatch)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] < 25
    assert {t for _, t in seen} == {25}


def test_bad_render_arguments() -> None:
    engine = Engine(make_liif(), "cpu", "fp32")
    fm = engine.encode(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ArgumentError):
        SourceRect(0, 0, 0, 5)
    with pytest.raises(ArgumentError):
        SourceRect(0, 0, float("nan"), 5)
    with pytest.raises(ArgumentError):
        engine.render(fm, SourceRect(0, 0, 8, 8), 10, 10, window=(0, 0, 11, 10))


@pytest.mark.parametrize("hyper", [0, 20], ids=["mlp", "lm-mlp"])
def test_bf16_path_is_close(hyper: int) -> None:
    model = make_liif(n_resblocks=1, n_feats=8, hidden=(64, 64), hyper_hidden=hyper, seed=4)
    img = np.random.default_rng(5).random((16, 16, 3), dtype=np.float32)
    exact = Engine(model, "cpu", "fp32")
    fast = Engine(model, "cpu", "bf16")
    a = exact.render_scale(exact.encode(img), 48, 48)
    b = fast.render_scale(fast.encode(img), 48, 48)
    assert 0 < np.abs(a - b).max() < 0.05


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(k for k, v in f.items() if v) or "none")
@pytest.mark.parametrize(
    "hyper",
    [0, 20, -20, -21, -22],
    ids=["mlp", "lm-mlp", "lm-mlp-coord", "lm-mlp-coord-table", "lm-mlp-quadratic-table"],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_rendered_grid_equals_the_per_query_path(flags: dict[str, Any], hyper: int, precision: str) -> None:
    """`render` queries its grid by rows and columns (`GridQuery`); every pixel is what `query` gives for
    its centre and cell, with the same arithmetic (equal in fp32 and bf16 up to float rounding). A negative
    `hyper` is a latent-modulated decoder with coordinate weights; with equal widths (-21, and -22 with
    second-order terms) the render reads them from the folded table (`run_bag`), whose bf16 sums round
    differently from `query`'s."""
    model = make_liif(
        n_resblocks=1,
        n_feats=6,
        hidden=(12, 12) if hyper < -20 else (12, 10),
        hyper_hidden=abs(hyper),
        coord_weights=hyper < 0,
        coord_quadratic=hyper == -22,
        seed=3,
        **flags,
    )
    engine = Engine(model, "cpu", precision, chunk=97)
    assert (engine.decoder.bag_layout is not None) == (hyper < -20)
    img = np.random.default_rng(1).random((19, 23, 3), dtype=np.float32)
    atol = 1e-2 if hyper < -20 and precision == "bf16" else 1e-6
    _assert_render_is_per_query(engine, img, SourceRect(-1.3, 2.2, 25.0, 14.5), 61, 37, atol)


def _assert_render_is_per_query(
    engine: Engine, img: np.ndarray, rect: SourceRect, out_w: int, out_h: int, atol: float = 1e-6
) -> None:
    """`engine.render` of `rect` at out_w x out_h gives every pixel what `query` gives for its centre and
    cell (the output varies, so equality means something), within `atol`."""
    fm = engine.encode(img)
    got = engine.render(fm, rect, out_w, out_h)
    rows, cols, cell = pixel_grid(rect, out_w, out_h, img.shape[0], img.shape[1], (0, 0, out_h, out_w))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    coord = torch.from_numpy(np.stack([rr.ravel(), cc.ravel()], 1))
    want = (engine.query(fm, coord, torch.from_numpy(cell)) * 0.5 + 0.5).clamp(0, 1).numpy()
    assert float(np.ptp(want)) > 0.05
    np.testing.assert_allclose(got.reshape(-1, 3), want, rtol=0, atol=atol)


@pytest.mark.parametrize("hyper", [0, 20, -2, -5], ids=["mlp", "lm-mlp", "lm-coord", "lm-quadratic"])
def test_a_grid_query_reused_across_bands_equals_the_per_query_path(hyper: int) -> None:
    """One `GridQuery` serves a whole render: bands of 3 rows and a last one of 2 (its column buffers are
    made again), over a photo taller than a projection block (its box is assembled again as bands move
    down, and the column parts of coordinate weights, negative `hyper`, are kept and dropped), still give
    every pixel what `query` gives (bf16: within its rounding where the sums are split)."""
    model = make_liif(
        n_resblocks=1,
        n_feats=6,
        hidden=(12, 12) if hyper < 0 else (12, 10),
        hyper_hidden=abs(hyper) if hyper > 0 else 16,
        coord_weights=hyper < 0,
        coord_quadratic=hyper == -5,
        seed=5,
    )
    engine = Engine(model, "cpu", "bf16", chunk=350)
    assert (engine.decoder.bag_layout is not None) == (hyper < 0)
    img = np.random.default_rng(2).random((70, 45, 3), dtype=np.float32)
    # 350 // 103 = 3 rows a band; 161 = 53 * 3 + 2
    atol = 1e-2 if hyper < 0 else 1e-6
    _assert_render_is_per_query(engine, img, SourceRect(0.0, 0.0, 45.0, 70.0), 103, 161, atol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_relu_in_place_matches_torch_relu(dtype: torch.dtype) -> None:
    """The query's ReLU (an int16 clamp for bf16 on a CPU) gives torch.relu's values, on contiguous and
    strided tensors, zeros of both signs and infinities included, and writes in place."""
    from viewer.liif.query import relu_

    g = torch.Generator().manual_seed(7)
    x = (torch.randn(301, 96, generator=g) * 10).to(dtype)
    x[0, :6] = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-30, -1e-30]).to(dtype)
    want = torch.relu(x)
    strided = x.clone()
    relu_(strided[:, 48:])  # a column slice: not contiguous
    assert torch.equal(strided[:, 48:], want[:, 48:])
    assert torch.equal(strided[:, :48], x[:, :48])  # the rest untouched
    got = x.clone()
    assert relu_(got) is got
    assert torch.equal(got, want)
