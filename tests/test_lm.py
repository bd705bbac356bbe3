"""The latent-modulated decoder (liif-lm): the training query equals the paper form, its cost is counted
from its spec, its spec is checked, and distillation trains it. Tiny models, seconds. (The engine's query
against the paper form, and its bf16 path, are in test_liif_query.py with the mlp decoder's.)"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_train import _photos, _tiny_cfg, _tiny_teacher

from viewer.engine.render import Engine
from viewer.errors import ArgumentError, CheckpointError
from viewer.liif.checkpoint import build_model, check_spec, load_model, save_safetensors
from viewer.liif.cost import decoder_cost
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.lm import ModulatedMLP
from viewer.liif.reference import query_rgb
from viewer.train import trainer
from viewer.train.query import train_query

FLAGS = [
    dict(zip(("local_ensemble", "feat_unfold", "cell_decode"), v, strict=True))
    for v in itertools.product([True, False], repeat=3)
]


def _lm(seed: int = 3, blocks: int = 0, coord: int = 0, **flags: bool) -> LIIF:
    """A small random liif-lm; `coord` terms of per-latent coordinate weights: 0, 2 (linear) or 5."""
    return make_liif(
        n_resblocks=1,
        n_feats=6,
        hidden=(12, 10, 8),
        hyper_hidden=20,
        hyper_blocks=blocks,
        coord_weights=coord > 0,
        coord_quadratic=coord == 5,
        seed=seed,
        **flags,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("blocks", [0, 2, -2, -5], ids=["plain", "blocks", "coord", "coord-quadratic"])
@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: "-".join(k for k, v in f.items() if v) or "none")
def test_training_query_equals_the_reference(flags: dict[str, bool], blocks: int) -> None:
    """The training query computes the paper form (negative blocks: that many terms of coordinate
    weights, no blocks)."""
    model = _lm(seed=4, blocks=max(blocks, 0), coord=max(-blocks, 0), **flags)
    inp = torch.rand(2, 3, 11, 13) * 2 - 1
    feat = model.encode(inp)
    coord = torch.rand(2, 60, 2) * 2 - 1
    cell = torch.full((2, 60, 2), 2 / 40)
    want = query_rgb(model, feat, coord, cell)
    got = train_query(model, feat, coord, cell)
    assert (got - want).abs().max().item() < 1e-5


def test_cost_is_counted_from_the_spec_as_the_model_computes() -> None:
    model = _lm()
    cost = decoder_cost(model.spec)
    imnet = model.imnet
    assert isinstance(imnet, ModulatedMLP)
    assert cost.per_latent == imnet.per_latent_macs() == 6 * 9 * 20 + 20 * (12 + 10 + 8)
    assert cost.members == 4
    assert cost.paper_per_member == imnet.per_latent_macs() + imnet.per_member_macs()
    # here: rel (2) + the folded cell (1) columns, then 12x10, 10x8 and 8x3
    assert cost.here_per_member == 3 * 12 + 12 * 10 + 10 * 8 + 8 * 3
    assert cost.per_pixel_at(4) == pytest.approx(cost.here_per_pixel + cost.per_latent / 16)
    deeper = _lm(blocks=2)
    assert isinstance(deeper.imnet, ModulatedMLP)
    grown = decoder_cost(deeper.spec)
    assert grown.per_latent == deeper.imnet.per_latent_macs() == cost.per_latent + 2 * 2 * 20 * 20
    assert grown.here_per_member == cost.here_per_member  # blocks run per latent only
    for terms in (2, 5):
        turned = _lm(coord=terms)
        assert isinstance(turned.imnet, ModulatedMLP)
        coord = decoder_cost(turned.spec)
        # `terms` more values per first-layer unit cached per latent, as many multiply-adds per unit and query
        assert coord.per_latent == turned.imnet.per_latent_macs() == cost.per_latent + 20 * terms * 12
        assert coord.here_per_member == cost.here_per_member + terms * 12
        assert coord.paper_per_member == turned.imnet.per_latent_macs() + turned.imnet.per_member_macs()


def test_a_modulated_model_saves_loads_and_its_spec_is_checked(tmp_path: Path) -> None:
    model = _lm()
    path = tmp_path / "lm.safetensors"
    save_safetensors(model, path)
    again = load_model(path)
    assert isinstance(again.imnet, ModulatedMLP)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    spec: dict[str, Any] = {
        "name": "liif",
        "args": {
            "encoder_spec": {"name": "edsr-baseline", "args": {"no_upsampling": True}},
            "imnet_spec": {"name": "lm-mlp", "args": {"out_dim": 3, "hidden_list": [32, 32, 32]}},
        },
    }
    assert isinstance(build_model(spec).imnet, ModulatedMLP)
    bad: list[dict[str, Any]] = [
        {"hidden_list": [32, -1]},
        {"hidden_list": [32], "hyper_hidden": "wide"},
        {"hidden_list": [32], "hyper_hidden": 10**9},
        {"hidden_list": [32], "query_dim": 7},
        {"hidden_list": [32], "ranks": [0, 0]},
        {"hidden_list": [32], "hyper_blocks": -1},
        {"hidden_list": [32], "hyper_blocks": 1.5},
        {"hidden_list": [32], "coord_weights": 1},
        {"hidden_list": [32], "coord_quadratic": True},  # second-order terms without the linear ones
    ]
    for args in bad:
        spec["args"]["imnet_spec"] = {"name": "lm-mlp", "args": {"out_dim": 3, **args}}
        with pytest.raises(CheckpointError):
            check_spec(spec)


def test_distilling_a_modulated_decoder_lowers_the_loss_and_keeps_the_encoder(tmp_path: Path) -> None:
    teacher_path = _tiny_teacher(tmp_path)
    teacher = load_model(teacher_path)
    cfg = _tiny_cfg(
        recipe="fast", teacher=teacher_path, hidden=[8, 8], hyper_hidden=32, pool=12, steps=30, lr=3e-3
    )
    model, losses = trainer.train(cfg, tmp_path / "w", images=_photos(), log=lambda m: None)
    assert isinstance(model.imnet, ModulatedMLP)
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:3]), losses
    for (k, v), t in zip(
        model.encoder.state_dict().items(), teacher.encoder.state_dict().values(), strict=True
    ):
        assert torch.equal(v, t), k
    assert "latent-modulated" in trainer.architecture_label(model, "EDSR-baseline-LIIF, small decoder")


def test_the_hypernetwork_starts_as_the_teachers_first_layer(tmp_path: Path) -> None:
    """With the teacher's width, the hypernetwork's first layer starts as the feature part of the teacher's
    first layer (the student learns from the teacher's own first-layer units)."""
    teacher_path = _tiny_teacher(tmp_path)  # first hidden width 32
    teacher = load_model(teacher_path)
    cfg = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=[8], hyper_hidden=32)
    student = trainer.build_student(cfg, teacher)
    assert isinstance(student.imnet, ModulatedMLP)
    first = teacher.imnet.linears()[0]
    n = student.imnet.feat_in
    assert torch.equal(student.imnet.hyper_in.weight, first.weight[:, :n])
    assert torch.equal(student.imnet.hyper_in.bias, first.bias)


def _trained_start(tmp_path: Path, hidden: list[int]) -> tuple[str, LIIF, Path]:
    """A tiny teacher, and a latent-modulated student with these query widths trained 8 steps and saved:
    what a grown model starts from."""
    teacher_path = _tiny_teacher(tmp_path)
    cfg = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=hidden, hyper_hidden=16, pool=8, steps=8)
    start, _ = trainer.train(cfg, tmp_path / "a", images=_photos(), log=lambda m: None)
    start_path = tmp_path / "start.safetensors"
    save_safetensors(start, start_path)
    return teacher_path, start, start_path


def _assert_answers_as(grown: LIIF, start: LIIF, atol: float) -> None:
    """`grown` answers as `start` in the reference query and in the engine, within `atol` (0: exactly)."""
    feat = start.encode(torch.rand(1, 3, 10, 12) * 2 - 1)
    coord = torch.rand(1, 80, 2) * 2 - 1
    cell = torch.full((1, 80, 2), 2 / 30)
    with torch.no_grad():
        want = query_rgb(start.eval(), feat, coord, cell)
        got = query_rgb(grown.eval(), feat, coord, cell)
    assert float(want.std()) > 0.0  # the answers vary, so equality means something
    torch.testing.assert_close(got, want, rtol=0, atol=atol)
    img = np.random.default_rng(2).random((10, 12, 3), dtype=np.float32)
    a, b = Engine(start, "cpu", "fp32"), Engine(grown, "cpu", "fp32")
    np.testing.assert_allclose(
        b.render_scale(b.encode(img), 30, 25), a.render_scale(a.encode(img), 30, 25), rtol=0, atol=atol
    )


def test_a_model_grown_by_hypernetwork_blocks_starts_as_the_model_it_grew_from(tmp_path: Path) -> None:
    """`--init` from the same model with fewer hypernetwork blocks: its weights load, the new block is an
    identity, so the grown model answers exactly as its start; then training moves the new block."""
    teacher_path, start, start_path = _trained_start(tmp_path, [8, 8])
    cfg = _tiny_cfg(
        recipe="fast",
        teacher=teacher_path,
        hidden=[8, 8],
        hyper_hidden=16,
        hyper_blocks=1,
        init=str(start_path),
    )
    grown = trainer.build_student(cfg, load_model(teacher_path))
    assert isinstance(grown.imnet, ModulatedMLP) and len(grown.imnet.blocks) == 1
    feat = start.encode(torch.rand(1, 3, 10, 12) * 2 - 1)
    coord = torch.rand(1, 80, 2) * 2 - 1
    cell = torch.full((1, 80, 2), 2 / 30)
    with torch.no_grad():
        assert torch.equal(
            query_rgb(grown.eval(), feat, coord, cell), query_rgb(start.eval(), feat, coord, cell)
        )
    trained, _ = trainer.train(
        replace(cfg, steps=6, lr=1e-2), tmp_path / "b", images=_photos(), log=lambda m: None
    )
    assert isinstance(trained.imnet, ModulatedMLP)
    assert trained.imnet.block_layers()[0][1].weight.abs().sum().item() > 0
    other = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=[8], hyper_hidden=16, init=str(start_path))
    with pytest.raises(ArgumentError):
        trainer.build_student(other, load_model(teacher_path))


def test_a_model_grown_wider_starts_as_the_model_it_grew_from(tmp_path: Path) -> None:
    """`--init` from the same model with a narrower query MLP: old units keep their weights, new ones have
    zero outgoing weights, so the grown model answers as its start, in the reference query and the engine,
    up to float summation order; then training gives the new units a say. Fewer layers, or a narrower layer, is refused."""
    teacher_path, start, start_path = _trained_start(tmp_path, [8, 6])
    cfg = _tiny_cfg(
        recipe="fast", teacher=teacher_path, hidden=[12, 10], hyper_hidden=16, init=str(start_path)
    )
    grown = trainer.build_student(cfg, load_model(teacher_path))
    assert isinstance(grown.imnet, ModulatedMLP) and grown.imnet.widths == [12, 10]
    _assert_answers_as(grown, start, atol=1e-6)  # equal up to float summation order
    trained, _ = trainer.train(
        replace(cfg, steps=6, lr=1e-2), tmp_path / "b", images=_photos(), log=lambda m: None
    )
    assert isinstance(trained.imnet, ModulatedMLP)
    assert trained.imnet.out.weight[:, 6:].abs().sum().item() > 0  # the new last-layer units now count
    for hidden in ([12], [6, 10]):
        other = _tiny_cfg(
            recipe="fast", teacher=teacher_path, hidden=hidden, hyper_hidden=16, init=str(start_path)
        )
        with pytest.raises(ArgumentError):
            trainer.build_student(other, load_model(teacher_path))


def test_a_model_grown_with_coordinate_weights_starts_as_the_model_it_grew_from(tmp_path: Path) -> None:
    """`--init` from the same model without coordinate weights: their hypernetwork rows start at zero, so
    the grown model answers exactly as its start, in the reference query and the engine; then training
    moves them. The trained model grows again by second-order terms (`--coord-quadratic`), exactly. A
    start that already has them, with a different width, is refused."""
    teacher_path, start, start_path = _trained_start(tmp_path, [8, 6])
    cfg = _tiny_cfg(
        recipe="fast",
        teacher=teacher_path,
        hidden=[8, 6],
        hyper_hidden=16,
        coord_weights=True,
        init=str(start_path),
    )
    grown = trainer.build_student(cfg, load_model(teacher_path))
    assert isinstance(grown.imnet, ModulatedMLP) and grown.imnet.latent_width == 8 + 6 + 2 * 8
    _assert_answers_as(grown, start, atol=0.0)
    trained, _ = trainer.train(
        replace(cfg, steps=6, lr=1e-2), tmp_path / "b", images=_photos(), log=lambda m: None
    )
    assert isinstance(trained.imnet, ModulatedMLP)
    assert trained.imnet.hyper_out.weight[14:].abs().sum().item() > 0  # the coordinate weights now count
    path = tmp_path / "grown.safetensors"
    save_safetensors(trained, path)
    quadratic = trainer.build_student(
        replace(cfg, coord_quadratic=True, init=str(path)), load_model(teacher_path)
    )
    assert isinstance(quadratic.imnet, ModulatedMLP) and quadratic.imnet.latent_width == 8 + 6 + 5 * 8
    assert quadratic.imnet.hyper_out.weight[14 + 2 * 8 :].abs().sum().item() == 0
    _assert_answers_as(quadratic, trained, atol=0.0)
    other = _tiny_cfg(
        recipe="fast",
        teacher=teacher_path,
        hidden=[10, 6],
        hyper_hidden=16,
        coord_weights=True,
        init=str(path),
    )
    with pytest.raises(ArgumentError):
        trainer.build_student(other, load_model(teacher_path))


def test_models_sharing_an_encoder_share_cached_tiles() -> None:
    """The disk cache's model key covers the encoder only: liif-lm reads tiles the official model wrote."""
    official_like = make_liif(n_resblocks=1, n_feats=6, hidden=(16, 16), seed=3)
    lm = _lm(seed=3)  # same seed: the same encoder weights, another decoder
    other = _lm(seed=9)
    assert all(
        torch.equal(a, b)
        for a, b in zip(official_like.encoder.parameters(), lm.encoder.parameters(), strict=True)
    )
    key = Engine(official_like, "cpu", "fp32").model_key
    assert Engine(lm, "cpu", "fp32").model_key == key
    assert Engine(other, "cpu", "fp32").model_key != key
