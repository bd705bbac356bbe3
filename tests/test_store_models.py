"""Every real model (the official weights and each model we ship, the old-photo clean-up networks
included): a lazily encoded store, tile by tile, equals the whole-photo encode, seams included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from viewer import paths
from viewer.engine.render import Engine, SourceRect
from viewer.engine.weights import DEFAULT_MODEL, resolve_model_path
from viewer.liif.checkpoint import load_model

SHIPPED = sorted(paths.models_dir().glob("*.safetensors"))


def _official() -> Path:
    """The official weights, as the README's setup fetches them (`liif-viewer fetch-weights`)."""
    return resolve_model_path(DEFAULT_MODEL)


MODELS = [pytest.param(p, id=p.stem) for p in SHIPPED] + [pytest.param(None, id=DEFAULT_MODEL)]


@pytest.mark.slow
@pytest.mark.parametrize("path", MODELS)
def test_tiles_of_a_real_model_equal_its_whole_encode(path: Path | None) -> None:
    model = load_model(path if path is not None else _official())
    with Image.open(paths.sample_photo()) as im:
        pixels = np.asarray(im.convert("RGB"))[300:420, 100:236].copy()  # 120 x 136, a detailed part
    # A small encode budget cuts each pass into pieces too, so both kinds of seam are crossed.
    engine = Engine(model, "cpu", "fp32", encode_budget_bytes=24 << 20)
    assert engine.encode_tile_size() < 120
    store = engine.open_store(pixels, tile=32)
    for box in [(64, 120, 0, 40), (0, 20, 100, 136), (10, 90, 30, 110)]:
        store.prefetch(box)
    with torch.no_grad():
        inp = (torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None] - 0.5) / 0.5
        whole = model.encode(inp)[0]
    got = store.crop(0, 120, 0, 136)
    scale = float(whole.abs().max())
    assert torch.allclose(got, whole, atol=2e-5 * scale, rtol=1e-4), float((got - whole).abs().max())
    # And what a person sees: a render through the store equals one through the dense map within 1/255.
    rect = SourceRect(20.5, 30.25, 90.0, 60.0)
    dense = engine.render(engine.encode(pixels), rect, 180, 120)
    lazy = engine.render(engine.open_store(pixels, tile=32), rect, 180, 120)
    assert float(np.abs(dense - lazy).max()) <= 1 / 255
