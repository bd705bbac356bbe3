"""Where the deblur pass's local blur gate should open: its per-window shares on training crops.

Crops of the training photos (../shared/data/train), cut and shrunk as recipe deblur cuts them (an HR crop
of 128·s pixels, s from U(1, 4), bicubic to 128 × 128), are measured sharp, sharp with noise and JPEG, and
through blur-v1's training blur (the kind of kernel kept). Per window (`mssnet.BlurGate`, 31 pixels) the
isotropic share, the directional share (not lowered) and, for each candidate offset, the gate's share
max(isotropic, directional - offset). Quantiles are weighted by each window's gradient energy (a flat
window has nothing to deblur), as the gate's thresholds [0.30, 0.45] were set. The benchmarks are not
looked at.

    python docs/analysis/local_gate_calibration.py [OFFSET ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from viewer.engine import degrade
from viewer.liif.mssnet import BlurGate
from viewer.train.data import random_hr_crop

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "train"
CROP = 128
LO, HI = 0.30, 0.45  # the shipped gate's range


def shares(gate: BlurGate, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel of a float (H, W, 3) image in [0, 1]: isotropic share, directional share (not lowered),
    and the window's gradient energy (the weight)."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None] * 2.0 - 1.0
    y = x.mean(dim=1, keepdim=True)
    total = BlurGate._energy(y)
    iso = BlurGate._energy(gate.smooth(y)) / (total + 4e-6)
    return iso.flatten().numpy(), gate.directional_share(y).flatten().numpy(), total.flatten().numpy()


def quantiles(v: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Weighted quantiles of `v` (weights `w`)."""
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    cum /= cum[-1]
    return [float(v[order][np.searchsorted(cum, q)]) for q in qs]


def main(argv: list[str]) -> int:
    offsets = [float(a) for a in argv] or [0.10, 0.15, 0.20, 0.25]
    gate = BlurGate(LO, HI, directional=0.0)
    rng = np.random.default_rng(11)
    files = sorted(p for p in DATA.glob("*/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    groups: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for path in files[::2]:
        hr = np.asarray(Image.open(path).convert("RGB"))
        if min(hr.shape[:2]) < CROP:
            continue
        crop = random_hr_crop(hr, rng, CROP, 4.0, vertical_flip=False)
        lr = degrade.downscale(crop, (CROP, CROP)).astype(np.float32) / 255.0
        groups.setdefault("sharp", []).append(shares(gate, lr))
        noisy = degrade.gaussian_noise(lr, rng.uniform(0.5, 4.0) / 255.0, rng)
        groups.setdefault("sharp, noise and JPEG", []).append(
            shares(gate, degrade.jpeg(noisy, int(rng.integers(60, 96))))
        )
        blurred, kind = degrade.random_blur_kind(lr, rng)
        groups.setdefault(f"blurred: {kind}", []).append(shares(gate, blurred))
    qs = (0.05, 0.25, 0.5, 0.75, 0.9, 0.95)
    print(f"{len(groups['sharp'])} crops of {CROP} px; energy-weighted quantiles {qs} of per-window shares")
    for name in sorted(groups):
        iso, along, weight = (np.concatenate(parts) for parts in zip(*groups[name], strict=True))
        print(f"== {name} ({len(groups[name])} crops)")
        print(f"   isotropic          {'  '.join(f'{v:.3f}' for v in quantiles(iso, weight, qs))}")
        print(f"   directional, as is {'  '.join(f'{v:.3f}' for v in quantiles(along, weight, qs))}")
        for off in [np.inf, *offsets]:
            share = np.maximum(iso, along - off)
            g = np.clip((share - LO) / (HI - LO), 0.0, 1.0)
            mean_gate = float((g * weight).sum() / weight.sum())
            closed = float((weight * (g <= 0)).sum() / weight.sum())
            label = "isotropic alone" if off == np.inf else f"offset {off:.2f}"
            print(
                f"   {label:18s} q90 {quantiles(share, weight, (0.9,))[0]:.3f}; gate [{LO}, {HI}]: mean "
                f"{mean_gate:.2f}, closed on {closed:.0%} of the energy"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
