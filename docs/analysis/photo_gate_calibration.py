"""Where the deblur pass's photo gate should open: the photo-level blur estimate on training photos.

Every training photo (../shared/data/train: BSDS500 train and test, T91) is shrunk 2, 3 or 4 times (in
turn) as a low-resolution input, then measured by `photo_blur_share` three ways: as it is, with noise and
JPEG (sigma 0.5-4/255, quality 60-95: a sharp but worn copy), and through blur-v1's training blur
(`degrade.random_blur`'s draws, with the kind of kernel kept). The benchmarks are not looked at. Prints
quantiles, and for candidate gates [LO, HI] how many sharp photos the gate opens at all and how many blurred
ones (per kind) it opens fully or leaves closed; all of it twice, for the estimate as `photo_blur_share`
makes it and for its isotropic part alone (`DIRECTIONAL_OFFSET` made infinite); first, the 99th percentile
of the directional part alone on sharp photos, which sets `DIRECTIONAL_OFFSET`.

    python docs/analysis/photo_gate_calibration.py [GATE_LO,GATE_HI ...]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from viewer.engine import degrade
from viewer.liif import mssnet
from viewer.liif.mssnet import photo_blur_share

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "train"


def directional_alone(pixels: np.ndarray) -> float:
    """The estimate's directional part, not lowered by `DIRECTIONAL_OFFSET`, of a float (H, W, 3) photo."""
    y = torch.from_numpy(np.ascontiguousarray(pixels.mean(axis=2, dtype=np.float32)))
    return mssnet.directional_share(y[y0:y1, x0:x1] for y0, y1, x0, x1 in mssnet.photo_blocks(*y.shape))


def measure(
    seed: int = 7, estimate: Callable[[np.ndarray], float] = photo_blur_share
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`estimate` of every training photo: sharp, sharp with noise and JPEG, blurred, and the blurred
    ones' kinds of kernel."""
    rng = np.random.default_rng(seed)
    sharp, worn, blurred, kinds = [], [], [], []
    files = sorted(p for p in DATA.glob("*/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    for n, path in enumerate(files):
        hr = np.asarray(Image.open(path).convert("RGB"))
        s = (2, 3, 4)[n % 3]
        h, w = hr.shape[0] // s, hr.shape[1] // s
        if min(h, w) < 24:
            continue
        lr = degrade.downscale(hr, (w, h)).astype(np.float32) / 255.0
        sharp.append(estimate(lr))
        noisy = degrade.gaussian_noise(lr, rng.uniform(0.5, 4.0) / 255.0, rng)
        worn.append(estimate(degrade.jpeg(noisy, int(rng.integers(60, 96)))))
        image, kind = degrade.random_blur_kind(lr, rng)
        blurred.append(estimate(image))
        kinds.append(kind)
    return np.array(sharp), np.array(worn), np.array(blurred), np.array(kinds)


def main(argv: list[str]) -> int:
    sharp, worn, _, _ = measure(estimate=directional_alone)
    print(
        "directional part alone, not lowered: 99th percentile of sharp and worn together "
        f"{np.quantile(np.concatenate((sharp, worn)), 0.99):.3f}"
    )
    for label, offset in (("the estimate", mssnet.DIRECTIONAL_OFFSET), ("its isotropic part alone", np.inf)):
        saved = mssnet.DIRECTIONAL_OFFSET
        mssnet.DIRECTIONAL_OFFSET = float(offset)
        try:
            print(f"== {label}")
            report(*measure(), argv)
        finally:
            mssnet.DIRECTIONAL_OFFSET = saved
    return 0


def report(
    sharp: np.ndarray, worn: np.ndarray, blurred: np.ndarray, kinds: np.ndarray, argv: list[str]
) -> None:
    """Print the quantiles and the gates' rates for one set of measurements."""
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
        for kind in sorted(set(kinds.tolist())):
            w = weight(blurred[kinds == kind])
            print(
                f"    {kind:8s} ({len(w)}): fully {np.mean(w >= 1):.0%}, closed {np.mean(w <= 0):.0%}, "
                f"mean weight {w.mean():.2f}"
            )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
