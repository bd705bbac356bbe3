"""Checkpoints: official format, our safetensors, and everything that must be refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from viewer.engine.render import Engine
from viewer.errors import CheckpointError
from viewer.liif.checkpoint import load_model, read_metadata, save_safetensors
from viewer.liif.liif import make_liif
from viewer.liif.models import Registry


def _official(model, path: Path) -> None:
    """Save in the official LIIF layout, optimizer state included, as train_liif.py does."""
    sd = model.state_dict()
    torch.save(
        {
            "model": {"name": "liif", "args": model.spec["args"], "sd": sd},
            "optimizer": {"name": "adam", "args": {"lr": 1e-4}, "sd": {}},
            "epoch": 3,
        },
        path,
    )


def _render(model) -> np.ndarray:
    engine = Engine(model, "cpu", "fp32")
    img = np.random.default_rng(0).random((10, 12, 3), dtype=np.float32)
    return engine.render_scale(engine.encode(img), 31, 27)


@pytest.mark.parametrize("encoder", ["edsr-baseline", "rdn"])
@pytest.mark.parametrize("hidden", [(16,), (32, 8, 16)])
def test_official_and_safetensors_round_trip(tmp_path: Path, encoder: str, hidden: tuple[int, ...]) -> None:
    model = make_liif(encoder, n_resblocks=2, n_feats=8, hidden=hidden, seed=11)
    _official(model, tmp_path / "m.pth")
    from_pth = load_model(tmp_path / "m.pth")
    save_safetensors(from_pth, tmp_path / "m.safetensors", {"name": "tiny", "licence": "test"})
    from_st = load_model(tmp_path / "m.safetensors")
    expected = _render(model)
    assert np.array_equal(_render(from_pth), expected)
    assert np.array_equal(_render(from_st), expected)
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["name"] == "tiny" and "liif_spec" in meta
    assert from_st.spec == model.spec


def test_switch_flags_survive_round_trip(tmp_path: Path) -> None:
    model = make_liif(hidden=(16,), local_ensemble=False, cell_decode=False, seed=2)
    save_safetensors(model, tmp_path / "m.safetensors")
    back = load_model(tmp_path / "m.safetensors")
    assert (back.local_ensemble, back.feat_unfold, back.cell_decode) == (False, True, False)
    assert np.array_equal(_render(back), _render(model))


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    model = make_liif()
    payload = {
        "model": {"name": "liif", "args": model.spec["args"], "sd": model.state_dict()},
        "evil": _Exploit(marker),
    }
    torch.save(payload, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refused"):
        load_model(tmp_path / "evil.pth")
    assert not marker.exists()
    # A bare pickle (no zip container) is refused too.
    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump(_Exploit(marker), fh)
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_wrong_shapes_and_keys_are_refused(tmp_path: Path) -> None:
    model = make_liif(hidden=(16,))
    sd = model.state_dict()
    sd["imnet.layers.0.weight"] = torch.zeros(17, sd["imnet.layers.0.weight"].shape[1])
    torch.save({"model": {"name": "liif", "args": model.spec["args"], "sd": sd}}, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"wrong shape for imnet\.layers\.0\.weight"):
        load_model(tmp_path / "shape.pth")
    sd = model.state_dict()
    del sd["encoder.head.0.bias"]
    torch.save({"model": {"name": "liif", "args": model.spec["args"], "sd": sd}}, tmp_path / "keys.pth")
    with pytest.raises(CheckpointError, match="missing 1 keys"):
        load_model(tmp_path / "keys.pth")
    sd = model.state_dict()
    sd["encoder.head.0.bias"] = torch.full_like(sd["encoder.head.0.bias"], float("nan"))
    torch.save({"model": {"name": "liif", "args": model.spec["args"], "sd": sd}}, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="NaN"):
        load_model(tmp_path / "nan.pth")


def test_truncated_empty_and_foreign_files_are_refused(tmp_path: Path) -> None:
    model = make_liif()
    save_safetensors(model, tmp_path / "ok.safetensors")
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    _official(model, tmp_path / "ok.pth")
    pth = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(pth[: len(pth) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("hello")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pth")
    for name in ["cut.safetensors", "cut.pth", "empty.pth", "text.pth", "other.pth", "absent.pth"]:
        with pytest.raises(CheckpointError) as info:
            load_model(tmp_path / name)
        assert name in str(info.value)


def test_registry_rejects_duplicates_and_unknown_names() -> None:
    reg = Registry()

    @reg.register("thing")
    def make_thing() -> torch.nn.Module:
        return torch.nn.Identity()

    with pytest.raises(KeyError, match="already registered"):
        reg.register("thing")(make_thing)
    with pytest.raises(KeyError, match="unknown component"):
        reg.make({"name": "other"})
    assert isinstance(reg.make({"name": "thing"}), torch.nn.Identity)
