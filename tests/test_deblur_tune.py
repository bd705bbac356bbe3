"""The deblur model's tuned encoder (recipe deblur-tune): which photos it encodes, its spec, its training
and its tiling. Random weights, small sizes, CPU."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from viewer.errors import ArgumentError, CheckpointError
from viewer.liif.checkpoint import SPEC_KEY, check_spec, load_model, read_metadata, save_safetensors
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.mssnet import DeblurredEncoder
from viewer.train import trainer
from viewer.train.combine import combine
from viewer.train.options import TrainConfig

TINY = {"wf": 4, "scale": 4, "vscale": 4, "stages": [1, 2], "levels": 2, "blocks": 1, "halo": 8}


def _deblur_model(seed: int = 0, tuned: bool = True, **kw: object) -> LIIF:
    """A tiny deblur model whose deblur tail and tuned encoder are random (so neither is a no-op)."""
    base = make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=seed)
    args = {"encoder_spec": base.spec["args"]["encoder_spec"], **TINY, **kw}
    if tuned:
        args["tuned_encoder"] = True
    model = LIIF({"name": "deblurred", "args": args}, base.spec["args"]["imnet_spec"])
    model.imnet.load_state_dict(base.imnet.state_dict())
    enc = model.encoder
    assert isinstance(enc, DeblurredEncoder)
    enc.inner.load_state_dict(base.encoder.state_dict())
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        enc.deblur.tail.weight.normal_(0.0, 0.3)
    return model.eval()


def _tune_config(tmp_path: Path, teacher: LIIF, steps: int, train_deblur: bool = False) -> TrainConfig:
    """A short deblur-tune run on 32-pixel crops, behind `teacher` (saved under `tmp_path`)."""
    teacher_path = tmp_path / "teacher.safetensors"
    save_safetensors(teacher, teacher_path)
    return TrainConfig(
        recipe="deblur-tune",
        name="tiny-tuned",
        steps=steps,
        batch=4,
        crop=32,
        points=256,
        lr=2e-3,
        degrade_p=1.0,
        teacher=str(teacher_path),
        train_deblur=train_deblur,
        log_every=1000,
        save_every=1000,
    )


def test_the_tuned_encoder_takes_only_the_photos_the_gate_opens() -> None:
    model = _deblur_model(photo_lo=0.4, photo_hi=0.5)
    enc = model.encoder
    assert isinstance(enc, DeblurredEncoder) and enc.tuned is not None
    x = torch.randn(1, 3, 32, 40)
    with torch.no_grad():
        sharp = model.encode(x, blur_share=0.3)
        assert torch.equal(sharp, enc.inner(x))  # gate shut: the official encoder, on the photo as it is
        y = enc.deblur(x, [0.6])
        full = model.encode(x, blur_share=0.6)
        assert torch.equal(full, enc.tuned(y))  # gate open: the tuned encoder on the deblurred photo
        assert (full - enc.inner(y)).abs().max() > 1e-3  # and it is another encoder
        half = model.encode(x, blur_share=0.45)
        y_half = enc.deblur(x, [0.45])
        mixed = enc.inner(y_half) + 0.5 * (enc.tuned(y_half) - enc.inner(y_half))
        assert torch.allclose(half, mixed, atol=1e-5)  # part-open: the features mixed by the gate's weight


def test_without_a_photo_gate_every_photo_takes_the_tuned_encoder() -> None:
    model = _deblur_model(seed=3)
    enc = model.encoder
    assert isinstance(enc, DeblurredEncoder) and enc.tuned is not None
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(model.encode(x), enc.tuned(enc.deblur(x)))


def test_the_spec_round_trips_and_a_file_without_the_tuned_weights_is_refused(tmp_path: Path) -> None:
    model = _deblur_model(seed=5, photo_lo=0.4, photo_hi=0.5)
    path = tmp_path / "t.safetensors"
    save_safetensors(model, path)
    again = load_model(path)
    assert again.spec == model.spec
    x = torch.randn(1, 3, 24, 28)
    with torch.no_grad():
        assert torch.equal(again.encode(x, blur_share=0.7), model.encode(x, blur_share=0.7))
    spec = model.spec
    args = {**spec["args"]["encoder_spec"]["args"], "tuned_encoder": "yes"}
    with pytest.raises(CheckpointError, match="true or false"):
        check_spec({**spec, "args": {**spec["args"], "encoder_spec": {"name": "deblurred", "args": args}}})
    plain = _deblur_model(seed=5, tuned=False, photo_lo=0.4, photo_hi=0.5)
    plain_path = tmp_path / "plain.safetensors"
    save_safetensors(plain, plain_path)
    forged = tmp_path / "forged.safetensors"
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(plain_path), "pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    meta[SPEC_KEY] = meta[SPEC_KEY].replace('"photo_hi"', '"tuned_encoder": true, "photo_hi"')
    assert "tuned_encoder" in meta[SPEC_KEY]
    save_file(tensors, str(forged), metadata=meta)
    with pytest.raises(CheckpointError):
        load_model(forged)


def test_deblur_tune_trains_only_the_tuned_encoder_from_the_teachers_and_exports(
    tmp_path: Path, disc_photos: list[np.ndarray]
) -> None:
    teacher = _deblur_model(seed=7, tuned=False)
    cfg = _tune_config(tmp_path, teacher, steps=30)
    start = trainer.build_student(cfg, teacher)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():  # the tuned copy starts as the encoder itself: the teacher's output exactly
        assert torch.equal(start.encode(x), teacher.encode(x))
    model, losses = trainer.train(cfg, tmp_path / "w", images=disc_photos, log=lambda m: None)
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:3]), losses
    state, before = model.state_dict(), teacher.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items())  # deblur pass, encoder, decoder kept
    tuned = [k for k in state if k.startswith("encoder.tuned.")]
    assert tuned and any(not torch.equal(state[k], before["encoder.inner." + k[14:]]) for k in tuned)
    out = tmp_path / "tuned.safetensors"
    trainer.export(model, cfg, out, display="Deblur + upscale")
    assert "tuned encoder for blurred photos" in read_metadata(out)["architecture"]
    again = load_model(out)
    with torch.no_grad():
        assert torch.equal(again.encode(x), model.encode(x))
    with pytest.raises(ArgumentError, match="deblur model"):
        trainer.build_student(cfg, make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=1))


def test_deblur_tune_with_train_deblur_also_trains_the_deblurring_network(
    tmp_path: Path, disc_photos: list[np.ndarray]
) -> None:
    teacher = _deblur_model(seed=5, tuned=False)
    cfg = _tune_config(tmp_path, teacher, steps=8, train_deblur=True)
    start = trainer.build_student(cfg, teacher)
    trains = {k for k, p in start.named_parameters() if p.requires_grad}
    assert any(k.startswith("encoder.deblur.") for k in trains) and any(
        k.startswith("encoder.tuned.") for k in trains
    )
    assert all(k.startswith(("encoder.deblur.", "encoder.tuned.")) for k in trains)  # encoder, decoder kept
    model, _ = trainer.train(cfg, tmp_path / "w", images=disc_photos, log=lambda m: None)
    state, before = model.state_dict(), teacher.state_dict()
    moved = [k for k in before if k.startswith("encoder.deblur.") and not torch.equal(state[k], before[k])]
    assert moved  # the deblurring network learned too
    assert all(torch.equal(state[k], v) for k, v in before.items() if not k.startswith("encoder.deblur."))


@pytest.mark.parametrize("option", [["--train-deblur"], ["--tuned-from", "models/liif-deblur.safetensors"]])
def test_train_deblur_and_tuned_from_are_options_of_deblur_tune_only(
    tmp_path: Path, option: list[str]
) -> None:
    from viewer.train.options import build_parser

    args = build_parser().parse_args(
        ["--recipe", "fast", "--name", "x", "--out", str(tmp_path / "x.safetensors"), *option]
    )
    with pytest.raises(ArgumentError, match=f"{option[0]} is an option of recipe deblur-tune"):
        trainer.cmd_train(args)


def test_tuned_from_starts_the_tuned_copy_from_another_models_tuned_encoder(tmp_path: Path) -> None:
    """A new deblurring network (the teacher, without a tuned encoder) with the tuned encoder trained
    before behind another one: the copy starts as that tuned encoder, not as the official one."""
    teacher = _deblur_model(seed=7, tuned=False)
    before = _deblur_model(seed=9, tuned=True)
    enc_before = before.encoder
    assert isinstance(enc_before, DeblurredEncoder) and enc_before.tuned is not None
    with torch.no_grad():
        for p in enc_before.tuned.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not a copy of the official encoder
    path = tmp_path / "before.safetensors"
    save_safetensors(before, path)
    cfg = replace(_tune_config(tmp_path, teacher, steps=1), tuned_from=str(path))
    start = trainer.build_student(cfg, teacher)
    enc = start.encoder
    assert isinstance(enc, DeblurredEncoder) and enc.tuned is not None
    for k, v in enc_before.tuned.state_dict().items():
        assert torch.equal(enc.tuned.state_dict()[k], v), k
    for k, v in teacher.state_dict().items():  # the teacher's deblurring network, encoder and decoder
        assert torch.equal(start.state_dict()[k], v), k
    plain = tmp_path / "plain.safetensors"
    save_safetensors(teacher, plain)
    with pytest.raises(ArgumentError, match="no tuned encoder"):
        trainer.build_student(replace(cfg, tuned_from=str(plain)), teacher)
    wider = make_liif(n_feats=12, n_resblocks=1, hidden=(16,), seed=1)
    other = _deblur_model(seed=9, tuned=True)
    other_spec = json.loads(json.dumps(other.spec))
    other_spec["args"]["encoder_spec"]["args"]["encoder_spec"] = wider.spec["args"]["encoder_spec"]
    misfit = tmp_path / "misfit.safetensors"
    save_safetensors(LIIF(**other_spec["args"]), misfit)
    with pytest.raises(ArgumentError, match="does not fit"):
        trainer.build_student(replace(cfg, tuned_from=str(misfit)), teacher)


def test_combine_keeps_the_tuned_encoder() -> None:
    tuned = _deblur_model(seed=9, photo_lo=0.4, photo_hi=0.5)
    other = make_liif(n_feats=8, n_resblocks=1, hidden=(12,), seed=4)
    enc = tuned.encoder
    assert isinstance(enc, DeblurredEncoder)
    other.encoder.load_state_dict(enc.inner.state_dict())
    both = combine(tuned, other)
    x = torch.randn(1, 3, 24, 24)
    with torch.no_grad():
        assert torch.equal(both.encode(x, blur_share=0.8), tuned.encode(x, blur_share=0.8))


def test_engine_tiles_equal_the_whole_render_with_the_tuned_encoder() -> None:
    """Tiles of a blurred photo, each encoded with the photo's estimate, render what a whole encode does."""
    from viewer.engine.render import Engine

    model = _deblur_model(seed=2, photo_lo=0.0, photo_hi=0.01, halo=None)  # open on any photo; full halo
    engine = Engine(model, "cpu", "fp32")
    rng = np.random.default_rng(1)
    photo = (rng.random((150, 170, 3)) * 255).astype(np.uint8)
    whole = engine.render_scale(engine.encode(photo), 340, 300)
    side = 16 + 2 * model.receptive_radius
    small = Engine(model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 8 * 4)
    store = small.open_store(photo, tile=16, dtype=torch.float32)
    tiled = small.render_scale(store, 340, 300)
    assert store.encoded > 50
    assert np.abs(tiled - whole).max() < 1e-4


def test_the_shipped_model_keeps_the_official_encoder_for_sharp_photos_and_tunes_blurred_ones() -> None:
    """models/liif-deblur: a photo its gate reads as sharp gets the official model's latents exactly; a
    blurred one gets the tuned encoder's, on the deblurred photo."""
    from viewer.engine.degrade import convolve, disc_kernel
    from viewer.engine.features import FeatureMap
    from viewer.engine.render import Engine
    from viewer.liif.mssnet import photo_blur_share

    deblur = Engine.from_name("liif-deblur", "cpu", "fp32")
    official = Engine.from_name("edsr-baseline-liif", "cpu", "fp32")
    enc = deblur.model.encoder
    assert isinstance(enc, DeblurredEncoder) and enc.tuned is not None
    rng = np.random.default_rng(3)
    sharp = np.kron(rng.random((12, 12, 3)), np.ones((8, 8, 1))).astype(np.float32)  # 96 x 96 blocks
    blurred = convolve(sharp, disc_kernel(2.0))
    photos = {n: (p * 255).round().astype(np.uint8) for n, p in (("sharp", sharp), ("blurred", blurred))}
    assert photo_blur_share(photos["sharp"]) < 0.41 < 0.51 < photo_blur_share(photos["blurred"])
    mine, theirs = deblur.encode(photos["sharp"]), official.encode(photos["sharp"])
    assert isinstance(mine, FeatureMap) and isinstance(theirs, FeatureMap)
    assert torch.equal(mine.feat, theirs.feat)
    x = torch.from_numpy(photos["blurred"]).permute(2, 0, 1)[None].float() / 255.0
    share = photo_blur_share(photos["blurred"])
    with torch.no_grad():
        y = enc.deblur((x - 0.5) / 0.5, [share])
        expected = enc.tuned(y)
        untuned = enc.inner(y)
    got = deblur.encode(photos["blurred"])
    assert isinstance(got, FeatureMap)
    assert torch.allclose(got.feat, expected[0], atol=1e-4)
    assert (got.feat - untuned[0]).abs().max() > 1e-3


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_conv_autocast_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, fast_bf16: bool) -> None:
    """bf16 autocast for training convolutions only on a CPU with native bf16; never on another device."""
    from viewer.train import query

    monkeypatch.setattr(query, "cpu_has_fast_bf16", lambda: fast_bf16)
    with query.conv_autocast(torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu") is fast_bf16
        y = torch.nn.functional.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
        assert y.dtype == (torch.bfloat16 if fast_bf16 else torch.float32)
    assert not torch.is_autocast_enabled("cpu")
    with query.conv_autocast(torch.device("meta")):
        assert not torch.is_autocast_enabled("cpu")


def test_a_tune_step_under_bf16_autocast_stays_near_the_fp32_step(
    tmp_path: Path, disc_photos: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deblur-tune step's loss and gradients are the fp32 step's within bf16's rounding, and both
    recipes' networks come back from `train` in the default layout (as a loaded file's are)."""
    from viewer.train import query

    teacher = _deblur_model(seed=9, tuned=False)
    cfg = _tune_config(tmp_path, teacher, steps=1)
    model = trainer.build_student(cfg, teacher).train()
    model.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    found = {}
    for fast_bf16 in (False, True):
        monkeypatch.setattr(query, "cpu_has_fast_bf16", lambda fast=fast_bf16: fast)
        model.zero_grad()
        loss = trainer._deblur_tune_step(cfg, model, disc_photos, 0, torch.device("cpu"))
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        found[fast_bf16] = (loss.item(), grad)
    (loss32, grad32), (loss16, grad16) = found[False], found[True]
    assert loss16 == pytest.approx(loss32, rel=0.02)
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.98
    trained, _ = trainer.train(cfg, tmp_path / "w", images=disc_photos, log=lambda m: None)
    assert all(p.is_contiguous() for p in trained.parameters())
