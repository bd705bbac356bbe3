"""Loading and saving LIIF weights without ever executing pickled code.

Two formats are accepted:
- our own `.safetensors`, with the model spec (`{name, args}`) as JSON in the metadata key `liif_spec`;
- official LIIF `.pth` files (`{'model': {'name': 'liif', 'args': ..., 'sd': state_dict}}`), read with
  `torch.load(weights_only=True)`, which refuses any pickle that would construct arbitrary objects.

Everything else is refused with a `CheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from viewer.errors import CheckpointError
from viewer.liif import mssnet
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
    except RecursionError:
        raise CheckpointError(f"{path}: invalid model spec: nested too deeply to read") from None
    return spec, meta, state


def _unpickling_reason(exc: BaseException) -> str:
    """The part of torch's long refusal that says what was refused, without its terminal escapes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    _, found, rest = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else text).splitlines() if line.strip()]
    first = lines[0].split(". ")[0].rstrip(".") if lines else "unsupported pickle content"
    return " ".join(first.split())[:160]


def _read_official(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    try:
        with warnings.catch_warnings():  # torch's remarks on pickle protocols would break the one line
            warnings.simplefilter("ignore")
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused: the checkpoint contains pickled objects other than plain weights "
            f"({_unpickling_reason(exc)})"
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


# ------------------------------------------------------------------------------------------------------
# Checking a spec before anything is built
# ------------------------------------------------------------------------------------------------------

#: How deeply specs may nest (liif > cleaned > edsr-baseline is 3 levels; a crafted file may nest 200k).
MAX_SPEC_DEPTH = 8
#: Parameters a checkpoint may describe: the official RDN-LIIF has 22 million; this is 2 GB in fp32.
MAX_PARAMETERS = 500_000_000


class _Spec:
    """Checks one component's `args`, with the source named in every error."""

    def __init__(self, source: str, where: str, args: Mapping[str, Any]) -> None:
        self.source, self.where, self.args = source, where, args

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.source}: invalid model spec: {self.where} {what}")

    def whole(self, key: str, default: int | None, low: int, high: int) -> int | None:
        value = self.args.get(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{key} must be a whole number, not {type(value).__name__}")
        if not low <= value <= high:
            raise self.fail(f"{key} = {value} is out of range ({low} to {high})")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.args.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(f"{key} must be a finite number")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.args.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, not {type(value).__name__}")
        return value

    def wholes(self, key: str, low: int, high: int, max_len: int, *, required: bool) -> list[int] | None:
        value = self.args.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, list | tuple) or not 1 <= len(value) <= max_len:
            raise self.fail(f"{key} must be a list of 1 to {max_len} whole numbers")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise self.fail(f"{key} entries must be whole numbers from {low} to {high}, got {v!r}")
        return list(value)

    def only(self, *keys: str) -> None:
        unknown = sorted(str(k) for k in set(self.args) - set(keys))
        if unknown:
            raise self.fail(f"has unknown arguments {unknown}")


def _component(spec: object, source: str, where: str, depth: int) -> tuple[str, _Spec]:
    if depth > MAX_SPEC_DEPTH:
        raise CheckpointError(f"{source}: invalid model spec: nested more than {MAX_SPEC_DEPTH} levels deep")
    if not isinstance(spec, Mapping):
        raise CheckpointError(
            f"{source}: invalid model spec: {where} must be {{'name': ..., 'args': {{...}}}}, "
            f"not {type(spec).__name__}"
        )
    name = spec.get("name")
    args = spec.get("args", {})
    if args is None:
        args = {}
    if not isinstance(name, str) or not isinstance(args, Mapping) or set(spec) - {"name", "args"}:
        raise CheckpointError(
            f"{source}: invalid model spec: {where} must be {{'name': ..., 'args': {{...}}}}"
        )
    if not all(isinstance(k, str) for k in args):
        raise CheckpointError(f"{source}: invalid model spec: {where} argument names must be strings")
    return name, _Spec(source, f"{where} ({name})", args)


def _conv_params(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def _encoder(spec: object, source: str, depth: int) -> tuple[int, int]:
    """Check an encoder spec; returns (its output channels, its parameter count)."""
    name, a = _component(spec, source, "encoder_spec", depth)
    if name == "edsr-baseline":
        a.only("n_resblocks", "n_feats", "res_scale", "scale", "no_upsampling", "rgb_range")
        n = a.whole("n_resblocks", 16, 0, 256) or 0
        f = a.whole("n_feats", 64, 1, 1024) or 1
        a.number("res_scale", 1.0)
        a.number("rgb_range", 1.0)
        a.whole("scale", 2, 1, 64)
        a.flag("no_upsampling", False)
        return f, _conv_params(3, f, 3) + (2 * n + 1) * _conv_params(f, f, 3) + 2 * _conv_params(3, 3, 1)
    if name == "rdn":
        a.only("G0", "RDNkSize", "RDNconfig", "scale", "no_upsampling", "depth", "n_layers", "growth")
        g0 = a.whole("G0", 64, 1, 1024) or 1
        k = a.whole("RDNkSize", 3, 1, 7) or 1
        if k % 2 == 0:
            raise a.fail(f"RDNkSize = {k} must be odd")
        config = a.args.get("RDNconfig", "B")
        if config not in ("A", "B"):
            raise a.fail(f"RDNconfig must be 'A' or 'B', not {config!r}")
        a.whole("scale", 2, 1, 64)
        a.flag("no_upsampling", False)
        d0, c0, g_0 = {"A": (20, 6, 32), "B": (16, 8, 64)}[config]
        d = a.whole("depth", None, 1, 256) or d0
        c = a.whole("n_layers", None, 1, 64) or c0
        g = a.whole("growth", None, 1, 1024) or g_0
        block = sum(_conv_params(g0 + i * g, g, k) for i in range(c)) + _conv_params(g0 + c * g, g0, 1)
        head = _conv_params(3, g0, k) + _conv_params(g0, g0, k)
        return g0, head + d * block + _conv_params(d * g0, g0, 1) + _conv_params(g0, g0, k)
    if name == "cleaned":
        a.only("encoder_spec", "n_feats", "n_resblocks")
        f = a.whole("n_feats", 32, 1, 1024) or 1
        n = a.whole("n_resblocks", 8, 0, 256) or 0
        out, inner = _encoder(a.args.get("encoder_spec"), source, depth + 1)
        return out, inner + 2 * _conv_params(3, f, 3) + 2 * n * _conv_params(f, f, 3)
    if name == "deblurred":
        a.only("encoder_spec", "tuned_encoder", *mssnet.DEBLUR_ARGS)
        tuned = a.flag("tuned_encoder", False)
        net: dict[str, Any] = {
            "wf": a.whole("wf", 20, 1, 256),
            "scale": a.whole("scale", 40, 0, 256),
            "vscale": a.whole("vscale", 40, 0, 256),
            "stages": a.wholes("stages", 1, 6, 4, required=False) or [1, 2, 3],
            "levels": a.whole("levels", 3, 1, 4),
            "blocks": a.whole("blocks", 2, 1, 8),
        }
        if a.args.get("halo") is not None:
            net["halo"] = a.whole("halo", 0, 0, 4096)
        if a.args.get("gate_lo") is not None or a.args.get("gate_hi") is not None:
            lo, hi = a.number("gate_lo", math.nan), a.number("gate_hi", math.nan)
            if not 0.0 <= lo < hi <= 1.0:
                raise a.fail(f"blur gate [{lo}, {hi}] must satisfy 0 <= gate_lo < gate_hi <= 1")
            net["gate_lo"], net["gate_hi"] = lo, hi
        if a.args.get("photo_lo") is not None or a.args.get("photo_hi") is not None:
            lo, hi = a.number("photo_lo", math.nan), a.number("photo_hi", math.nan)
            if not 0.0 <= lo < hi <= 1.0:
                raise a.fail(f"photo gate [{lo}, {hi}] must satisfy 0 <= photo_lo < photo_hi <= 1")
            net["photo_lo"], net["photo_hi"] = lo, hi
        out, inner = _encoder(a.args.get("encoder_spec"), source, depth + 1)
        return out, inner * (2 if tuned else 1) + mssnet.count_parameters(net)
    raise CheckpointError(
        f"{source}: invalid model spec: unknown encoder {name!r} "
        "(known: cleaned, deblurred, edsr-baseline, rdn)"
    )


def check_spec(spec: object, *, source: str = "checkpoint") -> None:
    """Check a LIIF spec's types and sizes before anything is built: one `CheckpointError` line for a
    wrong type, an unknown component or argument, a negative or huge size, or nesting a file may use to
    exhaust the stack. Only the components of the default registry are accepted."""
    name, a = _component(spec, source, "the model", 1)
    if name != "liif":
        raise CheckpointError(f"{source}: unsupported model {name!r}; only 'liif' models are supported")
    a.only("encoder_spec", "imnet_spec", "local_ensemble", "feat_unfold", "cell_decode")
    unfold = a.flag("feat_unfold", True)
    cell = a.flag("cell_decode", True)
    a.flag("local_ensemble", True)
    feat, params = _encoder(a.args.get("encoder_spec"), source, 2)
    mname, m = _component(a.args.get("imnet_spec"), source, "imnet_spec", 2)
    if mname not in ("mlp", "lm-mlp"):
        raise CheckpointError(
            f"{source}: invalid model spec: the decoder must be an 'mlp' or an 'lm-mlp', not {mname!r}"
        )
    feat_in = feat * (9 if unfold else 1)
    query_dim = 2 + (2 if cell else 0)
    if mname == "lm-mlp":
        m.only(
            "in_dim",
            "out_dim",
            "hidden_list",
            "hyper_hidden",
            "query_dim",
            "hyper_blocks",
            "coord_weights",
            "coord_quadratic",
        )
        m.whole("in_dim", 0, 0, 1 << 20)
        m.whole("query_dim", query_dim, query_dim, query_dim)
        if m.whole("out_dim", None, 3, 3) is None:
            raise m.fail("needs out_dim = 3")
        widths = m.wholes("hidden_list", 1, 16384, 32, required=True) or []
        hyper = m.whole("hyper_hidden", 256, 1, 16384) or 1
        blocks = m.whole("hyper_blocks", 0, 0, 64) or 0
        linear, quadratic = m.flag("coord_weights", False), m.flag("coord_quadratic", False)
        if quadratic and not linear:
            raise m.fail("coord_quadratic needs coord_weights")
        coord = (5 if quadratic else 2) * widths[0] if widths and linear else 0
        params += feat_in * hyper + hyper + (hyper + 1) * (sum(widths) + coord) + query_dim * widths[0]
        params += 2 * blocks * (hyper * hyper + hyper)
        params += sum(widths[i] * widths[i + 1] for i in range(len(widths) - 1)) + 3 * widths[-1] + 3
    else:
        m.only("in_dim", "out_dim", "hidden_list", "ranks")
        m.whole("in_dim", 0, 0, 1 << 20)
        if m.whole("out_dim", None, 3, 3) is None:
            raise m.fail("needs out_dim = 3")
        hidden = m.wholes("hidden_list", 1, 16384, 32, required=True) or []
        dims = [feat_in + query_dim, *hidden, 3]
        ranks = m.wholes("ranks", 0, 16384, 33, required=False)
        if ranks is not None and len(ranks) != len(dims) - 1:
            raise m.fail(f"ranks needs one entry per layer ({len(dims) - 1}), got {len(ranks)}")
        params += sum(dims[i] * dims[i + 1] + dims[i + 1] for i in range(len(dims) - 1))
    if params > MAX_PARAMETERS:
        raise CheckpointError(
            f"{source}: invalid model spec: {params:,} parameters, more than the {MAX_PARAMETERS:,} "
            "this app accepts (a LIIF model has a few million)"
        )


def build_model(spec: Mapping[str, Any], *, source: str = "checkpoint") -> LIIF:
    """Construct an untrained LIIF from `{'name': 'liif', 'args': {...}}` after `check_spec`, or raise
    CheckpointError."""
    check_spec(spec, source=source)
    try:
        return LIIF(**spec["args"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
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
        if not _all_finite(got):
            raise CheckpointError(f"{source}: {key} contains NaN or infinite values")
    # assign: the module takes the loaded tensors as they are, instead of copying them into its own.
    model.load_state_dict({k: v.float().contiguous() for k, v in state.items()}, strict=True, assign=True)


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every value of `t` is finite; through numpy (one thread) where its dtype allows.

    Loading checks about 80 tensors. Each of torch's multi-threaded kernels waits at its end for every
    thread, and on a busy 2-core machine a descheduled thread made the checks and copies of a load take
    2.7 s instead of 25 ms.
    """
    try:
        return bool(np.isfinite(t.detach().cpu().numpy()).all())
    except (TypeError, RuntimeError):  # bfloat16 has no numpy dtype
        return bool(torch.isfinite(t).all())


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
