"""Loading and saving LIIF weights without ever executing pickled code.

Two formats are accepted:
- our own `.safetensors`, with the model spec (`{name, args}`) as JSON in the metadata key `liif_spec`;
- official LIIF `.pth` files (`{'model': {'name': 'liif', 'args': ..., 'sd': state_dict}}`), read with
  `torch.load(weights_only=True)`, which refuses any pickle that would construct arbitrary objects.

Everything else is refused with a `CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from viewer.errors import CheckpointError
from viewer.liif.liif import LIIF

SPEC_KEY = "liif_spec"
_SAFETENSORS_EXT = ".safetensors"


def _is_safetensors(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n < (100 << 20) and head[8:9] == b"{"


def read_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, torch.Tensor]]:
    """Return (spec, metadata, state_dict) of one of our safetensors files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: not a readable safetensors file (truncated or corrupt: {exc})"
        ) from None
    if SPEC_KEY not in meta:
        raise CheckpointError(
            f"{path}: safetensors file has no '{SPEC_KEY}' metadata, so its architecture is unknown"
        )
    try:
        spec = json.loads(meta[SPEC_KEY])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: the '{SPEC_KEY}' metadata is not valid JSON") from None
    return spec, meta, state


def _read_official(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported pickle content"
        raise CheckpointError(
            f"{path}: refused: the checkpoint contains pickled objects other than plain weights ({first[:160]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {str(exc)[:160]})"
        ) from None
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model, dict) or not {"name", "args", "sd"} <= set(model):
        raise CheckpointError(
            f"{path}: not a LIIF checkpoint (expected {{'model': {{'name', 'args', 'sd'}}}})"
        )
    spec = {"name": model["name"], "args": model["args"]}
    state = model["sd"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: the state dict does not hold tensors")
    return spec, state


def build_model(spec: Mapping[str, Any], *, source: str = "checkpoint") -> LIIF:
    """Construct an untrained LIIF from `{'name': 'liif', 'args': {...}}`, or raise CheckpointError."""
    if not isinstance(spec, Mapping) or spec.get("name") != "liif":
        raise CheckpointError(
            f"{source}: unsupported model {spec.get('name') if isinstance(spec, Mapping) else spec!r}; "
            "only 'liif' models are supported"
        )
    args = spec.get("args")
    if not isinstance(args, Mapping):
        raise CheckpointError(f"{source}: the model spec has no 'args'")
    allowed = {"encoder_spec", "imnet_spec", "local_ensemble", "feat_unfold", "cell_decode"}
    unknown = set(args) - allowed
    if unknown:
        raise CheckpointError(f"{source}: unknown LIIF arguments {sorted(unknown)}")
    try:
        return LIIF(**args)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: cannot build the architecture: {exc}") from None


def _apply_state(model: LIIF, state: Mapping[str, torch.Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(f"{source}: weights do not match the architecture: {'; '.join(parts)}")
    for key, ref in expected.items():
        got = state[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{source}: wrong shape for {key}: {tuple(got.shape)} in the file, {tuple(ref.shape)} expected"
            )
        if not got.is_floating_point():
            raise CheckpointError(f"{source}: {key} is not a floating-point tensor")
        if not bool(torch.isfinite(got).all()):
            raise CheckpointError(f"{source}: {key} contains NaN or infinite values")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> LIIF:
    """Load a LIIF model from our safetensors or an official `.pth`, in eval mode, on `device`."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such weights file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: the weights file is empty")
    if p.suffix == _SAFETENSORS_EXT or _is_safetensors(p):
        spec, _meta, state = read_safetensors(p)
    else:
        spec, state = _read_official(p)
    model = build_model(spec, source=str(p))
    _apply_state(model, state, str(p))
    return model.eval().to(device)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of one of our safetensors files, without loading its tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def save_safetensors(
    model: LIIF, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> None:
    """Write weights only (no optimizer state, no pickle) with the spec in metadata, atomically."""
    from safetensors.torch import save_file

    p = Path(path)
    meta = {SPEC_KEY: json.dumps(model.spec, sort_keys=True)}
    for k, v in (metadata or {}).items():
        meta[str(k)] = str(v)
    tensors = {
        k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in model.state_dict().items()
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
