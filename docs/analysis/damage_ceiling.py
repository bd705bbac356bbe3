"""How much damage a clean-up network in front of the frozen official model must remove (training log, 2026-12-01).

For one benchmark set and scale it prints, as PSNR-Y against the clean low-resolution input (LR) and with the
paper's protocol against the HR image (HR):
- the degraded-v1 input itself, and liif-oldphoto's clean-up network's output (LR only);
- an idealised clean-up that removes a fraction 1 - lam of the damage and nothing else, for each lam:
  input = clean + lam * (degraded - clean), then the official model (LR and HR).

    .venv/bin/python docs/analysis/damage_ceiling.py BSD100 4 0.7,0.6

A research script, not part of the app: it reads ../shared/data/benchmark and the installed models.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from viewer import paths
from viewer.engine.degrade import benchmark_degrade
from viewer.engine.evaluate import load_pairs, psnr_y
from viewer.engine.render import Engine
from viewer.liif.checkpoint import load_model
from viewer.liif.models import CleanedEncoder


def _cleaned(cleanup: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """The clean-up network's output for an (H, W, 3) image in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float() * 2 - 1
    with torch.inference_mode():
        y = cleanup(x)[0].numpy().transpose(1, 2, 0)
    return np.clip((y + 1) / 2, 0, 1)


def main(argv: list[str]) -> int:
    """Print the table for `SET SCALE LAMS` (LAMS comma-separated, e.g. 0.7,0.6)."""
    set_name, scale, lams = argv[0], int(argv[1]), [float(v) for v in argv[2].split(",")]
    pairs = load_pairs(set_name, scale)
    damaged = [benchmark_degrade(p.lr, i) for i, p in enumerate(pairs)]
    old = load_model(paths.models_dir() / "liif-oldphoto.safetensors").eval()
    assert isinstance(old.encoder, CleanedEncoder)
    lr_damaged = np.mean([psnr_y(d, p.lr, 0) for d, p in zip(damaged, pairs, strict=True)])
    lr_cleaned = np.mean(
        [psnr_y(_cleaned(old.encoder.cleanup, d), p.lr, 0) for d, p in zip(damaged, pairs, strict=True)]
    )
    print(
        f"{set_name} x{scale}: LR PSNR-Y of the degraded-v1 input {lr_damaged:.3f}, after liif-oldphoto's clean-up {lr_cleaned:.3f}"
    )
    official = Engine.from_name("edsr-baseline-liif", "cpu", "fp32")
    for lam in lams:
        t0, lr_vals, hr_vals = time.perf_counter(), [], []
        for d, p in zip(damaged, pairs, strict=True):
            x = np.clip(p.lr + lam * (d - p.lr), 0, 1).astype(np.float32)
            h, w = p.hr.shape[:2]
            sr = official.render_scale(official.encode(x), w, h)
            lr_vals.append(psnr_y(x, p.lr, 0))
            hr_vals.append(psnr_y(sr, p.hr, scale))
        print(
            f"{set_name} x{scale} lam={lam}: LR {np.mean(lr_vals):.3f}  HR {np.mean(hr_vals):.4f}  "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
