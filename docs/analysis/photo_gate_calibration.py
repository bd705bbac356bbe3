"""Where the deblur pass's photo gate should open: the photo-level blur estimate on training photos.

Every training photo (../shared/data/train: BSDS500 train and test, T91) is shrunk 2, 3 or 4 times (in
turn) as a low-resolution input, then measured by `photo_blur_share` three ways: as it is, with noise and
JPEG (sigma 0.5-4/255, quality 60-95: a sharp but worn copy), and through blur-v1's training blur
(`degrade.random_blur`). The benchmarks are not looked at. Prints quantiles, and for candidate gates
[LO, HI] how many sharp photos the gate opens at all and how many blurred ones it opens fully.

    python docs/analysis/photo_gate_calibration.py [GATE_LO,GATE_HI ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from viewer.engine import degrade
from viewer.liif.mssnet import photo_blur_share

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "train"


def measure(seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The estimates of every training photo: sharp, sharp with noise and JPEG, blurred."""
    rng = np.random.default_rng(seed)
    sharp, worn, blurred = [], [], []
    files = sorted(p for p in DATA.glob("*/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    for n, path in enumerate(files):
        hr = np.asarray(Image.open(path).convert("RGB"))
        s = (2, 3, 4)[n % 3]
        h, w = hr.shape[0] // s, hr.shape[1] // s
        if min(h, w) < 24:
            continue
        lr = degrade.downscale(hr, (w, h)).astype(np.float32) / 255.0
        sharp.append(photo_blur_share(lr))
        noisy = degrade.gaussian_noise(lr, rng.uniform(0.5, 4.0) / 255.0, rng)
        worn.append(photo_blur_share(degrade.jpeg(noisy, int(rng.integers(60, 96)))))
        blurred.append(photo_blur_share(degrade.random_blur(lr, rng)))
    return np.array(sharp), np.array(worn), np.array(blurred)


def main(argv: list[str]) -> int:
    sharp, worn, blurred = measure()
    print(f"{len(sharp)} training photos")
    for name, v in (
        ("sharp", sharp),
        ("sharp, noise and JPEG", worn),
        ("blurred (blur-v1 training)", blurred),
    ):
        qs = (0.05, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
        print(f"{name:28s} " + "  ".join(f"{q:.0%} {np.quantile(v, q):.3f}" for q in qs))
    both = np.concatenate((sharp, worn))
    print(f"99th percentile of sharp and worn together: {np.quantile(both, 0.99):.3f}")
    for gate in argv or ["0.41,0.51"]:
        lo, hi = (float(v) for v in gate.split(","))

        def weight(v: np.ndarray, lo: float = lo, hi: float = hi) -> np.ndarray:
            return np.clip((v - lo) / (hi - lo), 0.0, 1.0)

        print(
            f"gate [{lo}, {hi}]: sharp opened {np.mean(weight(both) > 0):.1%} (largest weight "
            f"{weight(both).max():.2f}); blurred fully {np.mean(weight(blurred) >= 1):.0%}, "
            f"closed {np.mean(weight(blurred) <= 0):.0%}, mean weight {weight(blurred).mean():.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
