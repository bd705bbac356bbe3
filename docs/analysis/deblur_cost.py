"""Encode cost (seconds per megapixel of input) of models on this machine: a 1000x1000 photo encoded
whole by `Engine.encode` (tiled with each model's halo), best of three (usage: MODEL ...). The photo is
encoded as it is (sharp) and through a defocus disc of radius 2: a deblur pass with a photo gate skips
its network on the sharp one."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from viewer.engine.degrade import convolve, disc_kernel
from viewer.engine.render import Engine
from viewer.liif.mssnet import photo_blur_share


def main() -> None:
    """Print each model's encode time per megapixel, fp32 on the CPU."""
    rng = np.random.default_rng(0)
    base = rng.random((125, 125, 3)).astype(np.float32)
    sharp = np.kron(base, np.ones((8, 8, 1), dtype=np.float32))  # smooth-ish blocks, 1000 x 1000
    photos = {"sharp": sharp, "blurred": convolve(sharp, disc_kernel(2.0))}
    for kind, photo in photos.items():
        print(f"{kind} photo: blur estimate {photo_blur_share(photo):.3f}", flush=True)
    for name in sys.argv[1:]:
        engine = Engine.from_name(name, "cpu", "fp32")
        for kind, photo in photos.items():
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                engine.encode(photo)
                best = min(best, time.perf_counter() - t0)
            print(f"{name}, {kind}: {best:.2f} s/MP (threads {torch.get_num_threads()})", flush=True)


if __name__ == "__main__":
    main()
