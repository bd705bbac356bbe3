"""Combining one model's encoder (with its clean-up network) with another's decoder: the combined model
answers exactly as the decoder's model would on the cleaned input, and pairs that do not fit are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from viewer.errors import ArgumentError
from viewer.liif.checkpoint import build_model, load_model, read_metadata, save_safetensors
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.models import CleanedEncoder, CleanupNet
from viewer.liif.reference import query_rgb
from viewer.train.combine import combine, main
from viewer.train.trainer import decoder_macs_per_pixel


def _cleanup(model: LIIF) -> CleanupNet:
    enc = model.encoder
    assert isinstance(enc, CleanedEncoder)
    return enc.cleanup


def _official() -> LIIF:
    return make_liif(n_feats=8, n_resblocks=1, hidden=(32, 32), seed=1)


def _cleaned(official: LIIF) -> LIIF:
    """The official stand-in behind a clean-up network whose output is not the identity."""
    spec = json.loads(json.dumps(official.spec))
    inner = spec["args"]["encoder_spec"]
    spec["args"]["encoder_spec"] = {
        "name": "cleaned",
        "args": {"encoder_spec": inner, "n_feats": 4, "n_resblocks": 1},
    }
    model = build_model(spec)
    state = {f"encoder.inner.{k}": v for k, v in official.encoder.state_dict().items()}
    state.update({f"imnet.{k}": v for k, v in official.imnet.state_dict().items()})
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert missing and all(k.startswith("encoder.cleanup.") for k in missing)
    with torch.no_grad():
        torch.manual_seed(3)
        _cleanup(model).tail.weight.normal_(0, 0.1)
    return model.eval()


def _small_decoder(official: LIIF, seed: int = 2) -> LIIF:
    """A model with the official stand-in's encoder and its own, smaller decoder (as liif-lm)."""
    model = make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=seed)
    model.encoder.load_state_dict(official.encoder.state_dict())
    return model


def test_combined_model_is_the_small_decoder_on_the_cleaned_input() -> None:
    official = _official()
    old, fast = _cleaned(official), _small_decoder(official)
    both = combine(old, fast)
    assert both.spec["args"]["encoder_spec"]["name"] == "cleaned"
    assert both.spec["args"]["imnet_spec"] == fast.spec["args"]["imnet_spec"]
    inp = torch.rand(1, 3, 14, 17) * 2 - 1
    coord = torch.rand(1, 50, 2) * 2 - 1
    cell = torch.full((1, 50, 2), 2 / 40)
    with torch.no_grad():
        cleaned = _cleanup(old)(inp)
        assert not torch.allclose(cleaned, inp)
        want = query_rgb(fast, fast.encode(cleaned), coord, cell)
        got = query_rgb(both, both.encode(inp), coord, cell)
        plain = query_rgb(fast, fast.encode(inp), coord, cell)
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_a_decoder_trained_on_other_features_is_refused() -> None:
    official = _official()
    other = _small_decoder(official)
    with torch.no_grad():
        next(other.encoder.parameters()).add_(1e-3)
    with pytest.raises(ArgumentError, match="another encoder"):
        combine(_cleaned(official), other)


def test_a_decoder_with_other_query_settings_is_refused() -> None:
    official = _official()
    plain = make_liif(n_feats=8, n_resblocks=1, hidden=(16,), seed=2, local_ensemble=False)
    plain.encoder.load_state_dict(official.encoder.state_dict())
    with pytest.raises(ArgumentError, match="local_ensemble"):
        combine(_cleaned(official), plain)


def test_the_command_writes_a_documented_file_and_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    official = _official()
    enc_path, dec_path = tmp_path / "old.safetensors", tmp_path / "fast.safetensors"
    save_safetensors(_cleaned(official), enc_path, {"name": "old", "training": json.dumps({"steps": 5})})
    save_safetensors(
        _small_decoder(official), dec_path, {"name": "fast", "training": json.dumps({"steps": 7})}
    )
    out = tmp_path / "both.safetensors"
    args = [
        "--encoder",
        str(enc_path),
        "--decoder",
        str(dec_path),
        "--name",
        "both",
        "--display-name",
        "Both",
    ]
    assert (
        main([*args, "--out", str(tmp_path / "missing" / "x.safetensors"), "--encoder", str(tmp_path / "no")])
        == 2
    )
    assert "no such weights file" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "both.pth")]) == 2
    assert main([*args, "--out", str(out), "--quality", "measured"]) == 0
    meta = read_metadata(out)
    assert (meta["name"], meta["display_name"], meta["quality"]) == ("both", "Both", "measured")
    assert meta["architecture"] == "EDSR-baseline-LIIF behind a clean-up CNN (1 blocks of 4 channels) (16)"
    parts = json.loads(meta["training"])["combined"]
    assert parts["encoder"]["training"] == {"steps": 5} and parts["decoder"]["training"] == {"steps": 7}
    assert int(meta["decoder_macs_per_pixel"]) == decoder_macs_per_pixel(load_model(dec_path))
    assert decoder_macs_per_pixel(load_model(dec_path)) < decoder_macs_per_pixel(load_model(enc_path))
    model = load_model(out)
    want = combine(load_model(enc_path), load_model(dec_path)).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "both.safetensors",
        "fast.safetensors",
        "old.safetensors",
    ]


@pytest.mark.parametrize(
    ("combined", "encoder", "decoder"),
    [
        ("liif-oldphoto-lm", "liif-oldphoto", "liif-lm"),
        ("liif-deblur-lm", "liif-deblur", "liif-lm"),
    ],
)
def test_the_shipped_combination_is_in_step_with_its_two_sources(
    combined: str, encoder: str, decoder: str
) -> None:
    """A shipped combination must be exactly its encoder model's encoder (clean-up or deblur pass included)
    with its decoder model's decoder: after either is retrained, combine them again (the command is in the
    combination's card)."""
    from viewer import paths

    models = paths.models_dir()
    both = load_model(models / f"{combined}.safetensors").state_dict()
    enc = load_model(models / f"{encoder}.safetensors").state_dict()
    dec = load_model(models / f"{decoder}.safetensors").state_dict()
    want = {k: v for k, v in enc.items() if k.startswith("encoder.")}
    want.update({k: v for k, v in dec.items() if k.startswith("imnet.")})
    assert both.keys() == want.keys()
    assert all(torch.equal(both[k], want[k]) for k in want)


def test_the_shipped_deblur_lm_encodes_as_liif_deblur_and_shows_a_sharp_photo_as_liif_lm() -> None:
    """liif-deblur-lm keeps liif-deblur's photo gate and deblur pass in front of the encoder and liif-lm's
    decoder after it: a blurred photo's latents are liif-deblur's (not liif-lm's), and a sharp photo, which
    the gate leaves alone, renders exactly as liif-lm renders it."""
    import numpy as np
    from test_photo_gate import _blurred, _texture

    from viewer.engine.render import Engine

    engines = {
        n: Engine.from_name(n, device="cpu", precision="fp32")
        for n in ("liif-deblur-lm", "liif-deblur", "liif-lm")
    }
    sharp, blurred = _texture(48, 64), _blurred(_texture(48, 64))
    feats = {n: e.encode(blurred).feat for n, e in engines.items()}
    assert torch.equal(feats["liif-deblur-lm"], feats["liif-deblur"])
    assert (feats["liif-deblur-lm"] - feats["liif-lm"]).abs().max() > 1e-2
    shown = {
        n: engines[n].render_scale(engines[n].encode(sharp), 128, 96) for n in ("liif-deblur-lm", "liif-lm")
    }
    assert np.array_equal(shown["liif-deblur-lm"], shown["liif-lm"])
