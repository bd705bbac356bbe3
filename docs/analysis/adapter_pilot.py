"""Pilot: can end-to-end training on damaged input add to liif-oldphoto on a CPU? (training log, 2026-12-01).

liif-oldphoto cleans the low-resolution input and hands it to the frozen official encoder and decoder. This
pilot adds a small network after the encoder that corrects the feature map, trained end to end through the
frozen decoder against the clean HR pixels (L1, LIIF's protocol: 48x48 crops, scale U(1, 4), three
downscaling kernels, `random_degrade` on a share of the crops). Its correction is multiplied by a fixed gate
that is 0 where the clean-up network changed (almost) nothing, so clean photos keep liif-oldphoto's output:

    m = mean over a 9x9 window of |cleanup(x) - x| (channel mean, normalised units)
    gate = clamp((m - 0.005) / (0.015 - 0.005), 0, 1)

Every 400 steps it prints PSNR-Y on Set14 x4 damaged by degraded-v1 (paper protocol, shave 4). It resumes
from WORK/state.pt. A research script, not part of the app: it reads ../shared/data and the shipped model.

    .venv/bin/python docs/analysis/adapter_pilot.py WORK STEPS LR DEGRADE_P [--eval0]
    BATCH=16 .venv/bin/python docs/analysis/adapter_pilot.py build/pilot/a2 400 1e-3 0.8
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from viewer import paths
from viewer.engine.degrade import benchmark_degrade
from viewer.engine.evaluate import load_pairs, psnr_y
from viewer.liif.checkpoint import load_model
from viewer.liif.models import CleanedEncoder, ResBlock
from viewer.train import data as tdata
from viewer.train.query import train_query

GATE_LOW, GATE_HIGH, GATE_WINDOW = 0.005, 0.015, 9
"""Gate thresholds on the clean-up network's local mean change: on clean Set14 x4 inputs the median is
0.0016 and the 95th percentile 0.0077; on degraded-v1 inputs the 5th percentile is 0.0083, the median 0.032."""


class FeatureAdapter(nn.Module):
    """Corrects the encoder's 64-channel features from them, the cleaned input and the clean-up's change;
    the last convolution starts at zero, so before training the model is exactly liif-oldphoto."""

    def __init__(self, n_feats: int = 64, n_blocks: int = 4) -> None:
        super().__init__()
        self.head = nn.Conv2d(64 + 6, n_feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(n_feats, 1.0) for _ in range(n_blocks)])
        self.tail = nn.Conv2d(n_feats, 64, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        assert self.tail.bias is not None
        nn.init.zeros_(self.tail.bias)

    def forward(self, f0: torch.Tensor, cleaned: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
        m = F.avg_pool2d(
            change.abs().mean(1, keepdim=True), GATE_WINDOW, 1, GATE_WINDOW // 2, count_include_pad=False
        )
        gate = ((m - GATE_LOW) / (GATE_HIGH - GATE_LOW)).clamp(0, 1)
        return f0 + gate * self.tail(self.body(self.head(torch.cat([f0, cleaned, change], 1))))


def main(argv: list[str]) -> int:
    """Train (or resume) the adapter for STEPS steps; see the module docstring."""
    torch.set_num_threads(2)
    work, steps, lr, degrade_p = Path(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    batch = int(os.environ.get("BATCH", "8"))
    old = load_model(paths.models_dir() / "liif-oldphoto.safetensors").eval()
    for p in old.parameters():
        p.requires_grad_(False)
    enc = old.encoder
    assert isinstance(enc, CleanedEncoder)
    adapter = FeatureAdapter()

    def features(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            cleaned = enc.cleanup(x)
            f0 = enc.inner(cleaned)
        return adapter(f0, cleaned, x - cleaned)

    def set14_x4_degraded() -> float:
        adapter.eval()
        vals = []
        for i, pair in enumerate(load_pairs("Set14", 4)):
            lr_img = benchmark_degrade(pair.lr, i)
            x = torch.from_numpy(np.ascontiguousarray(lr_img.transpose(2, 0, 1)))[None].float() * 2 - 1
            h, w = pair.hr.shape[:2]
            coord = torch.from_numpy(tdata.hr_coords(h, w))[None]
            cell = torch.tensor([2 / h, 2 / w]).expand_as(coord)
            with torch.no_grad():
                f = features(x)
                chunks = [
                    train_query(old, f, coord[:, s : s + 40000], cell[:, s : s + 40000])
                    for s in range(0, coord.shape[1], 40000)
                ]
            sr = ((torch.cat(chunks, 1)[0].numpy().reshape(h, w, 3) + 1) / 2).clip(0, 1)
            vals.append(psnr_y(np.round(sr * 255) / 255, pair.hr, 4))
        adapter.train()
        return float(np.mean(vals))

    work.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(adapter.parameters(), lr=lr)
    start = 0
    if (work / "state.pt").exists():
        state = torch.load(work / "state.pt", weights_only=True)
        adapter.load_state_dict(state["ad"])
        opt.load_state_dict(state["opt"])
        start = int(state["step"])
    if "--eval0" in argv:
        print("Set14 x4 degraded-v1 before training:", set14_x4_degraded(), flush=True)
    images = tdata.load_images(tdata.default_train_dirs())
    t0, window = time.time(), []
    for step in range(start, steps):
        rng = np.random.default_rng([7, step])
        b = tdata.make_batch(
            images, rng, batch, n_points=1024, kernels=("bicubic", "bilinear", "area"), degrade_p=degrade_p
        )
        x = torch.from_numpy(b.lr).float() * 2 - 1
        pred = train_query(
            old, features(x), torch.from_numpy(b.coord).float(), torch.from_numpy(b.cell).float()
        )
        loss = F.l1_loss(pred, torch.from_numpy(b.rgb).float() * 2 - 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(loss.item())
        if (step + 1) % 25 == 0:
            rate = (time.time() - t0) / (step + 1 - start)
            print(f"step {step + 1} loss {np.mean(window):.5f} {rate:.2f} s/step", flush=True)
            window = []
        if (step + 1) % 100 == 0:
            torch.save(
                {"ad": adapter.state_dict(), "opt": opt.state_dict(), "step": step + 1}, work / "state.pt"
            )
        if (step + 1) % 400 == 0:
            print("Set14 x4 degraded-v1:", set14_x4_degraded(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
