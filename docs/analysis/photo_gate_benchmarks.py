"""What the photo gate makes of the benchmark inputs: sharp, and through blur-v1 (`degrade.benchmark_blur`).

For Set5, Set14 and BSD100 at x2, x3 and x4: the largest estimate on the sharp inputs and how many of them
the gate [LO, HI] opens at all; on the blurred ones, how many it opens fully, partly or not at all, per
kind of kernel (image i gets motion blur if i % 3 == 0, defocus if 1, Gaussian if 2). Nothing here sets
the gate: its thresholds come from training photos (`photo_gate_calibration.py`).

    python docs/analysis/photo_gate_benchmarks.py [GATE_LO,GATE_HI]
"""

from __future__ import annotations

import sys

import numpy as np

from viewer.engine.degrade import BLUR_KINDS, benchmark_blur
from viewer.engine.evaluate import load_pairs
from viewer.liif.mssnet import photo_blur_share


def main(argv: list[str]) -> int:
    lo, hi = (float(v) for v in (argv[0] if argv else "0.41,0.51").split(","))
    for set_name in ("Set5", "Set14", "BSD100"):
        for scale in (2, 3, 4):
            pairs = load_pairs(set_name, scale)
            sharp = np.array([photo_blur_share(p.lr) for p in pairs])
            blurred = np.array([photo_blur_share(benchmark_blur(p.lr, i)) for i, p in enumerate(pairs)])
            weight = np.clip((blurred - lo) / (hi - lo), 0.0, 1.0)
            kinds = np.arange(len(pairs)) % 3
            per_kind = "; ".join(
                f"{BLUR_KINDS[k]} {int((weight[kinds == k] >= 1).sum())}/{int((kinds == k).sum())} "
                f"closed {int((weight[kinds == k] <= 0).sum())}"
                for k in range(3)
            )
            print(
                f"{set_name:7s} x{scale}: sharp largest {sharp.max():.3f}, opened {int((sharp > lo).sum())} "
                f"of {len(pairs)} | blur-v1 fully {int((weight >= 1).sum())}, partly "
                f"{int(((weight > 0) & (weight < 1)).sum())}, closed {int((weight <= 0).sum())} ({per_kind})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
