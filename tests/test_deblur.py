"""The deblur model (liif-deblur): the MSSNet pre-pass, its tiling, its spec, the blur-v1 recipe, its
training recipe and `eval --blurred`. Random weights, small sizes, CPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from torch import nn

from viewer.engine import degrade
from viewer.errors import CheckpointError
from viewer.liif.checkpoint import check_spec, load_model, save_safetensors
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.models import CleanedEncoder
from viewer.liif.mssnet import BlurGate, DeblurredEncoder, MSSNet
from viewer.train import trainer
from viewer.train.options import TrainConfig

TINY = {"wf": 4, "scale": 4, "vscale": 4, "stages": [1, 2], "levels": 2, "blocks": 1}


def _tiny_net(seed: int = 0, **kw: object) -> MSSNet:
    """A tiny MSSNet with every weight random (its tail too, so it is not the identity)."""
    torch.manual_seed(seed)
    net = MSSNet(**{**TINY, **kw})  # type: ignore[arg-type]
    with torch.no_grad():
        net.tail.weight.normal_(0.0, 0.3)
    return net.eval()


def _tiny_liif(seed: int = 0, **kw: object) -> LIIF:
    base = make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=seed)
    enc = {"name": "deblurred", "args": {"encoder_spec": base.spec["args"]["encoder_spec"], **TINY, **kw}}
    model = LIIF(enc, base.spec["args"]["imnet_spec"])
    model.imnet.load_state_dict(base.imnet.state_dict())
    assert isinstance(model.encoder, DeblurredEncoder)
    model.encoder.inner.load_state_dict(base.encoder.state_dict())
    with torch.no_grad():
        model.encoder.deblur.tail.weight.normal_(0.0, 0.3)
    return model.eval()


def test_an_untrained_network_is_the_identity_on_any_size() -> None:
    torch.manual_seed(0)
    net = MSSNet(**TINY).eval()  # type: ignore[arg-type]
    x = torch.randn(1, 3, 37, 53)
    with torch.no_grad():
        assert torch.equal(net(x), x)


@pytest.mark.parametrize("size", [(1, 1), (5, 9), (16, 16), (37, 53)])
def test_any_size_comes_back_at_its_size(size: tuple[int, int]) -> None:
    net = _tiny_net()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)


def test_the_declared_radius_bounds_the_real_one() -> None:
    """A pixel just beyond the declared radius changes nothing at the centre; the real reach, found by
    the gradient, is within it (and not trivially small)."""
    net = _tiny_net(seed=3)
    r = net.receptive_radius
    side = 2 * r + 2 * net.multiple + 1
    c = r + net.multiple
    x = torch.randn(1, 3, side, side, requires_grad=True)
    net(x)[0, :, c, c].sum().backward()
    assert x.grad is not None
    ys, xs = torch.nonzero(x.grad.abs().sum(dim=(0, 1)) > 0, as_tuple=True)
    reach = int(max((ys - c).abs().max(), (xs - c).abs().max()))
    assert net.multiple < reach <= r
    with torch.no_grad():
        base = net(x.detach())[0, :, c, c]
        far = x.detach().clone()
        far[..., c - r - 1, :] += 5.0
        far[..., :, c + r + 1] -= 5.0
        assert torch.equal(net(far)[0, :, c, c], base)


def test_crops_on_the_grid_with_the_halo_equal_the_whole() -> None:
    net = _tiny_net(seed=1)
    m, halo = net.multiple, net.receptive_radius
    x = torch.randn(1, 3, 2 * halo + 43, halo + 29)
    with torch.no_grad():
        whole = net(x)
        h, w = x.shape[-2:]
        for y0 in (0, 3 * m, halo // m * m, h // m * m):
            for x0 in (0, 2 * m, w // m * m):
                y1, x1 = min(h, y0 + 5 * m), min(w, x0 + 3 * m)
                cy0, cx0 = max(0, y0 - halo), max(0, x0 - halo)
                part = net(x[..., cy0 : min(h, y1 + halo), cx0 : min(w, x1 + halo)])
                got = part[..., y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
                assert torch.allclose(got, whole[..., y0:y1, x0:x1], atol=1e-5), (y0, x0)


def test_gated_crops_on_the_grid_with_the_halo_equal_the_whole() -> None:
    """The blur gate is shift-equivariant too: with it, crops with the declared halo still equal the whole."""
    net = _tiny_net(seed=1, halo=8, gate_lo=0.3, gate_hi=0.45)
    assert net.receptive_radius == BlurGate.RADIUS  # the gate reaches further than the declared 8
    m, halo = net.multiple, net.receptive_radius
    x = torch.randn(1, 3, 90, 70)
    with torch.no_grad():
        whole = net(x)
        for y0, x0 in ((0, 0), (3 * m, 2 * m), (8 * m, 4 * m)):
            y1, x1 = min(90, y0 + 5 * m), min(70, x0 + 3 * m)
            cy0, cx0 = max(0, y0 - halo), max(0, x0 - halo)
            part = net(x[..., cy0 : min(90, y1 + halo), cx0 : min(70, x1 + halo)])
            got = part[..., y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
            assert torch.allclose(got, whole[..., y0:y1, x0:x1], atol=1e-5), (y0, x0)


def _edges(side: int = 96) -> torch.Tensor:
    """A normalised test card of hard-edged squares and stripes: sharp everywhere it is not flat."""
    y, x = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    card = ((x // 6 + y // 10) % 2).float() * 0.8 + ((x // 17) % 2).float() * 0.2
    return (card * 2 - 1).expand(1, 3, side, side).contiguous()


def test_the_blur_gate_leaves_sharp_regions_alone_and_opens_on_blurred_ones() -> None:
    gate = BlurGate(0.30, 0.45)
    sharp = _edges()
    blurred = torch.from_numpy(
        degrade.convolve(((sharp[0].permute(1, 2, 0) + 1) / 2).numpy(), degrade.disc_kernel(2.0))
    )
    blurred = (blurred.permute(2, 0, 1)[None] * 2 - 1).contiguous()
    with torch.no_grad():
        g_sharp, g_blur = gate(sharp), gate(blurred)
    assert g_sharp.shape == (1, 1, 96, 96)
    assert float(g_sharp.max()) == 0.0  # hard edges: the residual is not applied at all
    assert float(g_blur[..., 16:-16, 16:-16].min()) == 1.0  # a 2-pixel defocus: fully applied
    flat = torch.zeros(1, 3, 40, 40)
    assert float(gate(flat).max()) == 0.0  # no detail: nothing to deblur, left alone
    # the gated network is the identity where the gate is closed
    net = _tiny_net(seed=3, gate_lo=0.30, gate_hi=0.45)
    with torch.no_grad():
        assert torch.equal(net(sharp), sharp)
        assert (net(blurred) - blurred).abs().max() > 1e-3
    with pytest.raises(ValueError, match="gate"):
        MSSNet(**TINY, gate_lo=0.5, gate_hi=0.4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="both"):
        MSSNet(**TINY, gate_lo=0.5)  # type: ignore[arg-type]


def _shaken(side: int, angle: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A block texture with hard edges, normalised (1, 3, side, side), sharp and through a 6-pixel motion
    blur at `angle` degrees."""
    rng = np.random.default_rng(seed)
    cells = rng.random((side // 4 + 1, side // 4 + 1, 1)).astype(np.float32)
    sharp = np.ascontiguousarray(cells.repeat(4, 0).repeat(4, 1)[:side, :side].repeat(3, 2))
    shaken = degrade.convolve(sharp, degrade.motion_kernel(6, angle))
    return tuple(torch.from_numpy(v).permute(2, 0, 1)[None] * 2 - 1 for v in (sharp, shaken))  # type: ignore[return-value]


def test_the_training_blur_tells_its_kind_without_changing_its_draws() -> None:
    """`random_blur_kind` (the gates' calibration scripts) is `random_blur` (training) with the kind of
    kernel it drew: the same image from the same seed, and the generator left in the same state."""
    img = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    kinds = set()
    for seed in range(12):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        out, kind = degrade.random_blur_kind(img, a)
        assert np.array_equal(out, degrade.random_blur(img, b))
        assert a.random() == b.random()
        kinds.add(kind)
    assert kinds == set(degrade.BLUR_KINDS)


def test_the_directional_gate_opens_on_motion_blur_that_the_isotropic_one_reads_as_sharp() -> None:
    """A region shaken along one direction keeps the gradient across the smear sharp, so the isotropic
    share leaves much of it closed; the directional share sees the smear. Sharp regions stay closed."""
    iso, both = BlurGate(0.30, 0.45), BlurGate(0.30, 0.45, directional=0.12)
    inner = (slice(None), slice(None), slice(20, -20), slice(20, -20))
    for angle in (0.0, 90.0, 30.0):
        for seed in range(2):
            sharp, shaken = _shaken(112, angle, seed)
            with torch.no_grad():
                assert float(both(sharp).max()) == 0.0  # still closed on hard edges
                if angle in (0.0, 90.0):  # along the blocks' edges: the edges across it stay sharp
                    assert float(iso(shaken)[inner].mean()) < 0.2  # the isotropic share alone: closed
                assert float(both(shaken)[inner].min()) == 1.0  # fully open with the directional share
    # stride-1 operations only: a crop with the gate's reach around it measures what the whole does
    x = torch.randn(1, 3, 80, 90)
    with torch.no_grad():
        whole = both(x)
        r = BlurGate.RADIUS
        part = both(x[..., 30 - r : 50 + r, 40 - r : 60 + r])
    assert torch.allclose(part[..., r:-r, r:-r], whole[..., 30:50, 40:60], atol=1e-6)
    # measured in float32 under the encoder's bf16 autocast too, as its thresholds were set
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(both(x), whole) and torch.equal(iso(x), BlurGate(0.30, 0.45)(x.float()))
    net = _tiny_net(seed=3, halo=8, gate_lo=0.30, gate_hi=0.45, gate_directional=0.12)
    assert isinstance(net.gate, BlurGate) and net.gate.directional == 0.12
    assert net.receptive_radius == BlurGate.RADIUS


def test_a_halo_smaller_than_the_reach_breaks_tiling() -> None:
    """The equality above depends on the halo: with one of `multiple` pixels, crops differ from the whole."""
    net = _tiny_net(seed=1)
    halo = net.multiple
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        whole = net(x)
        part = net(x[..., 32 - halo : 48 + halo, 32 - halo : 48 + halo])
    assert (part[..., halo:-halo, halo:-halo] - whole[..., 32:48, 32:48]).abs().max() > 1e-3


def test_engine_tiles_equal_the_whole_render(tmp_path: Path) -> None:
    """The viewer's lazy store (tiles on a grid of 16, halo as declared) renders what a whole encode does,
    within 2/255 everywhere, seams included (in fact to float tolerance)."""
    from viewer.engine.render import Engine

    model = _tiny_liif(seed=2)
    assert isinstance(model.encoder, DeblurredEncoder)
    assert model.receptive_radius == 108  # the bound 104 + 4, on the grid of 4
    assert _tiny_liif(seed=2, halo=10).receptive_radius == 16  # 10 + 4, rounded up to the grid
    engine = Engine(model, "cpu", "fp32")
    rng = np.random.default_rng(0)
    photo = (rng.random((150, 170, 3)) * 255).astype(np.uint8)
    whole = engine.render_scale(engine.encode(photo), 340, 300)
    side = 16 + 2 * model.receptive_radius  # an encode budget that takes one 16-pixel tile at a time
    small = Engine(model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 8 * 4)
    store = small.open_store(photo, tile=16, dtype=torch.float32)
    tiled = small.render_scale(store, 340, 300)
    assert store.encoded > 50  # encoded tile by tile
    assert np.abs(tiled - whole).max() < 1e-4
    assert np.abs(tiled - whole).max() < 2 / 255


def test_the_spec_round_trips_and_is_checked(tmp_path: Path) -> None:
    model = _tiny_liif(seed=4, halo=8)
    assert isinstance(model.encoder, DeblurredEncoder)
    assert model.encoder.deblur.receptive_radius == 8
    path = tmp_path / "d.safetensors"
    save_safetensors(model, path)
    again = load_model(path)
    assert again.spec == model.spec
    x = torch.randn(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(again.encode(x), model.encode(x))
    for bad, why in (
        ({"wf": 0}, "wf = 0"),
        ({"stages": [1, 99]}, "stages"),
        ({"halo": -3}, "halo"),
        ({"depth": 2}, "unknown arguments"),
        ({"wf": True}, "whole number"),
        ({"gate_lo": 0.5, "gate_hi": 0.4}, "blur gate"),
        ({"gate_lo": 0.3}, "finite number"),
        ({"gate_lo": "0.3", "gate_hi": 0.4}, "finite number"),
    ):
        spec = model.spec
        args = {**spec["args"]["encoder_spec"]["args"], **bad}
        crafted = {**spec, "args": {**spec["args"], "encoder_spec": {"name": "deblurred", "args": args}}}
        with pytest.raises(CheckpointError, match=why):
            check_spec(crafted)


def test_blur_kernels_are_normalised_and_shaped() -> None:
    for k in (degrade.motion_kernel(6.0, 30.0), degrade.disc_kernel(2.0), degrade.gaussian_kernel(1.3)):
        assert k.shape[0] % 2 == 1 and k.shape[0] == k.shape[1]
        assert abs(k.sum() - 1.0) < 1e-9 and k.min() >= 0
    flat = degrade.motion_kernel(6.0, 0.0)
    assert np.count_nonzero(flat.sum(axis=1)) == 1  # a horizontal shake moves along one row only
    assert np.count_nonzero(degrade.motion_kernel(6.0, 90.0).sum(axis=0)) == 1


def _texture(side: int = 48) -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.random((side, side, 3)).astype(np.float32)


def _detail(img: np.ndarray) -> float:
    return float(np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())


def test_horizontal_motion_blurs_along_rows_only() -> None:
    img = _texture()
    out = degrade.convolve(img, degrade.motion_kernel(7.0, 0.0))
    assert np.abs(np.diff(out, axis=1)).mean() < 0.4 * np.abs(np.diff(img, axis=1)).mean()
    assert np.allclose(out[:, 4:-4].mean(axis=1), img[:, 4:-4].mean(axis=1), atol=0.05)


def test_the_benchmark_blur_is_fixed_per_image_and_the_training_blur_varies() -> None:
    img = _texture()
    a, b = degrade.benchmark_blur(img, 4), degrade.benchmark_blur(img, 4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, degrade.benchmark_blur(img, 5))
    assert _detail(a) < 0.6 * _detail(img)
    rng = np.random.default_rng(0)
    outs = [degrade.random_blur(img, rng) for _ in range(6)]
    assert all(_detail(o) < _detail(img) for o in outs)
    assert len({round(_detail(o), 4) for o in outs}) == 6
    assert "blur-v1" in degrade.BLUR_RECIPE


def test_deblur_training_lowers_the_loss_keeps_the_teacher_and_exports(
    tmp_path: Path, disc_photos: list[np.ndarray]
) -> None:
    teacher = make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=1)
    teacher_path = tmp_path / "teacher.safetensors"
    save_safetensors(teacher, teacher_path)
    cfg = TrainConfig(
        recipe="deblur",
        name="tiny-deblur",
        steps=25,
        batch=4,
        crop=32,
        lr=3e-3,
        loss="l2",
        degrade_p=1.0,
        teacher=str(teacher_path),
        deblur_net=[4, 4, 4, 1, 1],
        deblur_halo=16,
        log_every=1000,
        save_every=1000,
    )
    model, losses = trainer.train(cfg, tmp_path / "w", images=disc_photos, log=lambda m: None)
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:3]), losses
    state = model.state_dict()
    kept = {f"encoder.inner.{k}": v for k, v in teacher.encoder.state_dict().items()}
    kept.update({f"imnet.{k}": v for k, v in teacher.imnet.state_dict().items()})
    assert all(torch.equal(state[k], v) for k, v in kept.items())
    out = tmp_path / "d.safetensors"
    trainer.export(model, cfg, out, display="Deblur + upscale")
    from viewer.liif.checkpoint import read_metadata

    meta = read_metadata(out)
    assert "MSSNet deblur network (stages 1-1" in meta["architecture"]
    again = load_model(out)
    assert again.receptive_radius == 24  # 16 + 4, rounded up to the grid of 8
    assert again.spec["args"]["encoder_spec"]["name"] == "deblurred"


def test_eval_blurred_lowers_bicubic_psnr(benchmark_root: Path) -> None:
    from viewer.engine.evaluate import evaluate

    sharp = evaluate(None, "Set5", 2, root=benchmark_root)
    blurred = evaluate(None, "Set5", 2, root=benchmark_root, blurred=True)
    assert blurred < sharp - 2.0


def test_the_engine_cuts_its_encode_pieces_on_the_deblur_grid() -> None:
    """A photo larger than the encode budget is encoded in pieces whose edges stay on the network's grid,
    so the pieces equal a whole encode (an off-grid piece would shift the network's sampling)."""
    from viewer.engine.render import Engine

    model = _tiny_liif(seed=2)
    assert isinstance(model.encoder, DeblurredEncoder)
    grid = int(model.encoder.deblur.multiple)
    assert grid > 1
    for budget in range(2 << 20, 12 << 20, 700_001):  # budgets whose raw tile edges are off the grid
        engine = Engine(model, "cpu", "fp32", encode_budget_bytes=budget)
        assert engine.encode_tile_size() % grid == 0, (budget, engine.encode_tile_size())
    plain = Engine(make_liif(n_resblocks=1, n_feats=8, hidden=(8,), seed=1), "cpu", "fp32")
    assert plain.encode_tile_size() == max(64, plain._encode_side() - 2 * plain.model.receptive_radius)


def test_the_gate_option_reaches_the_spec_and_bad_values_are_refused() -> None:
    from viewer.errors import ArgumentError

    enc = {"name": "edsr-baseline", "args": {"no_upsampling": True}}
    spec = trainer.deblur_spec(
        TrainConfig(recipe="deblur", name="g", deblur_net=[4, 4, 4, 1], deblur_gate=[0.3, 0.45]), enc
    )
    assert (spec["args"]["gate_lo"], spec["args"]["gate_hi"]) == (0.3, 0.45)
    check_spec(
        {
            "name": "liif",
            "args": {
                "encoder_spec": spec,
                "imnet_spec": {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [8]}},
            },
        }
    )
    assert (
        "gate_lo"
        not in trainer.deblur_spec(TrainConfig(recipe="deblur", name="g", deblur_net=[4, 4, 4, 1]), enc)[
            "args"
        ]
    )
    for bad in ([0.5, 0.4], [0.3], [0.3, 1.5], [0.3, 0.45, 0.12, 0.1]):
        with pytest.raises(ArgumentError, match="deblur-gate"):
            trainer.deblur_spec(
                TrainConfig(recipe="deblur", name="g", deblur_net=[4, 4, 4, 1], deblur_gate=bad), enc
            )
    # a third number: the directional share's offset, in the spec and in the built gate
    cfg = TrainConfig(recipe="deblur", name="g", deblur_net=[4, 4, 4, 1], deblur_gate=[0.3, 0.45, 0.12])
    spec = trainer.deblur_spec(cfg, enc)
    assert spec["args"]["gate_directional"] == 0.12
    assert "gate_directional" not in trainer.deblur_spec(replace(cfg, deblur_gate=[0.3, 0.45]), enc)["args"]
    args = {k: v for k, v in spec["args"].items() if k != "encoder_spec"}
    gate = MSSNet(**args).gate
    assert gate is not None and gate.directional == 0.12
    with pytest.raises(ArgumentError, match="deblur-photo-gate"):
        trainer.deblur_spec(replace(cfg, deblur_photo_gate=[0.41, 0.51, 0.1]), enc)


def _cleaned_deblur(seed: int = 2) -> LIIF:
    """`_tiny_liif` with a clean-up network in front (as the retired liif-oldphoto-deblur), put there by
    `combine`."""
    from viewer.liif.checkpoint import build_model
    from viewer.train.combine import combine

    deblur = _tiny_liif(seed=seed)
    spec = json.loads(json.dumps(deblur.spec))
    inner = {"name": "edsr-baseline", "args": spec["args"]["encoder_spec"]["args"]["encoder_spec"]["args"]}
    spec["args"]["encoder_spec"] = {
        "name": "cleaned",
        "args": {"encoder_spec": inner, "n_feats": 4, "n_resblocks": 1},
    }
    old = build_model(spec)
    assert isinstance(deblur.encoder, DeblurredEncoder) and isinstance(old.encoder, CleanedEncoder)
    old.encoder.inner.load_state_dict(deblur.encoder.inner.state_dict())
    with torch.no_grad():
        old.encoder.cleanup.tail.weight.normal_(0.0, 0.1)
    return combine(deblur, deblur, old)


def test_a_cleanup_in_front_of_the_deblur_pass_tiles_exactly_and_runs_first() -> None:
    """A clean-up + deblur pair's order (the retired liif-oldphoto-deblur's): clean-up, then deblur, then
    the encoder. Its halo adds the clean-up's reach and stays on the deblur grid, so the lazy store's tiles
    equal a whole encode."""
    from viewer.engine.render import Engine
    from viewer.liif.models import encoder_grid

    model = _cleaned_deblur()
    enc = model.encoder
    assert isinstance(enc, CleanedEncoder) and isinstance(enc.inner, DeblurredEncoder)
    grid = encoder_grid(enc)
    assert grid == enc.inner.deblur.multiple > 1
    total = enc.cleanup.receptive_radius + enc.inner.receptive_radius
    assert model.receptive_radius == -(-total // grid) * grid and model.receptive_radius % grid == 0
    x = torch.rand(1, 3, 40, 44) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.encode(x), enc.inner(enc.cleanup(x)))
    engine = Engine(model, "cpu", "fp32")
    rng = np.random.default_rng(0)
    photo = (rng.random((80, 96, 3)) * 255).astype(np.uint8)
    whole = engine.render_scale(engine.encode(photo), 192, 160)
    side = 16 + 2 * model.receptive_radius
    small = Engine(model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 8 * 4)
    assert small.encode_tile_size() % grid == 0
    store = small.open_store(photo, tile=16, dtype=torch.float32)
    tiled = small.render_scale(store, 192, 160)
    assert store.encoded >= 20
    assert np.abs(tiled - whole).max() < 1e-4


def test_combine_refuses_a_second_cleanup_or_a_model_without_one() -> None:
    from viewer.errors import ArgumentError
    from viewer.train.combine import combine

    both = _cleaned_deblur()
    deblur = _tiny_liif(seed=2)
    with pytest.raises(ArgumentError, match="has no clean-up network"):
        combine(deblur, deblur, deblur)
    with pytest.raises(ArgumentError, match="clean-up network already"):
        combine(both, both, both)


def _grown_liif(start: LIIF, **size: object) -> LIIF:
    """A deblur model shaped as `start` but for the deblurring network's `size` arguments, freshly built."""
    spec = json.loads(json.dumps(start.spec))
    spec["args"]["encoder_spec"]["args"].update(size)
    torch.manual_seed(5)
    return LIIF(**spec["args"])


def test_a_wider_deeper_deblur_network_grows_exactly_from_a_smaller_one(tmp_path: Path) -> None:
    """`--init` with a smaller deblurring network (as MSSNet-small grows from the network shipped before):
    the grown one deblurs as the old one did, keeps every other weight, and every weight of it learns."""
    from viewer.train.grow import start_from

    start = _tiny_liif(seed=3)
    path = tmp_path / "small.safetensors"
    save_safetensors(start, path)
    grown = _grown_liif(start, wf=6, scale=8, vscale=8, stages=[1, 3])
    start_from(grown, str(path))
    enc, old = grown.encoder, start.encoder
    assert isinstance(enc, DeblurredEncoder) and isinstance(old, DeblurredEncoder)
    assert enc.deblur.widths == [6, 14] and len(cast(nn.ModuleList, enc.deblur.stages[-1])) == 3
    x = torch.rand(2, 3, 24, 32) * 2 - 1
    with torch.no_grad():
        want = old.deblur(x)
        got = enc.deblur.eval()(x)
    assert (want - x).abs().max() > 0.05  # the old network does change its input
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    ours = grown.state_dict()
    for k, v in start.state_dict().items():
        if not k.startswith("encoder.deblur."):
            assert torch.equal(ours[k], v), k
    # A unit (an output channel: its row of weights and its bias) that starts at zero must get a gradient, or
    # it would stay at zero. Hidden units that this input leaves below the ReLU everywhere (random weights,
    # old or new) learn nothing from it by nature and are excused; one at exactly zero is not.
    below: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:
            below[name] = out.detach().amax(dim=(0, 2, 3)) < 0  # before the in-place ReLU

        return hook

    for name, module in enc.deblur.named_modules():
        if name.endswith("body.0"):
            module.register_forward_hook(keep(name))
    enc.deblur.train()
    (enc.deblur(x) - x.flip(-1)).square().mean().backward()
    params = dict(enc.deblur.named_parameters())
    still = []
    for name, p in params.items():
        if not name.endswith(".weight"):
            continue
        bias = params.get(name.removesuffix("weight") + "bias")
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        zero = p.detach().flatten(1).abs().amax(1) == 0
        idle = grad.flatten(1).abs().amax(1) == 0
        if bias is not None:
            zero &= bias.detach() == 0
            idle &= (bias.grad if bias.grad is not None else torch.zeros_like(bias)) == 0
        stuck = zero & idle
        if name.endswith("body.0.weight"):
            stuck &= ~below[name.removesuffix(".weight")]
        still += [f"{name} unit {i}" for i in stuck.nonzero().flatten().tolist()]
    assert not still, still


def test_a_deblur_run_starts_from_a_model_with_a_tuned_encoder(tmp_path: Path) -> None:
    """`--init` with a shipped deblur model (which holds a tuned encoder) for a deblur run, which trains the
    network alone: every weight but the tuned copy's is the start's; the reverse, a tuned encoder the start
    lacks, is refused."""
    from viewer.errors import ArgumentError
    from viewer.train.grow import start_from

    torch.manual_seed(7)
    shipped = _grown_liif(_tiny_liif(seed=3), tuned_encoder=True)
    for p in shipped.parameters():
        p.data.normal_(0, 0.1)  # no weight left at its initial value, so a missed one shows
    path = tmp_path / "shipped.safetensors"
    save_safetensors(shipped, path)
    run = _grown_liif(shipped, tuned_encoder=False)
    start_from(run, str(path))
    theirs = shipped.state_dict()
    ours = run.state_dict()
    assert not any(k.startswith("encoder.tuned.") for k in ours)
    assert any(k.startswith("encoder.tuned.") for k in theirs)
    for k, v in ours.items():
        assert torch.equal(v, theirs[k]), k
    plain = tmp_path / "plain.safetensors"
    save_safetensors(run, plain)
    with pytest.raises(ArgumentError, match="do not fit"):
        start_from(_grown_liif(run, tuned_encoder=True), str(plain))


def test_a_deblur_network_that_is_not_a_growth_of_the_start_is_refused(tmp_path: Path) -> None:
    from viewer.errors import ArgumentError
    from viewer.train.grow import start_from

    start = _tiny_liif(seed=3)
    path = tmp_path / "small.safetensors"
    save_safetensors(start, path)
    for size in (
        {"wf": 3},
        {"stages": [2, 2]},
        {"levels": 3},
    ):  # narrower, deeper at a coarse scale, other levels
        with pytest.raises(ArgumentError, match="do not fit"):
            start_from(_grown_liif(start, **size), str(path))


def test_dense_steps_shrink_their_crops_more_than_the_crop_side_allows() -> None:
    """A dense step's crops are shrunk by a scale from --dense-scale, which a 128 px crop of a 321 px high
    photo cannot reach (2.5 at most); the default draws stay those of before the option."""
    from viewer.train import data as tdata

    photo = np.random.default_rng(3).integers(0, 256, size=(321, 481, 3), dtype=np.uint8)
    sides = []
    for seed in range(12):
        sides.append(
            tdata.random_hr_crop(photo, np.random.default_rng(seed), 80, 4.0, scale_min=2.5).shape[0]
        )
        plain = tdata.random_hr_crop(photo, np.random.default_rng(seed), 128, 4.0)
        assert np.array_equal(
            plain, tdata.random_hr_crop(photo, np.random.default_rng(seed), 128, 4.0, scale_min=1.0)
        )
        assert plain.shape[0] <= 321
    assert min(sides) >= 200 and max(sides) <= 321, sides  # shrinks of 2.5 to 4.0 of 80 px crops
    # a photo too small for the range gives its largest shrink
    assert (
        tdata.random_hr_crop(photo[:100, :100], np.random.default_rng(0), 80, 4.0, scale_min=2.5).shape[0]
        == 100
    )


def test_a_dense_share_trains_on_small_dense_crops_in_that_share_of_steps(
    tmp_path: Path, disc_photos: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    from viewer.train import data as tdata

    seen: list[tuple[int, int, float]] = []
    real = tdata.make_cleanup_batch

    def spy(images: object, rng: object, batch: int, **kw: object) -> object:
        seen.append((batch, cast(int, kw["lr_size"]), cast(float, kw["scale_min"])))
        return real(images, rng, batch, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tdata, "make_cleanup_batch", spy)
    teacher = make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=1)
    save_safetensors(teacher, tmp_path / "teacher.safetensors")
    cfg = TrainConfig(
        recipe="deblur",
        name="dense",
        steps=40,
        batch=2,
        crop=32,
        lr=1e-3,
        loss="l2",
        teacher=str(tmp_path / "teacher.safetensors"),
        deblur_net=[4, 4, 4, 1, 1],
        deblur_halo=16,
        dense_share=0.5,
        dense_crop=16,
        dense_scale=(2.0, 3.0),
        log_every=1000,
        save_every=1000,
    )
    trainer.train(cfg, tmp_path / "w", images=disc_photos, log=lambda m: None)
    dense = [s for s in seen if s[1] == 16]
    assert set(seen) == {(2, 32, 1.0), (8, 16, 2.0)}, set(seen)  # 2 crops of 32 px hold 8 of 16 px
    assert 10 <= len(dense) <= 30, len(dense)


@pytest.mark.parametrize(
    "extra",
    [["--dense-share", "0.5", "--dense-scale", "4,2"], ["--dense-share", "1.5"], ["--dense-scale", "x"]],
)
def test_bad_dense_options_are_refused(extra: list[str], tmp_path: Path) -> None:
    from viewer.errors import ArgumentError
    from viewer.train.options import build_parser

    argv = ["--recipe", "deblur", "--name", "d", "--out", str(tmp_path / "d.safetensors"), *extra]
    with pytest.raises(ArgumentError, match="dense"):
        trainer.cmd_train(build_parser().parse_args([*argv, "--work", str(tmp_path / "w")]))
    assert not (tmp_path / "w").exists() and not (tmp_path / "d.safetensors").exists()


def test_the_dense_share_is_an_option_of_recipe_deblur_only(tmp_path: Path) -> None:
    from viewer.errors import ArgumentError
    from viewer.train.options import build_parser

    argv = [
        "--recipe",
        "fast",
        "--name",
        "f",
        "--out",
        str(tmp_path / "f.safetensors"),
        "--dense-share",
        "0.5",
    ]
    with pytest.raises(ArgumentError, match="recipe deblur"):
        trainer.cmd_train(build_parser().parse_args([*argv, "--work", str(tmp_path / "w")]))
