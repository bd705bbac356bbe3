"""The models this project trains and ships in `models/`: each loads safely, says what `liif-viewer models`
needs, has a model card, and beats bicubic clearly on Set5 x4 (the full tables come from `liif-viewer eval`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from viewer import paths
from viewer.engine.evaluate import evaluate
from viewer.engine.render import Engine
from viewer.liif.checkpoint import load_model, read_metadata
from viewer.liif.cost import decoder_cost
from viewer.liif.liif import LIIF, make_liif
from viewer.train.trainer import decoder_macs_per_pixel

SHIPPED = sorted(paths.models_dir().glob("*.safetensors"))
MAX_BYTES = 40_000_000
"""A bound on a shipped file: the largest is liif-deblur (38.3 MB), the official model behind the deblur
network (MSSNet-small, 6.76 M parameters) with a tuned copy of its encoder for blurred photos."""


def _official_architecture() -> LIIF:
    """The paper's EDSR-baseline-LIIF (decoder 256-256-256-256), randomly initialised: for counting."""
    enc = {"name": "edsr-baseline", "args": {"no_upsampling": True}}
    return LIIF(enc, {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256] * 4}})


def test_models_are_shipped() -> None:
    names = {read_metadata(p).get("name") for p in SHIPPED}
    assert "liif-lm" in names, names


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_model_is_small_documented_and_loads(path: Path) -> None:
    assert path.stat().st_size <= MAX_BYTES
    meta = read_metadata(path)
    for key in ("name", "display_name", "architecture", "source", "licence", "quality", "training"):
        assert meta.get(key), key
    card = path.with_suffix(".md")
    assert card.is_file(), f"{path.name} has no model card"
    text = card.read_text()
    assert "PSNR" in text and "multiply-adds" in text and "icence" in text
    model = load_model(path)
    assert int(meta["decoder_macs_per_pixel"]) == decoder_macs_per_pixel(model)


def test_latent_modulated_models_need_thirty_times_fewer_decoder_operations_at_x4() -> None:
    """liif-lm's cost goal: at x4, its per-pixel work plus its per-latent hypernetwork shared by the 16
    pixels of each source pixel, at least 30x fewer multiply-adds than the official decoder as its paper
    runs it."""
    official = decoder_cost(_official_architecture().spec).paper_per_pixel
    modulated = [p for p in SHIPPED if decoder_cost(load_model(p).spec).modulated]
    assert {read_metadata(p).get("name") for p in modulated} >= {"liif-lm"}
    for path in modulated:
        ratio = official / decoder_cost(load_model(path).spec).per_pixel_at(4)
        assert ratio >= 30.0, (path.name, ratio)


@pytest.mark.slow
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_model_beats_bicubic_on_set5_x4(benchmark_root: Path, path: Path) -> None:
    engine = Engine(load_model(path), "cpu", "fp32")
    ours = evaluate(engine, "Set5", 4, root=benchmark_root)
    bicubic = evaluate(None, "Set5", 4, root=benchmark_root)
    assert ours > bicubic + 1.5, (ours, bicubic)


def seam_ratio(model: LIIF, zoom: int = 24) -> float:
    """Mean colour step across latent-cell borders over the mean step inside cells, far past 1:1.

    A model that zooms continuously scores about 1; one whose output jumps at every source pixel (a decoder
    without LIIF's local ensemble, for instance) shows a visible grid and scores well above.
    """
    from PIL import Image

    from viewer.engine.render import SourceRect

    img = np.asarray(Image.open(paths.sample_photo()).convert("RGB"), dtype=np.float32) / 255
    engine = Engine(model, "cpu", "fp32")
    fm = engine.encode(img[352:400, 128:176])  # a detailed 48x48 patch of the sample
    out = engine.render(fm, SourceRect(16, 16, 12, 12), 12 * zoom, 12 * zoom)
    steps = np.abs(np.diff(out, axis=1)).mean(axis=(0, 2))
    border = (np.arange(steps.size) % zoom) == zoom - 1
    return float(steps[border].mean() / steps[~border].mean())


def test_the_seam_measure_tells_a_grid_from_a_continuous_zoom() -> None:
    with_ensemble = make_liif(n_feats=8, hidden=(16,), seed=3)
    without = make_liif(n_feats=8, hidden=(16,), seed=3, local_ensemble=False)
    assert seam_ratio(with_ensemble) < 1.5 < 3.0 < seam_ratio(without)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_model_zooms_without_a_grid(path: Path) -> None:
    torch.manual_seed(0)
    assert seam_ratio(load_model(path)) < 1.5
