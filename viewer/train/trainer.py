"""`liif-viewer train`: reproducible training of the project's models, resumable, on CPU or CUDA.

Recipes:
- `fast`: a small decoder on the official (frozen) encoder, distilled from the official decoder at random
  coordinates and cells over x1..x30 plus an L1 loss on ground-truth pixels. The frozen encoder's features
  and the teacher's answers are computed once into a pool of crops (`pool_*.npz` in the work folder), so
  each step only trains the small decoder.
- `oldphoto`: the official model fine-tuned end to end on inputs damaged as old scans are
  (`viewer.train.degrade`), against clean targets, with an L1 loss.
- `cleanup`: the official model, frozen, behind a small residual clean-up network
  (`models.CleanupNet`) that learns to turn damaged low-resolution inputs into the clean bicubic ones the
  official model was trained on (L1 or L2 in low-resolution space, so a step costs no encoder pass). The
  crops not damaged (1 - `--degrade-p`) stay clean, and it learns to leave those alone (`--clean-weight`).
- `deblur`: as `cleanup`, with an MSSNet (`viewer.liif.mssnet`) in front of the frozen official model,
  learning to turn inputs blurred by blur-v1 (`degrade.random_blur`) into the sharp ones.
- `scratch`: any LIIF (EDSR-baseline or RDN encoder) trained from random weights with LIIF's protocol.

All follow LIIF's protocol (48x48 LR crops, scale from U(1, 4), 2,304 HR pixels per crop, L1, Adam). The
batch of step k is drawn from a generator seeded with (seed, k), and the state (weights, optimiser,
step) is saved every `--save-every` steps as safetensors + JSON, never pickle: a run stopped at any point
resumes with `--resume` to the same result as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from viewer.engine.degrade import random_blur
from viewer.errors import ArgumentError
from viewer.liif.liif import LIIF
from viewer.liif.lm import ModulatedMLP
from viewer.liif.models import MLP, CleanedEncoder, LowRankLinear, encoder_chain
from viewer.liif.mssnet import DeblurredEncoder
from viewer.train import data as tdata
from viewer.train.grow import inherit_decoder_layers, start_from
from viewer.train.options import RECIPES, TrainConfig
from viewer.train.query import conv_autocast, train_query

Log = Callable[[str], None]


def _rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, step])


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Cosine decay from `lr` to `lr * lr_min_ratio` over the run."""
    t = min(1.0, step / max(1, cfg.steps))
    lo = cfg.lr * cfg.lr_min_ratio
    return lo + 0.5 * (cfg.lr - lo) * (1.0 + math.cos(math.pi * t))


def _to_t(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=torch.float32)


def _image_batch(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1] as the networks take them, normalised to [-1, 1]; channels-last on a
    CPU, where the deblur recipes keep their networks so (oneDNN's native layout, see `train`)."""
    x = (_to_t(a, device) - 0.5) / 0.5
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


# ------------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------------


def load_teacher(name_or_path: str) -> LIIF:
    """The teacher (or starting point): a registry name or weights file, loaded safely on the CPU."""
    from viewer.engine.weights import resolve_model_path
    from viewer.liif.checkpoint import load_model

    return load_model(resolve_model_path(name_or_path), "cpu")


def build_student(cfg: TrainConfig, teacher: LIIF | None) -> LIIF:
    """The model a recipe trains, initialised as the recipe says (seeded)."""
    torch.manual_seed(cfg.seed)
    if cfg.recipe == "cleanup":
        assert teacher is not None
        return _cleaned_student(cfg, teacher)
    if cfg.recipe == "deblur":
        assert teacher is not None
        return _deblurred_student(cfg, teacher)
    if cfg.recipe == "deblur-tune":
        assert teacher is not None
        return _tuned_student(cfg, teacher)
    if cfg.recipe == "oldphoto":
        assert teacher is not None
        model = LIIF(**teacher.spec["args"])
        model.load_state_dict(teacher.state_dict())
        return model
    if cfg.recipe == "fast":
        assert teacher is not None
        enc_spec = teacher.spec["args"]["encoder_spec"]
    elif cfg.encoder == "edsr-baseline":
        enc_spec = {"name": "edsr-baseline", "args": {"no_upsampling": True}}
    elif cfg.encoder == "rdn":
        enc_spec = {"name": "rdn", "args": {"no_upsampling": True}}
    else:
        raise ArgumentError(f"unknown encoder '{cfg.encoder}'; use edsr-baseline or rdn")
    imnet: dict[str, Any] = {"name": "mlp", "args": {"out_dim": 3, "hidden_list": list(cfg.hidden)}}
    if cfg.hyper_hidden:
        if cfg.first_rank:
            raise ArgumentError("--first-rank applies to an mlp decoder, not with --hyper-hidden")
        imnet = {"name": "lm-mlp", "args": {**imnet["args"], "hyper_hidden": cfg.hyper_hidden}}
        if cfg.hyper_blocks:
            imnet["args"]["hyper_blocks"] = cfg.hyper_blocks
        if cfg.coord_weights or cfg.coord_quadratic:
            imnet["args"]["coord_weights"] = True
        if cfg.coord_quadratic:
            imnet["args"]["coord_quadratic"] = True
    elif cfg.hyper_blocks or cfg.coord_weights or cfg.coord_quadratic:
        raise ArgumentError("--hyper-blocks, --coord-weights and --coord-quadratic need --hyper-hidden")
    if cfg.first_rank:
        imnet["args"]["ranks"] = [cfg.first_rank] + [0] * len(cfg.hidden)
    model = LIIF(enc_spec, imnet, cfg.local_ensemble, cfg.feat_unfold, cfg.cell_decode)
    if cfg.recipe == "fast":
        assert teacher is not None
        model.encoder.load_state_dict(teacher.encoder.state_dict())
        for p in model.encoder.parameters():
            p.requires_grad_(False)
        if isinstance(model.imnet, ModulatedMLP):
            _hyper_from_teacher(model.imnet, teacher)
    if cfg.init:
        start_from(model, cfg.init)
    return model


@torch.no_grad()
def _hyper_from_teacher(imnet: ModulatedMLP, teacher: LIIF) -> None:
    """Start the hypernetwork's first layer as the feature part of the teacher's first layer, when the
    widths match: its hidden units are then the teacher's first-layer units at the latent's centre."""
    theirs = teacher.imnet
    if not isinstance(theirs, MLP):
        return
    first = theirs.linears()[0]
    w = first.weight[:, : imnet.feat_in]
    if tuple(w.shape) == tuple(imnet.hyper_in.weight.shape):
        imnet.hyper_in.weight.copy_(w)
        imnet.hyper_in.bias.copy_(first.bias)


def _cleaned_student(cfg: TrainConfig, teacher: LIIF) -> LIIF:
    """The teacher behind a new clean-up network; only the clean-up network trains."""
    args = dict(teacher.spec["args"])
    args["encoder_spec"] = {
        "name": "cleaned",
        "args": {
            "encoder_spec": args["encoder_spec"],
            "n_feats": cfg.cleanup_width,
            "n_resblocks": cfg.cleanup_blocks,
        },
    }
    return _behind_teacher(LIIF(**args), teacher, cfg, "encoder.cleanup.")


def _behind_teacher(model: LIIF, teacher: LIIF, cfg: TrainConfig, trainable: str) -> LIIF:
    """`model` (a pre-pass network in front of the teacher's encoder) with the teacher's encoder and decoder
    weights, started from `--init` if given; only the parameters under `trainable` train."""
    enc = model.encoder
    assert isinstance(enc, CleanedEncoder | DeblurredEncoder)
    enc.inner.load_state_dict(teacher.encoder.state_dict())
    model.imnet.load_state_dict(teacher.imnet.state_dict())
    if cfg.init:
        start_from(model, cfg.init)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable))
    return model


def deblur_spec(cfg: TrainConfig, encoder_spec: dict[str, Any]) -> dict[str, Any]:
    """The `deblurred` encoder spec of recipe deblur's settings."""
    net = list(cfg.deblur_net)
    if len(net) < 4 or min(net) < 0:
        raise ArgumentError("--deblur-net needs wf, scale, vscale and at least one stage count")
    args: dict[str, Any] = {
        "encoder_spec": encoder_spec,
        "wf": net[0],
        "scale": net[1],
        "vscale": net[2],
        "stages": net[3:],
    }
    if cfg.deblur_halo >= 0:
        args["halo"] = cfg.deblur_halo
    for gate, option, keys in (
        (cfg.deblur_gate, "--deblur-gate", ("gate_lo", "gate_hi")),
        (cfg.deblur_photo_gate, "--deblur-photo-gate", ("photo_lo", "photo_hi")),
    ):
        if gate:
            # The local gate takes a third number: the offset of its directional share (`BlurGate`).
            most = 3 if option == "--deblur-gate" else 2
            if not 2 <= len(gate) <= most or not 0.0 <= gate[0] < gate[1] <= 1.0:
                form = "LO,HI[,OFFSET]" if most == 3 else "LO,HI"
                raise ArgumentError(f"{option} needs {form} with 0 <= LO < HI <= 1, got {gate}")
            args[keys[0]], args[keys[1]] = float(gate[0]), float(gate[1])
            if len(gate) == 3:
                args["gate_directional"] = float(gate[2])
    return {"name": "deblurred", "args": args}


def _deblurred_student(cfg: TrainConfig, teacher: LIIF) -> LIIF:
    """The teacher behind a new MSSNet; only the MSSNet trains."""
    args = dict(teacher.spec["args"])
    args["encoder_spec"] = deblur_spec(cfg, args["encoder_spec"])
    return _behind_teacher(LIIF(**args), teacher, cfg, "encoder.deblur.")


def _tuned_student(cfg: TrainConfig, teacher: LIIF) -> LIIF:
    """A deblur model (`--teacher`, e.g. liif-deblur) with a tuned copy of its encoder for the photos its
    photo gate opens (`mssnet.DeblurredEncoder`); that copy trains, started as the encoder itself, and with
    `train_deblur` the deblurring network too (its gates have no weights)."""
    enc_spec = teacher.spec["args"]["encoder_spec"]
    if enc_spec.get("name") != "deblurred" or not isinstance(teacher.encoder, DeblurredEncoder):
        raise ArgumentError("recipe deblur-tune needs a deblur model as --teacher (e.g. liif-deblur)")
    args = copy.deepcopy(teacher.spec["args"])
    args["encoder_spec"]["args"]["tuned_encoder"] = True
    model = LIIF(**args)
    enc = model.encoder
    assert isinstance(enc, DeblurredEncoder) and enc.tuned is not None
    theirs = teacher.state_dict()
    missing, unexpected = model.load_state_dict(theirs, strict=False)
    if unexpected or any(not k.startswith("encoder.tuned.") for k in missing):
        raise ArgumentError("--teacher's weights do not fit its own spec")
    if cfg.tuned_from:
        enc.tuned.load_state_dict(_tuned_encoder_of(cfg.tuned_from, enc.tuned))
    elif missing:  # else the teacher has a tuned encoder already, and training goes on from it
        enc.tuned.load_state_dict(teacher.encoder.inner.state_dict())
    if cfg.init:
        start_from(model, cfg.init)
    trainable = ("encoder.tuned.", "encoder.deblur.") if cfg.train_deblur else ("encoder.tuned.",)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable))
    return model


def _tuned_encoder_of(path: str, like: nn.Module) -> dict[str, torch.Tensor]:
    """The tuned encoder's weights of the deblur model at `path` (`--tuned-from`), checked to fit `like`."""
    from viewer.liif.checkpoint import load_model

    other = load_model(Path(path), "cpu")
    tuned = other.encoder.tuned if isinstance(other.encoder, DeblurredEncoder) else None
    if tuned is None:
        raise ArgumentError(f"--tuned-from {path}: it has no tuned encoder (a deblur-tune model has one)")
    state = tuned.state_dict()
    mine = like.state_dict()
    if state.keys() != mine.keys() or any(state[k].shape != v.shape for k, v in mine.items()):
        raise ArgumentError(f"--tuned-from {path}: its tuned encoder does not fit this model's encoder")
    return dict(state)


def decoder_macs_per_pixel(model: LIIF) -> int:
    """Decoder multiply-adds per output pixel as the paper runs it: per query times ensemble members."""
    return model.decoder_macs_per_query() * (4 if model.local_ensemble else 1)


# ------------------------------------------------------------------------------------------------------
# State: safetensors + JSON, never pickle
# ------------------------------------------------------------------------------------------------------


def save_state(work: Path, cfg: TrainConfig, model: LIIF, opt: torch.optim.Optimizer, step: int) -> None:
    """Write weights, optimiser moments and the step atomically into `work`."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(float(val))
            tensors[f"opt.{idx}.{key}"] = t.detach().cpu().contiguous()
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / "state.safetensors.part"
    save_file(tensors, str(tmp))
    os.replace(tmp, work / "state.safetensors")
    meta = {"step": step, "config": asdict(cfg), "param_groups": sd["param_groups"]}
    (work / "state.json.part").write_text(json.dumps(meta, indent=1))
    os.replace(work / "state.json.part", work / "state.json")


_RESUMABLE_CHANGES = frozenset(
    {"name", "note", "save_every", "log_every", "deblur_halo", "deblur_gate", "deblur_photo_gate"}
)
"""The only settings a resumed run may change: they label or report on the run, or (the deblur halo and
gates) are what `--export-now` writes into a finished run's spec. Any other one (the loss, its weights, the
data, the schedule) would silently continue a different run than the one saved."""


def load_state(work: Path, cfg: TrainConfig, model: LIIF, opt: torch.optim.Optimizer) -> int:
    """Restore a saved run into `model` and `opt`; returns the step to continue from (0 if none)."""
    from safetensors.torch import load_file

    if not (work / "state.json").is_file() or not (work / "state.safetensors").is_file():
        return 0
    meta = json.loads((work / "state.json").read_text())
    saved = meta["config"]
    now = json.loads(json.dumps(asdict(cfg)))  # tuples as lists, as they were saved
    default = json.loads(json.dumps(asdict(TrainConfig(recipe=cfg.recipe, name=cfg.name))))
    for key, value in now.items():
        # A setting the saved run predates had its default then (each new option's default keeps the
        # old behaviour).
        was = saved.get(key, default[key])
        if key not in _RESUMABLE_CHANGES and was != value:
            raise ArgumentError(
                f"{work}: the saved run has {key}={was!r}, not {value!r}; "
                "use another --work folder or the same settings"
            )
    tensors = load_file(str(work / "state.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"])


# ------------------------------------------------------------------------------------------------------
# The distillation pool (recipe `fast`)
# ------------------------------------------------------------------------------------------------------

_POOL_CHUNK = 200


@torch.no_grad()
def build_pool(
    cfg: TrainConfig, teacher: LIIF, images: Sequence[np.ndarray], work: Path, device: torch.device, log: Log
) -> dict[str, np.ndarray]:
    """Encode `cfg.pool` crops once and record the teacher's answers; chunks on disk make it resumable."""
    teacher = teacher.to(device).eval()
    n_chunks = math.ceil(cfg.pool / _POOL_CHUNK)
    t0 = time.perf_counter()
    built = 0  # chunks built by this run (the ETA counts these only)
    for c in range(n_chunks):
        path = work / f"pool_{c:03d}.npz"
        if path.is_file():
            continue
        rng = _rng(cfg.seed, c, stream=1)
        n = min(_POOL_CHUNK, cfg.pool - c * _POOL_CHUNK)
        b = tdata.make_batch(
            images,
            rng,
            n,
            n_points=cfg.points,
            shrink_p=cfg.pool_shrink,
            graphics_p=cfg.pool_graphics,
            text_p=cfg.pool_text,
        )
        rc, rcell = tdata.random_queries(rng, n, cfg.distill_points, scale_range=cfg.distill_scales)
        feats, t_gt, t_rnd = [], [], []
        for s in range(0, n, 8):
            inp = (_to_t(b.lr[s : s + 8], device) - 0.5) / 0.5
            feat = teacher.encode(inp)
            t_gt.append(
                train_query(
                    teacher, feat, _to_t(b.coord[s : s + 8], device), _to_t(b.cell[s : s + 8], device)
                )
            )
            t_rnd.append(
                train_query(teacher, feat, _to_t(rc[s : s + 8], device), _to_t(rcell[s : s + 8], device))
            )
            feats.append(feat.half())
        np.savez(
            work / f"pool_{c:03d}.tmp.npz",
            feat=torch.cat(feats).cpu().numpy(),
            coord=b.coord,
            cell=b.cell,
            rgb=(b.rgb - 0.5) / 0.5,
            t_gt=torch.cat(t_gt).cpu().numpy(),
            rcoord=rc,
            rcell=rcell,
            t_rnd=torch.cat(t_rnd).cpu().numpy(),
        )
        os.replace(work / f"pool_{c:03d}.tmp.npz", path)
        done, built = c + 1, built + 1
        eta = (time.perf_counter() - t0) / built * (n_chunks - done)
        log(f"pool: {min(cfg.pool, done * _POOL_CHUNK)}/{cfg.pool} crops encoded ({eta:.0f} s left)")
    parts: dict[str, list[np.ndarray]] = {}
    for c in range(n_chunks):
        with np.load(work / f"pool_{c:03d}.npz", allow_pickle=False) as z:
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


# ------------------------------------------------------------------------------------------------------
# Steps
# ------------------------------------------------------------------------------------------------------


def _fast_step(
    cfg: TrainConfig, model: LIIF, pool: dict[str, np.ndarray], step: int, device: torch.device
) -> torch.Tensor:
    rng = _rng(cfg.seed, step)
    pick = np.sort(rng.choice(len(pool["feat"]), size=cfg.batch, replace=False))

    def subset(key: str, n: int, sel: np.ndarray) -> torch.Tensor:
        return _to_t(np.take_along_axis(pool[key][pick], sel[..., None], axis=1), device)

    stored = pool["coord"].shape[1]
    n = min(cfg.step_points, stored)
    n_rnd = min(n if cfg.random_points < 0 else cfg.random_points, pool["rcoord"].shape[1])
    sel_gt = rng.permuted(np.tile(np.arange(stored), (cfg.batch, 1)), axis=1)[:, :n]
    sel_rnd = rng.permuted(np.tile(np.arange(pool["rcoord"].shape[1]), (cfg.batch, 1)), axis=1)[:, :n_rnd]
    feat = _to_t(pool["feat"][pick], device)
    coord = torch.cat((subset("coord", n, sel_gt), subset("rcoord", n_rnd, sel_rnd)), dim=1)
    cell = torch.cat((subset("cell", n, sel_gt), subset("rcell", n_rnd, sel_rnd)), dim=1)
    pred = train_query(model, feat, coord, cell)
    teacher = torch.cat((subset("t_gt", n, sel_gt), subset("t_rnd", n_rnd, sel_rnd)), dim=1)
    gt = subset("rgb", n, sel_gt)
    dist = F.mse_loss if cfg.loss == "l2" else F.l1_loss
    return cfg.gt_weight * dist(pred[:, :n], gt) + dist(pred, teacher)


def _cleanup_step(
    cfg: TrainConfig, model: LIIF, images: Sequence[np.ndarray], step: int, device: torch.device
) -> torch.Tensor:
    enc = model.encoder
    assert isinstance(enc, CleanedEncoder)
    b = tdata.make_cleanup_batch(
        images, _rng(cfg.seed, step), cfg.batch, lr_size=cfg.crop, degrade_p=cfg.degrade_p
    )
    out = enc.cleanup((_to_t(b.damaged, device) - 0.5) / 0.5)
    err = out - (_to_t(b.clean, device) - 0.5) / 0.5
    per_crop = (err.square() if cfg.loss == "l2" else err.abs()).mean(dim=(1, 2, 3))
    weight = torch.where(torch.from_numpy(b.was_damaged).to(device), 1.0, cfg.clean_weight)
    return (weight * per_crop).mean()


def _deblur_step(
    cfg: TrainConfig, model: LIIF, images: Sequence[np.ndarray], step: int, device: torch.device
) -> torch.Tensor:
    enc = model.encoder
    assert isinstance(enc, DeblurredEncoder)
    batch, crop, scales = cfg.batch, cfg.crop, (1.0, 4.0)
    if cfg.dense_share > 0 and _rng(cfg.seed, step, stream=2).random() < cfg.dense_share:
        crop, scales = cfg.dense_crop, cfg.dense_scale
        batch = cfg.dense_batch or max(1, round(cfg.batch * (cfg.crop / cfg.dense_crop) ** 2))
    b = tdata.make_cleanup_batch(
        images,
        _rng(cfg.seed, step),
        batch,
        lr_size=crop,
        scale_min=scales[0],
        scale_max=scales[1],
        degrade_p=cfg.degrade_p,
        kernels=("bicubic",),
        damage=random_blur,
    )
    with conv_autocast(device):
        out = enc.deblur(_image_batch(b.damaged, device)).float()
    err = out - (_to_t(b.clean, device) - 0.5) / 0.5
    per_crop = (err.square() if cfg.loss == "l2" else err.abs()).mean(dim=(1, 2, 3))
    weight = torch.where(torch.from_numpy(b.was_damaged).to(device), 1.0, cfg.clean_weight)
    return (weight * per_crop).mean()


def _deblur_tune_step(
    cfg: TrainConfig, model: LIIF, images: Sequence[np.ndarray], step: int, device: torch.device
) -> torch.Tensor:
    """Recipe deblur-tune: crops of `crop` LR pixels (scale U(1, 4)), blurred by blur-v1's training blur
    with probability `degrade_p`, through the frozen deblur pass and gates into the tuned encoder and the
    frozen decoder, against the sharp HR pixels. A crop the photo gate leaves shut gives the tuned encoder
    no gradient (such a photo keeps the official encoder), as the viewer runs it."""
    rng = _rng(cfg.seed, step)
    parts = []
    for _ in range(cfg.batch):
        image = images[int(rng.integers(0, len(images)))]
        blurred = rng.random() < cfg.degrade_p
        parts.append(
            tdata.make_sample(
                image, rng, lr_size=cfg.crop, n_points=cfg.points, degrade=random_blur if blurred else None
            )
        )
    lr, coord, cell, rgb = (np.stack(p) for p in zip(*parts, strict=True))
    with conv_autocast(device):
        feat = model.encode(_image_batch(lr, device)).float()
    pred = train_query(model, feat, _to_t(coord, device), _to_t(cell, device))
    err = pred - (_to_t(rgb, device) - 0.5) / 0.5
    return (err.square() if cfg.loss == "l2" else err.abs()).mean()


def _online_step(
    cfg: TrainConfig, model: LIIF, images: Sequence[np.ndarray], step: int, device: torch.device
) -> torch.Tensor:
    rng = _rng(cfg.seed, step)
    if cfg.recipe == "oldphoto":
        b = tdata.make_batch(
            images,
            rng,
            cfg.batch,
            n_points=cfg.points,
            kernels=("bicubic", "bilinear", "area"),
            degrade_p=cfg.degrade_p,
        )
    else:
        b = tdata.make_batch(images, rng, cfg.batch, n_points=cfg.points)
    feat = model.encode((_to_t(b.lr, device) - 0.5) / 0.5)
    pred = train_query(model, feat, _to_t(b.coord, device), _to_t(b.cell, device))
    return F.l1_loss(pred, (_to_t(b.rgb, device) - 0.5) / 0.5)


# ------------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    work: Path,
    *,
    device: torch.device | None = None,
    data_dirs: Sequence[Path] | None = None,
    images: Sequence[np.ndarray] | None = None,
    resume: bool = True,
    log: Log = print,
    stop_after: int | None = None,
) -> tuple[LIIF, list[float]]:
    """Run (or continue) a recipe; returns the model and the loss of each step run in this call.

    `stop_after` ends this call after that many steps (the state is saved), as a time limit would.
    """
    if cfg.recipe not in RECIPES:
        raise ArgumentError(f"unknown recipe '{cfg.recipe}'; use one of {', '.join(RECIPES)}")
    dev = device or torch.device("cpu")
    work.mkdir(parents=True, exist_ok=True)
    imgs = list(images) if images is not None else tdata.load_images(data_dirs or tdata.default_train_dirs())
    teacher = load_teacher(cfg.teacher) if cfg.recipe in TEACHER_RECIPES else None
    model = build_student(cfg, teacher).to(dev)
    if cfg.recipe in ("deblur", "deblur-tune") and dev.type == "cpu":
        # oneDNN's native layout: with bf16 autocast (`conv_autocast`) a deblur step trains 2 to 4 times
        # as fast as in fp32 with the default layout on a CPU with AMX. The saved weights are contiguous,
        # and the model is returned in the default layout.
        model.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    start = load_state(work, cfg, model, opt) if resume else 0
    if start:
        log(f"resuming {cfg.name} at step {start}/{cfg.steps} from {work}")
    pool = None
    if cfg.recipe == "fast" and start < cfg.steps:
        assert teacher is not None
        pool = build_pool(cfg, teacher, imgs, work, dev, log)
        if cfg.inherit_layers and start == 0:
            sample = _to_t(pool["feat"][: min(64, len(pool["feat"]))], dev)
            n = inherit_decoder_layers(model, teacher.to(dev), sample)
            log(f"started {n} decoder layer(s) from the teacher")
    model.train()
    if cfg.recipe == "fast":
        model.encoder.eval()
    losses: list[float] = []
    t0 = time.perf_counter()
    window: list[float] = []
    step = start
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        if pool is not None:
            loss = _fast_step(cfg, model, pool, step, dev)
        elif cfg.recipe == "cleanup":
            loss = _cleanup_step(cfg, model, imgs, step, dev)
        elif cfg.recipe == "deblur":
            loss = _deblur_step(cfg, model, imgs, step, dev)
        elif cfg.recipe == "deblur-tune":
            loss = _deblur_tune_step(cfg, model, imgs, step, dev)
        else:
            loss = _online_step(cfg, model, imgs, step, dev)
        opt.zero_grad(set_to_none=True)
        if (
            loss.requires_grad
        ):  # deblur-tune: False when the photo gate left every crop to the official encoder
            loss.backward()
            opt.step()
        step += 1
        value = float(loss.detach())
        losses.append(value)
        window.append(value)
        if step % cfg.log_every == 0 or step == cfg.steps:
            rate = (time.perf_counter() - t0) / len(losses)
            log(
                f"step {step}/{cfg.steps}  loss {np.mean(window):.5f}  lr {lr_at(cfg, step):.2e}  "
                f"{rate:.2f} s/step  ({rate * (cfg.steps - step) / 60:.1f} min left)"
            )
            with (work / "log.csv").open("a") as fh:
                fh.write(f"{step},{np.mean(window):.6f}\n")
            window = []
        if step % cfg.save_every == 0 or step == cfg.steps:
            save_state(work, cfg, model, opt, step)
        if stop_after is not None and len(losses) >= stop_after:
            save_state(work, cfg, model, opt, step)
            break
    model.encoder.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    return model.eval(), losses


TEACHER_RECIPES = ("fast", "oldphoto", "cleanup", "deblur", "deblur-tune")
"""Recipes that start from (or distil) the `--teacher` model."""

ARCHITECTURES = {"fast": "EDSR-baseline-LIIF, small decoder", "oldphoto": "EDSR-baseline-LIIF"}
LICENCES = {
    "cleanup": "BSD-3-Clause; encoder and decoder weights (c) 2020 Yinbo Chen (LIIF), clean-up network "
    "trained by LIIF Viewer",
    "deblur": "BSD-3-Clause; encoder and decoder weights (c) 2020 Yinbo Chen (LIIF), deblur network "
    "(after MSSNet, Kim, Lee and Cho 2022; written and trained by LIIF Viewer)",
    "deblur-tune": "BSD-3-Clause; encoder and decoder weights (c) 2020 Yinbo Chen (LIIF), deblur network "
    "(after MSSNet, Kim, Lee and Cho 2022; written and trained by LIIF Viewer) and a copy of the encoder "
    "fine-tuned by LIIF Viewer",
    "fast": "BSD-3-Clause; encoder weights (c) 2020 Yinbo Chen (LIIF), decoder trained by LIIF Viewer",
    "oldphoto": "BSD-3-Clause; started from the LIIF weights (c) 2020 Yinbo Chen, fine-tuned by LIIF Viewer",
}
"""What each recipe's file may be shared under: `fast` keeps the official encoder weights as they are."""


def architecture_label(model: LIIF, base: str) -> str:
    """What `liif-viewer models` shows as a model's architecture: `base` (or the pre-passes in front of the
    encoder, when there are any) and the decoder's hidden widths, e.g. "... (88-88-88)"."""
    passes = []  # the pre-passes in front of the official encoder, in the order the photo meets them
    for enc in encoder_chain(model.encoder):
        if isinstance(enc, CleanedEncoder):
            net = enc.cleanup
            passes.append(f"a clean-up CNN ({len(net.body)} blocks of {net.head.out_channels} channels)")
        elif isinstance(enc, DeblurredEncoder):
            stages = "-".join(str(len(cast(nn.ModuleList, s))) for s in enc.deblur.stages)
            widths = "/".join(str(w) for w in enc.deblur.widths)
            tuned = ", its own tuned encoder for blurred photos" if enc.tuned is not None else ""
            passes.append(f"an MSSNet deblur network (stages {stages}, widths {widths}{tuned})")
    if passes:
        base = "EDSR-baseline-LIIF behind " + ", then ".join(passes)
    if isinstance(model.imnet, ModulatedMLP):
        widths = "-".join(str(w) for w in model.imnet.widths)
        base = base.removesuffix(", small decoder")
        return (
            f"{base}, latent-modulated decoder (hypernetwork {model.imnet.hyper_in.out_features}, {widths})"
        )
    hidden = "-".join(
        f"{m.out_features}" + (f" (rank {m.rank})" if isinstance(m, LowRankLinear) else "")
        for m in model.imnet.linears()[:-1]
    )
    return f"{base} ({hidden})"


def export(
    model: LIIF,
    cfg: TrainConfig,
    out: Path,
    *,
    display: str = "",
    licence: str = "",
    quality: str = "",
    at_step: int | None = None,
) -> None:
    """Write the trained weights as our safetensors, with what `liif-viewer models` shows.

    `quality` is the measured-quality line (from `liif-viewer eval`). `at_step` marks weights taken from a
    run part way (its `training` metadata then says so). A run started with `--init` from one of our files
    records that file's training settings before its own, as `stages`, so the file tells its whole recipe.
    """
    from viewer.liif.checkpoint import save_safetensors

    meta = {
        "name": cfg.name,
        "display_name": display or cfg.name,
        "architecture": architecture_label(
            model, ARCHITECTURES.get(cfg.recipe) or f"{cfg.encoder.upper()}-LIIF"
        ),
        "source": "trained by this project: liif-viewer train (see the model card)",
        "licence": licence or LICENCES.get(cfg.recipe, "BSD-3-Clause; trained by LIIF Viewer"),
        "decoder_macs_per_pixel": str(decoder_macs_per_pixel(model)),
        "parameters": str(sum(p.numel() for p in model.parameters())),
        "training": json.dumps(training_record(cfg, at_step), sort_keys=True),
    }
    if quality:
        meta["quality"] = quality
    save_safetensors(model, out, meta)


def training_record(cfg: TrainConfig, at_step: int | None = None) -> dict[str, Any]:
    """This run's settings; after `--init` from one of our files, `{"stages": [theirs..., this]}`."""
    from viewer.liif.checkpoint import CheckpointError, read_metadata

    this = {**asdict(cfg), **({"exported_at_step": at_step} if at_step is not None else {})}
    if not cfg.init:
        return this
    try:
        before = json.loads(read_metadata(cfg.init).get("training", "null"))
    except (CheckpointError, ValueError):
        before = None
    if not isinstance(before, dict):
        return this
    stages = before["stages"] if isinstance(before.get("stages"), list) else [before]
    if stages and _same_run(stages[-1], this):
        stages = stages[:-1]  # --init is the file this run wrote before (`--out` the same file): not twice
    return {"stages": [*stages, this]}


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two recorded settings describe the same run (wherever it was exported from)."""

    def key(d: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in d.items() if k != "exported_at_step"}, sort_keys=True)

    return key(a) == key(b)


def cmd_train(args: argparse.Namespace) -> int:
    """Run `liif-viewer train` from parsed arguments."""
    from viewer.engine.device import resolve_device

    try:
        hidden = [int(v) for v in str(args.hidden).split(",") if v.strip()]
    except ValueError:
        raise ArgumentError(f"--hidden must be comma-separated integers, got '{args.hidden}'") from None
    if args.steps < 1 or args.batch < 1 or args.points < 1 or not hidden or min(hidden) < 1:
        raise ArgumentError("--steps, --batch, --points and --hidden must be positive")
    if not str(args.out).endswith(".safetensors"):
        raise ArgumentError(f"--out must be a .safetensors file, got '{args.out}'")
    if args.train_deblur and args.recipe != "deblur-tune":
        raise ArgumentError("--train-deblur is an option of recipe deblur-tune")
    if args.tuned_from and args.recipe != "deblur-tune":
        raise ArgumentError("--tuned-from is an option of recipe deblur-tune")
    if args.dense_share > 0 and args.recipe != "deblur":
        raise ArgumentError("--dense-share is an option of recipe deblur")
    if not 0.0 <= args.dense_share <= 1.0 or args.dense_crop < 8 or args.dense_batch < 0:
        raise ArgumentError(
            "--dense-share must be in [0, 1], --dense-crop at least 8, --dense-batch not negative"
        )
    lr = args.lr if args.lr is not None else (1e-4 if args.recipe in ("oldphoto", "deblur-tune") else 1e-3)
    cfg = TrainConfig(
        recipe=args.recipe,
        name=args.name,
        steps=args.steps,
        batch=args.batch,
        lr=lr,
        seed=args.seed,
        points=args.points,
        distill_points=args.points,
        step_points=args.step_points,
        random_points=args.random_points,
        hidden=hidden,
        local_ensemble=not args.no_ensemble,
        hyper_hidden=args.hyper_hidden,
        hyper_blocks=args.hyper_blocks,
        coord_weights=args.coord_weights,
        coord_quadratic=args.coord_quadratic,
        first_rank=args.first_rank,
        init=str(args.init),
        inherit_layers=args.inherit_layers,
        pool=args.pool,
        pool_shrink=args.pool_shrink,
        pool_graphics=args.pool_graphics,
        pool_text=args.pool_text,
        gt_weight=args.gt_weight,
        loss=args.loss,
        degrade_p=args.degrade_p,
        cleanup_width=args.cleanup_width,
        cleanup_blocks=args.cleanup_blocks,
        crop=args.crop,
        clean_weight=args.clean_weight,
        dense_share=args.dense_share,
        dense_crop=args.dense_crop,
        dense_scale=_dense_scale(args),
        dense_batch=args.dense_batch,
        deblur_net=_deblur_net(args),
        deblur_halo=args.deblur_halo,
        deblur_gate=_deblur_gate(args),
        deblur_photo_gate=_deblur_gate(args, "deblur_photo_gate"),
        train_deblur=args.train_deblur,
        tuned_from=str(args.tuned_from),
        encoder=args.encoder,
        teacher=args.teacher,
        save_every=args.save_every,
        log_every=args.log_every,
        note=args.note,
    )
    dev = resolve_device(args.device)
    work = args.work or Path("build") / "train" / args.name
    dirs = [Path(p) for p in args.data.split(os.pathsep)] if args.data else None
    if args.export_now:
        return _export_saved(cfg, work, args.out, args.display_name, args.quality)
    print(f"training {cfg.name} (recipe {cfg.recipe}) on {dev}; state in {work}", flush=True)
    model, _ = train(
        cfg,
        work,
        device=dev,
        data_dirs=dirs,
        resume=not args.no_resume,
        log=lambda m: print(m, flush=True),
        stop_after=args.max_steps_now,
    )
    done = json.loads((work / "state.json").read_text())["step"]
    if done < cfg.steps:
        print(f"stopped at step {done}/{cfg.steps}; run the same command again to continue", flush=True)
        return 0
    export(model.cpu(), cfg, args.out, display=args.display_name, quality=args.quality)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB, "
        f"{decoder_macs_per_pixel(model):,} decoder multiply-adds per pixel)",
        flush=True,
    )
    return 0


def _dense_scale(args: argparse.Namespace) -> tuple[float, float]:
    """`--dense-scale LO,HI`, checked: a dense step draws its shrink from that range."""
    text = str(getattr(args, "dense_scale", "2.5,4.0"))
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ArgumentError(f"--dense-scale must be two numbers LO,HI, got '{text}'") from None
    if not 1.0 <= lo <= hi:
        raise ArgumentError(f"--dense-scale needs 1 <= LO <= HI, got '{text}'")
    return lo, hi


def _deblur_net(args: argparse.Namespace) -> list[int]:
    try:
        return [int(v) for v in str(getattr(args, "deblur_net", "20,40,40,1,2,3")).split(",") if v.strip()]
    except ValueError:
        raise ArgumentError(
            f"--deblur-net must be comma-separated integers, got '{args.deblur_net}'"
        ) from None


def _deblur_gate(args: argparse.Namespace, name: str = "deblur_gate") -> list[float]:
    text = str(getattr(args, name, "") or "")
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        option = "--" + name.replace("_", "-")
        form = "LO,HI[,OFFSET]" if name == "deblur_gate" else "LO,HI"
        raise ArgumentError(f"{option} must be numbers {form}, got '{text}'") from None


def _export_saved(cfg: TrainConfig, work: Path, out: Path, display: str, quality: str) -> int:
    """`--export-now`: the work folder's saved weights, written as a model file without training (also
    how a finished run's file gets its measured `--quality` line)."""
    teacher = load_teacher(cfg.teacher) if cfg.recipe in TEACHER_RECIPES else None
    model = build_student(replace(cfg, init=""), teacher)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    step = load_state(work, cfg, model, opt)
    if step == 0:
        raise ArgumentError(f"{work} holds no saved run of these settings to export")
    export(
        model.eval(), cfg, out, display=display, quality=quality, at_step=step if step < cfg.steps else None
    )
    print(f"wrote {out} from step {step}/{cfg.steps} of the run in {work}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m viewer.train ...`: the same as `liif-viewer train ...`, without importing the command
    line (the CLI imports the trainer lazily; the trainer never imports the CLI)."""
    from viewer.errors import Cancelled, ViewerError
    from viewer.train.options import build_parser

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(cmd_train(args) or 0)
    except ViewerError as exc:
        print(f"liif-viewer train: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("liif-viewer train: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
