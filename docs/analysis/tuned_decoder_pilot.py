"""Pilot: does `liif-deblur` gain from a tuned copy of its decoder, beside its tuned encoder?

The deblur model's decoder is the official one, frozen, for every photo. This trains a copy of it for the
photos the photo gate opens (blur-v1's training blur on every crop, as `train --recipe deblur-tune`), with
or without the tuned encoder training too, and measures the blurred benchmarks with the copy blended into
the official decoder's output by each photo's gate weight (a shut photo keeps the official model exactly).

usage:
  python docs/analysis/tuned_decoder_pilot.py train {decoder,both} STEPS LR SEED OUT.safetensors
  python docs/analysis/tuned_decoder_pilot.py eval OUT.safetensors SET[,SET] SCALE[,SCALE] [PRECISION]

`eval` prints the shipped model's PSNR-Y and the pilot's per set and scale; the shipped model's renders are
kept in /tmp/tuned-decoder-pilot so a second pilot only renders its own side.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from viewer.engine.degrade import benchmark_blur, random_blur
from viewer.engine.evaluate import load_pairs, psnr_y
from viewer.engine.render import Engine
from viewer.liif.checkpoint import load_model
from viewer.liif.liif import LIIF
from viewer.liif.mssnet import DeblurredEncoder, tensor_blur_share
from viewer.train import data as tdata
from viewer.train.query import train_query

MODEL = "models/liif-deblur.safetensors"
CACHE = Path("/tmp/tuned-decoder-pilot")


def _deblurred(model: LIIF) -> DeblurredEncoder:
    enc = model.encoder
    assert isinstance(enc, DeblurredEncoder) and enc.tuned is not None
    return enc


def train(mode: str, steps: int, lr: float, seed: int, out: Path) -> None:
    """Train the decoder's copy (and with `both` the tuned encoder) for `steps` steps of 4 crops of 64 px."""
    torch.manual_seed(seed)
    model = load_model(MODEL, "cpu")
    enc = _deblurred(model)
    assert enc.tuned is not None
    base_dec = model.imnet
    tuned_dec = copy.deepcopy(base_dec)
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(tuned_dec.parameters())
    if mode == "both":
        params += list(enc.tuned.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    images = tdata.load_images(tdata.default_train_dirs())
    start, losses = time.time(), []
    for step in range(steps):
        for g in opt.param_groups:  # cosine to 1% of `lr`, as the trainer's schedule
            g["lr"] = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        rng = np.random.default_rng([seed, step])
        parts = [
            tdata.make_sample(
                images[int(rng.integers(0, len(images)))], rng, lr_size=64, n_points=2304, degrade=random_blur
            )
            for _ in range(4)
        ]
        lr_img, coord, cell, rgb = (torch.from_numpy(np.stack(p)).float() for p in zip(*parts, strict=True))
        x = (lr_img - 0.5) / 0.5
        weight = torch.tensor([enc.deblur.photo_weight(v) for v in tensor_blur_share(x)]).view(-1, 1, 1)
        if not bool((weight > 0).any()):
            continue  # every crop keeps the official model: nothing to learn from
        feat = model.encode(x)
        model.imnet = tuned_dec
        pred = train_query(model, feat, coord, cell)
        model.imnet = base_dec
        if bool((weight < 1).any()):
            with torch.no_grad():
                base = train_query(model, feat, coord, cell)
            pred = base + weight * (pred - base)
        loss = (pred - (rgb - 0.5) / 0.5).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0:
            print(
                f"step {step + 1}: loss {np.mean(losses[-50:]):.4f}, {time.time() - start:.0f} s", flush=True
            )
    tensors = {f"decoder.{k}": v.contiguous() for k, v in tuned_dec.state_dict().items()}
    tensors |= {f"tuned.{k}": v.contiguous() for k, v in enc.tuned.state_dict().items()}
    save_file(tensors, str(out))


def _with_pilot(path: Path) -> LIIF:
    """The shipped model with the pilot's decoder copy and tuned encoder in place of its own."""
    model = load_model(MODEL, "cpu")
    state = load_file(str(path))
    model.imnet.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("decoder.")})
    tuned = _deblurred(model).tuned
    assert tuned is not None
    tuned.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("tuned.")})
    return model


def evaluate(path: Path, sets: list[str], scales: list[int], precision: str) -> None:
    """PSNR-Y on blur-v1 inputs: the shipped model, and the pilot blended by each photo's gate weight."""
    shipped = Engine(load_model(MODEL, "cpu"), "cpu", precision)
    pilot = Engine(_with_pilot(path), "cpu", precision)
    gate = _deblurred(shipped.model).deblur
    cache = CACHE / precision
    cache.mkdir(parents=True, exist_ok=True)
    start = time.time()
    for set_name in sets:
        for scale in scales:
            ours, theirs = [], []
            for index, pair in enumerate(load_pairs(set_name, scale)):
                h, w = pair.hr.shape[:2]
                lr = benchmark_blur(pair.lr, index)
                kept = cache / f"{set_name}-{scale}-{index}.npy"
                if kept.exists():
                    a = np.load(kept)
                else:
                    a = shipped.render_scale(shipped.encode(lr), w, h)
                    np.save(kept, a)
                weight = gate.photo_weight(shipped.blur_share(lr) or 0.0)
                sr = a
                if weight > 0:
                    b = pilot.render_scale(pilot.encode(lr), w, h)
                    sr = b if weight >= 1 else a + weight * (b - a)
                theirs.append(psnr_y(a, pair.hr, scale))
                ours.append(psnr_y(sr, pair.hr, scale))
            gain = np.mean(ours) - np.mean(theirs)
            print(
                f"{set_name} x{scale}: shipped {np.mean(theirs):.4f}, pilot {np.mean(ours):.4f} ({gain:+.4f} dB),"
                f" {time.time() - start:.0f} s",
                flush=True,
            )


def main(argv: list[str]) -> None:
    if len(argv) >= 6 and argv[0] == "train" and argv[1] in ("decoder", "both"):
        train(argv[1], int(argv[2]), float(argv[3]), int(argv[4]), Path(argv[5]))
    elif len(argv) >= 4 and argv[0] == "eval":
        scales = [int(s) for s in argv[3].split(",")]
        evaluate(Path(argv[1]), argv[2].split(","), scales, argv[4] if len(argv) > 4 else "fp32")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
