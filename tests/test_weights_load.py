"""Loading weights: every tensor checked as finite (in any float dtype) and taken as it is, no copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from viewer.errors import CheckpointError
from viewer.liif.checkpoint import SPEC_KEY, load_model, save_safetensors
from viewer.liif.liif import make_liif


def _tampered(tmp_path: Path, dtype: torch.dtype, value: float) -> Path:
    model = make_liif()
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    key = "imnet.layers.0.weight"
    bad = state[key].to(dtype)
    bad[0, 0] = value
    state[key] = bad
    path = tmp_path / f"bad-{str(dtype).split('.')[-1]}.safetensors"
    save_file(state, str(path), metadata={SPEC_KEY: json.dumps(model.spec)})
    return path


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_loading_refuses_a_non_finite_weight_in_any_float_dtype(
    tmp_path: Path, dtype: torch.dtype, value: float
) -> None:
    with pytest.raises(CheckpointError, match=r"imnet\.layers\.0\.weight contains NaN or infinite values"):
        load_model(_tampered(tmp_path, dtype, value))


def test_loaded_weights_are_the_files_own_and_independent(tmp_path: Path) -> None:
    """The model takes the file's tensors without copying them into fresh ones; two loads share nothing."""
    model = make_liif(hidden=(16, 8))
    save_safetensors(model, tmp_path / "m.safetensors")
    a = load_model(tmp_path / "m.safetensors")
    b = load_model(tmp_path / "m.safetensors")
    want = model.state_dict()
    for key, value in a.state_dict().items():
        assert value.dtype == torch.float32 and value.is_contiguous()
        assert torch.equal(value, want[key])
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    first = next(iter(want))
    assert torch.equal(b.state_dict()[first], want[first])
    assert not torch.equal(a.state_dict()[first], want[first])


def test_a_half_precision_file_loads_as_float32(tmp_path: Path) -> None:
    model = make_liif()
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "h.safetensors"), metadata={SPEC_KEY: json.dumps(model.spec)})
    loaded = load_model(tmp_path / "h.safetensors")
    for key, value in loaded.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, state[key].float())
