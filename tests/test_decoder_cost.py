"""The decoder's multiply-adds per output pixel (`viewer.liif.cost`) and the `liif-viewer models` table."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from viewer.engine import weights as W
from viewer.liif.checkpoint import build_model, save_safetensors
from viewer.liif.cost import decoder_cost
from viewer.liif.liif import LIIF, make_liif
from viewer.liif.query import Decoder, ProjectionCache, ensemble_terms
from viewer.train.trainer import decoder_macs_per_pixel

REPO = Path(__file__).resolve().parents[1]


def _listed(model: LIIF, folder: Path, name: str) -> W.ModelInfo:
    folder.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, folder / f"{name}.safetensors", {"name": name, "quality": "not measured"})
    (info,) = [m for m in W.list_models([folder]) if m.name == name]
    return info


def test_a_tiny_models_count_matches_its_layer_sizes(tmp_path: Path) -> None:
    feats, h1, h2 = 8, 16, 12
    info = _listed(make_liif(n_feats=feats, hidden=(h1, h2)), tmp_path, "tiny")
    assert info.cost is not None
    unfolded = feats * 9  # 3x3 unfold
    in_dim = unfolded + 2 + 2  # + relative coordinate + cell
    assert info.cost.members == 4
    assert info.cost.paper_per_pixel == 4 * (in_dim * h1 + h1 * h2 + h2 * 3)
    # Here the unfolded part of the first layer is cached per latent; per pixel: coordinate, cell column.
    assert info.cost.per_latent == unfolded * h1
    assert info.cost.here_per_pixel == 4 * ((2 + 1) * h1 + h1 * h2 + h2 * 3)
    table = W.format_table([info])
    assert f"{4 * (in_dim * h1 + h1 * h2 + h2 * 3):,}" in table.splitlines()[1]


def test_the_query_options_change_the_count(tmp_path: Path) -> None:
    feats, hidden = 6, 10
    model = make_liif(
        n_feats=feats, hidden=(hidden,), local_ensemble=False, feat_unfold=False, cell_decode=False
    )
    info = _listed(model, tmp_path, "plain")
    assert info.cost is not None
    assert info.cost.members == 1
    assert info.cost.paper_per_pixel == (feats + 2) * hidden + hidden * 3
    assert info.cost.here_per_pixel == 2 * hidden + hidden * 3
    assert info.cost.per_latent == feats * hidden


def test_a_factored_layer_counts_as_the_paper_runs_it_and_as_the_query_folds_it() -> None:
    enc = {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 1, "n_feats": 4}}
    imnet = {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [20, 20], "ranks": [0, 5, 0]}}
    model = LIIF(enc, imnet)
    cost = decoder_cost(model.spec)
    assert cost.paper_per_pixel == decoder_macs_per_pixel(model)  # counted from the built layers
    assert cost.paper_per_member == 40 * 20 + 5 * (20 + 20) + 20 * 3
    assert cost.here_per_member == 3 * 20 + 20 * 20 + 20 * 3  # `Decoder` uses the equivalent full weight


class _Latents:
    def __init__(self, feat: torch.Tensor) -> None:
        self.feat = feat
        self.height, self.width = int(feat.shape[1]), int(feat.shape[2])
        self.device = feat.device

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        return self.feat[:, y0:y1, x0:x1]


def test_the_count_is_what_the_query_computes() -> None:
    """torch's own count of the matrix products of `ensemble_terms` (a render's query) and of the cached
    projection agrees with `decoder_cost`."""
    from torch.utils.flop_counter import FlopCounterMode

    model = make_liif(n_feats=8, hidden=(16, 12))
    cost = decoder_cost(model.spec)
    decoder = Decoder(model, torch.float32, torch.device("cpu"))
    decoder._fused = False  # oneDNN's fused linear+ReLU is invisible to the counter

    def addmm_inplace(
        self_shape: object, a: list[int], b: list[int], out_shape: object = None, **_: object
    ) -> int:
        return 2 * a[0] * a[1] * b[1]

    def flops(run: object) -> int:
        with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addmm_: addmm_inplace}) as fc:
            run()  # type: ignore[operator]
        return int(fc.get_total_flops())

    h, w = 20, 24
    latents = _Latents(torch.randn(8, h, w))  # held: the cache holds its source weakly
    cache = ProjectionCache(latents, decoder)
    assert flops(lambda: cache.box(0, h - 1, 0, w - 1)) == 2 * cost.per_latent * h * w
    gen = torch.Generator().manual_seed(0)
    cell = torch.tensor([2 / h / 3.5, 2 / w / 3.5])
    counts = {}
    for n in (100, 300):
        coord = torch.rand((n, 2), generator=gen) * 2 - 1
        counts[n] = flops(lambda c=coord: ensemble_terms(decoder, cache, c, cell))
    # Per pixel: the difference removes what a call computes once (the cell's projection).
    assert (counts[300] - counts[100]) == 2 * cost.here_per_pixel * 200


def test_the_manifest_spec_is_the_official_architecture() -> None:
    entry = W.load_manifest()[W.DEFAULT_MODEL]
    assert entry.liif_spec is not None
    cost = decoder_cost(entry.liif_spec)
    assert cost.paper_per_pixel == decoder_macs_per_pixel(build_model(entry.liif_spec))


@pytest.mark.weights
def test_the_manifest_spec_is_the_converted_files() -> None:
    from viewer.liif.checkpoint import read_metadata

    path = W.resolve_model_path(W.DEFAULT_MODEL)
    assert json.loads(read_metadata(path)["liif_spec"]) == W.load_manifest()[W.DEFAULT_MODEL].liif_spec


@pytest.mark.parametrize("spec", ["{", json.dumps({"name": "liif", "args": {"imnet_spec": 3}}), "[[[[]]]]"])
def test_an_unreadable_spec_lists_the_model_without_a_count(tmp_path: Path, spec: str) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file(
        {"w": np.zeros(2, np.float32)}, str(tmp_path / "odd.safetensors"), {"name": "odd", "liif_spec": spec}
    )
    (info,) = W.list_models([tmp_path])
    assert info.cost is None
    assert "?" in W.format_table([info]).splitlines()[1]


@pytest.mark.parametrize("long", [False, True])
def test_the_models_table_fits_100_columns(capsys: pytest.CaptureFixture[str], long: bool) -> None:
    assert W.cmd_models(argparse.Namespace(long=long)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    header = lines[0]
    for column in ("MODEL", "SIZE", "MACs/PX PAPER", "MACs/PX HERE", "AT x4", "STATUS"):
        assert column in header
    text = " ".join(" ".join(lines).split())
    for m in W.list_models():
        assert m.name in text and m.quality in text
        if long:
            assert m.architecture in text and m.licence in text


def test_a_long_name_keeps_the_table_narrow(tmp_path: Path) -> None:
    name = "a-custom-model-" + "x" * 120
    info = _listed(make_liif(), tmp_path, name)
    lines = W.format_table([info], long=True).splitlines()
    assert max(len(line) for line in lines) <= 100
    assert name in "".join(lines)  # wrapped, not cut


def test_listing_the_models_does_not_import_torch() -> None:
    code = (
        "import contextlib, io, sys\n"
        "from viewer.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['models', '--long']) == 0\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
