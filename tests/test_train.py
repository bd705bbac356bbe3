"""Training pipeline: the training query is the paper's, a few steps lower the loss, runs resume exactly,
and the degradations are deterministic. Tiny models and synthetic photos, on the CPU, in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from viewer.engine import degrade
from viewer.errors import ArgumentError
from viewer.liif.checkpoint import load_model, save_safetensors
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.reference import query_rgb
from viewer.train import data as tdata
from viewer.train import grow, trainer
from viewer.train.graphics import synthetic_graphic, text_page
from viewer.train.options import TrainConfig
from viewer.train.query import train_query


def _photos(n: int = 3, side: int = 120) -> list[np.ndarray]:
    """Smooth synthetic photos with edges: gradients plus a few discs (learnable in a few steps)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = []
    for _ in range(n):
        img = np.stack([(yy * rng.uniform(0.3, 1)) + xx * rng.uniform(0, 0.5) for _ in range(3)], axis=-1)
        for _ in range(4):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, size=3)
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


@pytest.mark.parametrize("ensemble", [True, False])
@pytest.mark.parametrize("unfold", [True, False])
@pytest.mark.parametrize("cell", [True, False])
def test_training_query_equals_the_paper_reference(ensemble: bool, unfold: bool, cell: bool) -> None:
    model = make_liif(
        n_feats=8, hidden=(16, 12), local_ensemble=ensemble, feat_unfold=unfold, cell_decode=cell
    )
    gen = torch.Generator().manual_seed(3)
    feat = torch.randn(2, 8, 7, 9, generator=gen)
    coord = torch.rand(2, 60, 2, generator=gen) * 2 - 1
    coord[:, :4] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]])
    cells = torch.rand(2, 60, 2, generator=gen) * 0.3
    want = query_rgb(model, feat, coord, cells)
    got = train_query(model, feat, coord, cells)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())


def test_training_query_passes_gradients_to_encoder_and_decoder() -> None:
    model = make_liif(n_feats=8, hidden=(16,))
    inp = torch.rand(1, 3, 10, 10)
    out = train_query(model, model.encode(inp), torch.rand(1, 20, 2) * 2 - 1, torch.full((1, 20, 2), 0.1))
    out.abs().mean().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in model.imnet.parameters())
    assert model.encoder.get_submodule("head.0").weight.grad is not None


def test_samples_follow_the_protocol() -> None:
    rng = np.random.default_rng(0)
    lr, coord, cell, rgb = tdata.make_sample(_photos(1, 200)[0], rng, n_points=500)
    assert lr.shape == (3, 48, 48) and coord.shape == (500, 2) and rgb.shape == (500, 3)
    side = round(2.0 / cell[0, 0])
    assert 48 <= side <= 192  # scale in [1, 4]
    assert np.abs(coord).max() < 1 and rgb.min() >= 0 and rgb.max() <= 1


def test_shrunk_photos_give_sharper_inputs() -> None:
    """`shrink_p` cuts crops from photos first made smaller: on a smooth photo the 48x48 inputs then change
    faster from pixel to pixel than crops of the photo as it is; the protocol (shapes, ranges) holds."""
    yy, xx = np.mgrid[0:300, 0:300].astype(np.float32)
    smooth = (127 + 120 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 7.0)[..., None]).repeat(3, axis=2)
    photo = smooth.clip(0, 255).astype(np.uint8)
    small = tdata.shrink(photo, 2.0)
    assert small.shape == (150, 150, 3) and small.dtype == np.uint8
    assert tdata.shrink(photo, 100.0).shape == (48, 48, 3)

    def roughness(shrink_p: float) -> float:
        b = tdata.make_batch([photo], np.random.default_rng(3), 64, n_points=64, shrink_p=shrink_p)
        assert b.lr.shape == (64, 3, 48, 48) and b.lr.min() >= 0 and b.lr.max() <= 1
        return float(np.abs(np.diff(b.lr, axis=3)).mean())

    assert roughness(1.0) > 1.3 * roughness(0.0)


def test_synthetic_graphics_are_seeded_flat_colour_with_hard_edges() -> None:
    """A drawing is the same for the same seed and differs between seeds; it is mostly flat colour (many
    pixels equal their neighbour) cut by hard edges (some neighbours differ by a quarter of the range),
    unlike a photo; `graphics_p` = 1 cuts every crop from one, and 0 leaves batches as they were."""
    a = synthetic_graphic(np.random.default_rng([5, 1]))
    assert a.shape == (256, 256, 3) and a.dtype == np.uint8
    assert np.array_equal(a, synthetic_graphic(np.random.default_rng([5, 1])))
    assert not np.array_equal(a, synthetic_graphic(np.random.default_rng([5, 2])))
    flat, hard = [], []
    for seed in range(12):
        g = synthetic_graphic(np.random.default_rng([9, seed])).astype(np.int16)
        d = np.abs(np.diff(g, axis=1)).max(axis=2)
        flat.append(float((d == 0).mean()))
        hard.append(float((d >= 64).mean()))
    assert np.median(flat) > 0.5 and np.median(hard) > 0.002

    photos = _photos()
    plain = tdata.make_batch(photos, np.random.default_rng(4), 8, n_points=32)
    again = tdata.make_batch(photos, np.random.default_rng(4), 8, n_points=32, graphics_p=0.0)
    assert np.array_equal(plain.lr, again.lr) and np.array_equal(plain.rgb, again.rgb)
    drawn = tdata.make_batch(photos, np.random.default_rng(4), 8, n_points=32, graphics_p=1.0)
    assert drawn.lr.shape == plain.lr.shape and drawn.lr.min() >= 0 and drawn.lr.max() <= 1

    # Against the test photos (gradients and a few discs), the drawings' crops have more flat colour and
    # more hard edges.
    def shares(lr: np.ndarray) -> tuple[float, float]:
        d = np.abs(np.diff(lr, axis=3))
        return float((d < 1e-6).mean()), float((d > 0.25).mean())

    (flat_drawn, hard_drawn), (flat_photo, hard_photo) = shares(drawn.lr), shares(plain.lr)
    assert flat_drawn > 1.5 * flat_photo and hard_drawn > 2 * hard_photo


def test_text_pages_are_seeded_lines_of_print_on_paper() -> None:
    """A page is the same for the same seed; most of it is paper (its commonest colour), crossed by rows
    of ink: some rows are all paper (between lines), others are not; `text_p` = 1 cuts every crop from
    pages, and 0 leaves batches as they were."""
    page = text_page(np.random.default_rng([6, 0]))
    assert page.shape == (256, 256, 3) and page.dtype == np.uint8
    assert np.array_equal(page, text_page(np.random.default_rng([6, 0])))
    for seed in range(6):
        g = text_page(np.random.default_rng([6, seed]))
        colours, counts = np.unique(g.reshape(-1, 3), axis=0, return_counts=True)
        paper = colours[counts.argmax()]
        is_paper = (g == paper).all(axis=2)
        assert is_paper.mean() > 0.4
        blank_rows = is_paper.all(axis=1)
        assert 0 < blank_rows.sum() < 256  # gaps between lines, and lines
    photos = _photos()
    plain = tdata.make_batch(photos, np.random.default_rng(4), 8, n_points=32)
    again = tdata.make_batch(photos, np.random.default_rng(4), 8, n_points=32, text_p=0.0)
    assert np.array_equal(plain.lr, again.lr)
    pages = tdata.make_batch(photos, np.random.default_rng(4), 8, n_points=32, text_p=1.0)
    assert pages.lr.shape == plain.lr.shape and not np.array_equal(pages.lr, plain.lr)


def _tiny_cfg(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        recipe="scratch",
        name="tiny",
        steps=40,
        batch=4,
        points=256,
        distill_points=256,
        lr=3e-3,
        hidden=[32, 32],
        log_every=1000,
        save_every=1000,
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _tiny_teacher(tmp_path: Path) -> str:
    model = make_liif(n_feats=8, n_resblocks=1, hidden=(32, 32), seed=1)
    path = tmp_path / "teacher.safetensors"
    save_safetensors(model, path)
    return str(path)


def test_scratch_training_lowers_the_loss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "build_student", _tiny_student)
    _, losses = trainer.train(_tiny_cfg(), tmp_path / "w", images=_photos(), log=lambda m: None)
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:4]), losses


def _tiny_student(cfg: TrainConfig, teacher: object) -> torch.nn.Module:
    torch.manual_seed(cfg.seed)
    return make_liif(n_feats=8, n_resblocks=1, hidden=tuple(cfg.hidden), seed=cfg.seed).train()


@pytest.mark.parametrize("loss", ["l1", "l2"])
def test_distillation_lowers_the_loss_and_keeps_the_encoder(tmp_path: Path, loss: str) -> None:
    teacher_path = _tiny_teacher(tmp_path)
    cfg = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=[16], pool=12, steps=30, loss=loss)
    model, losses = trainer.train(cfg, tmp_path / "w", images=_photos(), log=lambda m: None)
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:3]), losses
    teacher = load_model(teacher_path)
    for (k, v), (_, t) in zip(
        model.encoder.state_dict().items(), teacher.encoder.state_dict().items(), strict=True
    ):
        assert torch.equal(v, t), k
    assert trainer.decoder_macs_per_pixel(model) < trainer.decoder_macs_per_pixel(teacher)


def test_the_l2_loss_is_the_one_trained(tmp_path: Path) -> None:
    """Same start, same batch: the l2 run's first loss is the squared error, smaller than the l1 one here
    (every error is below 1 in normalised units); an ignored option would give equal values."""
    teacher_path = _tiny_teacher(tmp_path)
    first = {}
    for loss in ("l1", "l2"):
        cfg = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=[16], pool=12, steps=1, loss=loss)
        _, losses = trainer.train(cfg, tmp_path / loss, images=_photos(), log=lambda m: None)
        first[loss] = losses[0]
    assert 0 < first["l2"] < first["l1"], first


@pytest.mark.parametrize(("random_points", "off_share"), [(-1, 8 / 16), (4, 4 / 12), (0, 0.0)])
def test_random_points_set_the_share_of_random_teacher_points(random_points: int, off_share: float) -> None:
    """A pool whose random-cell teacher answers are 100 off: the step's loss is 100 times the share of
    those points, so it counts exactly how many a step takes (8 ground-truth points per crop here)."""
    rng = np.random.default_rng(3)
    model = make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=1)
    crops, stored = 4, 10

    def points(scale: float) -> tuple[np.ndarray, np.ndarray]:
        coord = rng.uniform(-0.9, 0.9, size=(crops, stored, 2)).astype(np.float32)
        return coord, np.full((crops, stored, 2), 2 / (6 * scale), dtype=np.float32)

    coord, cell = points(2.0)
    rcoord, rcell = points(12.0)
    zeros = np.zeros((crops, stored, 3), dtype=np.float32)
    pool = {
        "feat": rng.normal(size=(crops, 8, 6, 6)).astype(np.float16),
        **{"coord": coord, "cell": cell, "rcoord": rcoord, "rcell": rcell},
        **{"rgb": zeros, "t_gt": zeros, "t_rnd": zeros + 100.0},
    }
    cfg = _tiny_cfg(recipe="fast", batch=2, step_points=8, random_points=random_points, gt_weight=0.0)
    with torch.no_grad():
        loss = float(trainer._fast_step(cfg, model, pool, 0, torch.device("cpu")))
    assert loss == pytest.approx(100 * off_share, abs=2.0)


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "build_student", _tiny_student)
    cfg = _tiny_cfg(steps=6)
    whole, _ = trainer.train(cfg, tmp_path / "a", images=_photos(), log=lambda m: None)
    trainer.train(cfg, tmp_path / "b", images=_photos(), log=lambda m: None, stop_after=4)
    resumed, losses = trainer.train(cfg, tmp_path / "b", images=_photos(), log=lambda m: None)
    assert len(losses) == 2
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k


@pytest.mark.parametrize(("key", "value"), [("clean_weight", 3.0), ("crop", 48), ("steps", 9), ("lr", 1e-4)])
def test_resuming_with_other_settings_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: object
) -> None:
    """A saved run continues only with the settings it was saved with, except its labels."""
    monkeypatch.setattr(trainer, "build_student", _tiny_student)
    trainer.train(_tiny_cfg(steps=6), tmp_path, images=_photos(), log=lambda m: None, stop_after=2)
    with pytest.raises(ArgumentError, match=f"saved run has {key}="):
        trainer.train(_tiny_cfg(**{"steps": 6, key: value}), tmp_path, images=_photos(), log=lambda m: None)
    relabelled = _tiny_cfg(steps=6, note="renamed", log_every=1, save_every=3)
    _, losses = trainer.train(relabelled, tmp_path, images=_photos(), log=lambda m: None)
    assert len(losses) == 4  # continued from step 2, not restarted


def test_export_writes_a_loadable_model_with_its_card_data(tmp_path: Path) -> None:
    cfg = _tiny_cfg()
    model = make_liif(n_feats=8, hidden=(16,))
    out = tmp_path / "m.safetensors"
    trainer.export(model, cfg, out, display="Tiny")
    from viewer.liif.checkpoint import read_metadata

    meta = read_metadata(out)
    assert meta["name"] == "tiny" and meta["display_name"] == "Tiny"
    in_dim = 8 * 9 + 2 + 2  # unfolded features, relative coordinate, cell
    assert int(meta["decoder_macs_per_pixel"]) == 4 * (in_dim * 16 + 16 * 3)
    again = load_model(out)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_continued_run_records_every_stage_and_the_quality(tmp_path: Path) -> None:
    """A file trained from another one keeps the earlier runs' settings before its own, in order, so a
    model trained in stages states its whole recipe; `quality` is written when given."""
    from viewer.liif.checkpoint import read_metadata

    model = make_liif(n_feats=8, hidden=(16,))
    paths = [tmp_path / f"stage{k}.safetensors" for k in (1, 2, 3)]
    trainer.export(model, _tiny_cfg(steps=5, note="first"), paths[0])
    assert json.loads(read_metadata(paths[0])["training"])["note"] == "first"  # a first run: no stages
    trainer.export(model, _tiny_cfg(steps=6, init=str(paths[0])), paths[1])
    trainer.export(
        model, _tiny_cfg(steps=7, init=str(paths[1]), note="third"), paths[2], quality="Set5 x4: 1 dB"
    )
    meta = read_metadata(paths[2])
    stages = json.loads(meta["training"])["stages"]
    assert [(st["steps"], st["note"]) for st in stages] == [(5, "first"), (6, ""), (7, "third")]
    assert stages[2]["init"] == str(paths[1])
    assert meta["quality"] == "Set5 x4: 1 dB"
    assert "quality" not in read_metadata(paths[1])
    # Written again over its own --init (as `--export-now --quality` does when --out is that file): the
    # stage is recorded once, not twice.
    again = _tiny_cfg(steps=8, init=str(paths[2]), note="fourth")
    trainer.export(model, again, paths[2])
    trainer.export(model, again, paths[2], quality="measured")
    stages = json.loads(read_metadata(paths[2])["training"])["stages"]
    assert [st["steps"] for st in stages] == [5, 6, 7, 8]


def test_degradations_are_deterministic_and_change_the_image() -> None:
    img = _photos(1, 60)[0].astype(np.float32) / 255
    a = degrade.random_degrade(img, np.random.default_rng(5))
    b = degrade.random_degrade(img, np.random.default_rng(5))
    assert np.array_equal(a, b)
    outs = [degrade.random_degrade(img, np.random.default_rng(s)) for s in range(6)]
    assert any(not np.array_equal(o, outs[0]) for o in outs[1:])
    assert all(o.shape == img.shape and o.min() >= 0 and o.max() <= 1 for o in outs)
    c = degrade.benchmark_degrade(img, 3)
    assert np.array_equal(c, degrade.benchmark_degrade(img, 3))
    assert 0.002 < float(np.abs(c - img).mean()) < 0.05


def _low_rank_liif(rank: int, hidden: tuple[int, ...] = (32, 16), seed: int = 2) -> LIIF:
    enc = {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 1, "n_feats": 8}}
    ranks = [rank] + [0] * len(hidden)
    torch.manual_seed(seed)
    imnet = {"name": "mlp", "args": {"out_dim": 3, "hidden_list": list(hidden), "ranks": ranks}}
    return LIIF(enc, imnet).eval()


def test_a_factored_first_layer_is_counted_and_queried_like_the_reference(tmp_path: Path) -> None:
    from viewer.engine.render import Engine
    from viewer.liif.models import LowRankLinear

    model = _low_rank_liif(rank=6)
    first = model.imnet.linears()[0]
    assert isinstance(first, LowRankLinear)
    x = torch.randn(5, first.in_features)
    assert torch.allclose(first(x), x @ first.weight.t() + first.bias, atol=1e-5)
    in_dim = 8 * 9 + 4
    assert model.decoder_macs_per_query() == 6 * (in_dim + 32) + 32 * 16 + 16 * 3
    gen = torch.Generator().manual_seed(4)
    feat = torch.randn(1, 8, 6, 7, generator=gen)
    coord = torch.rand(1, 50, 2, generator=gen) * 2 - 1
    cells = torch.rand(1, 50, 2, generator=gen) * 0.3
    want = query_rgb(model, feat, coord, cells)
    assert torch.allclose(train_query(model, feat, coord, cells), want, atol=1e-5)
    engine = Engine(model, "cpu", "fp32")
    from viewer.engine.render import FeatureMap

    fm = FeatureMap(feat[0])
    got = engine.query(fm, coord[0], cells[0])
    assert torch.allclose(got, want[0], atol=1e-4), float((got - want[0]).abs().max())
    path = tmp_path / "lr.safetensors"
    save_safetensors(model, path)
    again = load_model(path)
    assert torch.equal(again.imnet.linears()[0].weight, first.weight)


def test_a_factored_first_layer_starts_as_the_teachers_principal_part() -> None:
    teacher = make_liif(n_feats=8, n_resblocks=1, hidden=(32, 32), seed=1)
    feats = teacher.encode(torch.rand(2, 3, 20, 20) * 2 - 1).detach()
    n_feat = 8 * 9
    t_first = teacher.imnet.linears()[0]

    from viewer.train.query import project

    with torch.no_grad():
        want = project(teacher, feats).permute(0, 2, 3, 1).reshape(-1, 32)
        sv = torch.linalg.svdvals(want - want.mean(dim=0))

    def error(rank: int) -> float:
        student = _low_rank_liif(rank, hidden=(32, 8))
        assert grow.inherit_decoder_layers(student, teacher, feats) == 1
        s_first = student.imnet.linears()[0]
        # Coordinate and cell inputs keep their exact weights; the feature part is a rank-limited copy.
        assert torch.allclose(s_first.weight[:, n_feat:], t_first.weight[:, n_feat:], atol=1e-5)
        with torch.no_grad():
            got = project(student, feats).permute(0, 2, 3, 1).reshape(-1, 32)
            return float((got - want).norm() / want.norm())

    for rank in (6, 16, 28):
        # No worse than the best approximation of that rank on these features (PCA's residual).
        best = float(sv[rank - 4 :].norm() / want.norm())
        assert error(rank) <= best + 1e-4, (rank, error(rank), best)
    assert error(6) > error(16) > error(28)


def test_a_run_can_start_from_a_saved_model(tmp_path: Path) -> None:
    teacher_path = _tiny_teacher(tmp_path)
    cfg = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=[16], pool=8, steps=2)
    first, _ = trainer.train(cfg, tmp_path / "a", images=_photos(), log=lambda m: None)
    path = tmp_path / "first.safetensors"
    trainer.export(first, cfg, path)
    from viewer.liif.checkpoint import read_metadata

    assert "encoder weights (c) 2020 Yinbo Chen" in read_metadata(path)["licence"]  # the official encoder
    cfg2 = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=[16], pool=8, steps=2, init=str(path))
    start = trainer.build_student(cfg2, load_model(teacher_path))
    for k, v in first.state_dict().items():
        assert torch.equal(start.state_dict()[k], v), k
    wrong = _tiny_cfg(recipe="fast", teacher=teacher_path, hidden=[12], init=str(path))
    with pytest.raises(ArgumentError, match="architecture differs"):
        trainer.build_student(wrong, load_model(teacher_path))


def test_a_stopped_run_can_be_exported_as_it_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from viewer.cli import main
    from viewer.liif.checkpoint import read_metadata

    data = tmp_path / "photos"
    data.mkdir()
    for k, img in enumerate(_photos()):
        Image.fromarray(img).save(data / f"p{k}.png")
    out = tmp_path / "part.safetensors"
    common = [
        "train", "--recipe", "fast", "--name", "part", "--out", str(out), "--work", str(tmp_path / "w"),
        "--data", str(data), "--teacher", _tiny_teacher(tmp_path), "--steps", "10", "--batch", "2",
        "--points", "64", "--step-points", "32", "--pool", "4", "--hidden", "8", "--device", "cpu",
    ]  # fmt: skip
    assert main([*common, "--export-now"]) != 0  # nothing saved yet
    assert "no saved run" in capsys.readouterr().err
    assert not out.exists()
    assert main([*common, "--max-steps-now", "3"]) == 0
    assert not out.exists()  # stopped part way: no model written
    assert main([*common, "--export-now"]) == 0
    assert json.loads(read_metadata(out)["training"])["exported_at_step"] == 3
    assert "quality" not in read_metadata(out)
    assert main([*common, "--export-now", "--quality", "Set5 x4: 20 dB"]) == 0
    assert read_metadata(out)["quality"] == "Set5 x4: 20 dB"
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "w" / "state.safetensors"))
    model = load_model(out)
    for key, v in model.imnet.state_dict().items():
        assert torch.equal(v, state[f"model.imnet.{key}"]), key


def _cleanup_cfg(teacher: str, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        recipe="cleanup", teacher=teacher, batch=4, crop=24, cleanup_width=8, cleanup_blocks=2, lr=3e-3
    )
    base.update(kw)
    return _tiny_cfg(**base)


def test_an_untrained_cleanup_network_leaves_the_teacher_as_it_is(tmp_path: Path) -> None:
    teacher_path = _tiny_teacher(tmp_path)
    teacher = load_model(teacher_path)
    model = trainer.build_student(_cleanup_cfg(teacher_path), teacher)
    assert model.spec["args"]["encoder_spec"]["name"] == "cleaned"
    inp = torch.rand(1, 3, 20, 23) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.encode(inp), teacher.encode(inp))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("encoder.cleanup.") for n in trained)


def test_cleanup_training_lowers_the_loss_and_keeps_the_teachers_weights(tmp_path: Path) -> None:
    teacher_path = _tiny_teacher(tmp_path)
    cfg = _cleanup_cfg(teacher_path, steps=30, degrade_p=1.0)
    model, losses = trainer.train(cfg, tmp_path / "w", images=_photos(), log=lambda m: None)
    assert np.mean(losses[-6:]) < 0.85 * np.mean(losses[:3]), losses
    teacher = load_model(teacher_path)
    inner = {f"encoder.inner.{k}": v for k, v in teacher.encoder.state_dict().items()}
    kept = {**inner, **{f"imnet.{k}": v for k, v in teacher.imnet.state_dict().items()}}
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in kept.items())
    out = tmp_path / "m.safetensors"
    trainer.export(model, cfg, out, display="Old photo")
    from viewer.liif.checkpoint import read_metadata

    assert "clean-up CNN (2 blocks of 8 channels)" in read_metadata(out)["architecture"]
    again = load_model(out)
    for (k, a), b in zip(state.items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a_deeper_cleanup_network_starts_as_the_shallower_one_it_grows_from(tmp_path: Path) -> None:
    """--init with a shallower clean-up network: the old blocks are kept, the new ones pass their input
    through (so the output is unchanged) and train; any other difference is still refused."""
    from viewer.liif.checkpoint import save_safetensors

    teacher_path = _tiny_teacher(tmp_path)
    teacher = load_model(teacher_path)
    shallow = trainer.build_student(_cleanup_cfg(teacher_path), teacher)
    with torch.no_grad():
        torch.manual_seed(2)
        for p in shallow.encoder.get_submodule("cleanup").parameters():
            p.add_(torch.randn_like(p) * 0.05)  # a trained one: not the identity
    init = tmp_path / "shallow.safetensors"
    save_safetensors(shallow, init)
    deep = trainer.build_student(_cleanup_cfg(teacher_path, cleanup_blocks=5, init=str(init)), teacher)
    inp = torch.rand(1, 3, 20, 23) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(deep.encode(inp), shallow.encode(inp), atol=1e-6)
        assert not torch.allclose(shallow.encode(inp), teacher.encode(inp), atol=1e-3)
    body = deep.encoder.get_submodule("cleanup.body")
    assert isinstance(body, torch.nn.Sequential) and len(body) == 5
    new_block = deep.encoder.get_submodule("cleanup.body.4.body.2")
    assert isinstance(new_block, torch.nn.Conv2d) and new_block.weight.requires_grad
    with pytest.raises(ArgumentError, match="architecture differs"):
        trainer.build_student(_cleanup_cfg(teacher_path, cleanup_width=6, init=str(init)), teacher)
    with pytest.raises(ArgumentError, match="architecture differs"):
        trainer.build_student(_cleanup_cfg(teacher_path, cleanup_blocks=1, init=str(init)), teacher)


def test_cleanup_batches_are_seeded_and_clean_inputs_are_their_targets() -> None:
    photos = _photos()
    a = tdata.make_cleanup_batch(photos, np.random.default_rng(4), 3, lr_size=20, degrade_p=1.0)
    b = tdata.make_cleanup_batch(photos, np.random.default_rng(4), 3, lr_size=20, degrade_p=1.0)
    assert a.damaged.shape == a.clean.shape == (3, 3, 20, 20)
    assert np.array_equal(a.damaged, b.damaged) and np.array_equal(a.clean, b.clean)
    assert a.was_damaged.all() and not np.array_equal(a.damaged, a.clean)
    c = tdata.make_cleanup_batch(photos, np.random.default_rng(4), 3, lr_size=20, degrade_p=0.0)
    assert np.array_equal(c.damaged, c.clean) and not c.was_damaged.any()
    half = tdata.make_cleanup_batch(photos, np.random.default_rng(5), 40, lr_size=8, degrade_p=0.5)
    for d, cl, hurt in zip(half.damaged, half.clean, half.was_damaged, strict=True):
        assert np.array_equal(d, cl) != hurt  # the flag says exactly which inputs differ from their target
    assert 0 < half.was_damaged.sum() < 40


def test_tiled_encoding_behind_a_cleanup_network_is_exact() -> None:
    """The cleaned encoder's receptive radius counts both networks: tiles equal the untiled encoder, and
    with only the inner encoder's radius they do not (so the test exercises the clean-up's halo)."""
    from viewer.engine.render import Engine
    from viewer.liif.models import CleanedEncoder

    model = make_liif(n_resblocks=2, n_feats=8, hidden=(16,), seed=1)
    enc = CleanedEncoder(model.encoder, 8, 3)
    model.encoder = enc
    with torch.no_grad():
        torch.manual_seed(0)
        enc.cleanup.tail.weight.normal_(0, 0.2)
    engine = Engine(model, "cpu", "fp32", encode_budget_bytes=90_000)
    img = np.random.default_rng(4).random((150, 170, 3), dtype=np.float32)
    assert engine.encode_tile_size() < 150
    with torch.no_grad():
        whole = model.encode((torch.from_numpy(img).permute(2, 0, 1)[None] - 0.5) / 0.5)[0]
    assert torch.allclose(engine.encode(img).feat, whole, atol=1e-5, rtol=1e-5)
    enc.receptive_radius = int(enc.inner.receptive_radius)  # type: ignore[arg-type]
    assert not torch.allclose(engine.encode(img).feat, whole, atol=1e-5, rtol=1e-5)


def test_the_clean_weight_scales_the_loss_of_clean_crops_only(tmp_path: Path) -> None:
    teacher_path = _tiny_teacher(tmp_path)
    teacher = load_model(teacher_path)
    model = trainer.build_student(_cleanup_cfg(teacher_path), teacher)
    tail = model.encoder.get_submodule("cleanup.tail")
    assert isinstance(tail, torch.nn.Conv2d)
    with torch.no_grad():
        torch.manual_seed(1)
        tail.weight.normal_(0, 0.05)  # an imperfect net: clean crops now cost something

    def loss(**kw: object) -> float:
        with torch.no_grad():
            return float(
                trainer._cleanup_step(
                    _cleanup_cfg(teacher_path, **kw), model, _photos(), 0, torch.device("cpu")
                )
            )

    assert loss(degrade_p=0.0, clean_weight=3.0) == pytest.approx(3 * loss(degrade_p=0.0), rel=1e-5)
    assert loss(degrade_p=1.0, clean_weight=3.0) == pytest.approx(loss(degrade_p=1.0), rel=1e-6)
    assert loss(degrade_p=0.0) > 0
