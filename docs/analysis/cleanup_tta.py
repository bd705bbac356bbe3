"""Does averaging liif-oldphoto's clean-up over the 8 flips and transpositions clean more? (training log, 2026-12-01).

Prints, for each set at x4, the LR PSNR-Y against the clean input of the clean-up network's output on the
degraded-v1 input, once as it is and once averaged over the 8 geometric transforms (each undone after).

    .venv/bin/python docs/analysis/cleanup_tta.py Set14 BSD100

A research script, not part of the app: it reads ../shared/data/benchmark and the shipped model.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from viewer import paths
from viewer.engine.degrade import benchmark_degrade
from viewer.engine.evaluate import load_pairs, psnr_y
from viewer.liif.checkpoint import load_model
from viewer.liif.models import CleanedEncoder


def averaged(cleanup: nn.Module, x: torch.Tensor, n: int) -> torch.Tensor:
    """The mean of the clean-up's outputs over the first `n` of the 8 flips/transpositions, each undone."""
    outs = []
    for k in range(n):
        t = x.flip(-1) if k & 1 else x
        t = t.flip(-2) if k & 2 else t
        t = t.transpose(-1, -2) if k & 4 else t
        y = cleanup(t)
        y = y.transpose(-1, -2) if k & 4 else y
        y = y.flip(-2) if k & 2 else y
        outs.append(y.flip(-1) if k & 1 else y)
    return torch.stack(outs).mean(0)


def main(sets: list[str]) -> int:
    """Print one line per set."""
    enc = load_model(paths.models_dir() / "liif-oldphoto.safetensors").eval().encoder
    assert isinstance(enc, CleanedEncoder)
    for set_name in sets:
        pairs = load_pairs(set_name, 4)
        res: dict[int, list[float]] = {1: [], 8: []}
        for i, pair in enumerate(pairs):
            d = benchmark_degrade(pair.lr, i)
            x = torch.from_numpy(np.ascontiguousarray(d.transpose(2, 0, 1)))[None].float() * 2 - 1
            with torch.inference_mode():
                for n, vals in res.items():
                    y = averaged(enc.cleanup, x, n)[0].numpy().transpose(1, 2, 0)
                    vals.append(psnr_y(np.clip((y + 1) / 2, 0, 1), pair.lr, 0))
        print(set_name, "x4 LR PSNR-Y:", {n: round(float(np.mean(v)), 3) for n, v in res.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
