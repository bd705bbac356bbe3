"""The EDSR-baseline encoder with its residual additions out of place (before 2026-12-05, sixth session)
against in place (now), in one process, alternating rounds (usage: python docs/analysis/encode_ab.py
[ROUNDS] [EDGE]; default 6 rounds of a 512 px photo of seeded noise, with `liif-lm`'s engine, bf16 on a CPU
with AVX512-BF16). Prints the seconds of each round and the largest difference between the features.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import viewer.liif.models as models
from viewer.engine.render import Engine


def _out_of_place_block(self: models.ResBlock, x: torch.Tensor) -> torch.Tensor:
    return self.body(x) + x


def _out_of_place_edsr(self: models.EDSRBaseline, x: torch.Tensor) -> torch.Tensor:
    x = self.head(x)
    return self.body(x) + x


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    edge = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    engine = Engine.from_name("liif-lm")
    rgb = (np.random.default_rng(0).random((edge, edge, 3)) * 255).astype(np.uint8)
    forwards: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
        "out of place": (_out_of_place_block, _out_of_place_edsr),
        "in place": (models.ResBlock.forward, models.EDSRBaseline.forward),
    }
    now = forwards["in place"]
    times: dict[str, list[float]] = {name: [] for name in forwards}
    feats: dict[str, torch.Tensor] = {}
    for r in range(rounds + 1):  # round 0 warms up and is not counted
        for name in list(forwards) if r % 2 == 0 else list(forwards)[::-1]:
            models.ResBlock.forward, models.EDSRBaseline.forward = forwards[name]  # type: ignore[method-assign]
            t = time.perf_counter()
            fm = engine.encode(rgb)
            if r:
                times[name].append(time.perf_counter() - t)
            feats[name] = fm.crop(0, fm.height, 0, fm.width)
    models.ResBlock.forward, models.EDSRBaseline.forward = now  # type: ignore[method-assign]
    for name, got in times.items():
        print(f"{name:12s} median {statistics.median(got):.3f} s  rounds {' '.join(f'{x:.3f}' for x in got)}")
    diff = float((feats["out of place"] - feats["in place"]).abs().max())
    print(f"largest difference between the features: {diff:.3g}")


if __name__ == "__main__":
    main()
