"""What `liif-deblur`'s photo gate costs and saves: each benchmark image rendered as the model runs it and
with the photo gate forced fully open (`MSSNet.photo_weight` returning 1), in the engine's default
precision (usage: python docs/analysis/photo_gate_forced.py [MODEL] [SET:SCALE[:sharp] ...]; default
liif-deblur and BSD100:2 Set14:4 BSD100:4 Set5:2:sharp Set14:2:sharp Set5:4:sharp).

A blurred case reads the inputs through blur-v1 as `liif-viewer eval --blurred` does, renders the forced
variant only where the gate is part-open (elsewhere the two are the same), and prints the set's mean, the
mean gain of forcing, and per part-open image its estimate, weight and gain. A sharp case renders every
original both ways: what a "deblur in full" switch would do to sharp photos.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from viewer.engine.degrade import benchmark_blur
from viewer.engine.evaluate import load_pairs, psnr_y
from viewer.engine.render import Engine
from viewer.liif import mssnet
from viewer.liif.models import encoder_chain
from viewer.liif.mssnet import DeblurredEncoder

DEFAULT_CASES = ["BSD100:2", "Set14:4", "BSD100:4", "Set5:2:sharp", "Set14:2:sharp", "Set5:4:sharp"]


@contextmanager
def gate_open() -> Iterator[None]:
    """The photo gate fully open on every photo, for the duration."""
    before = mssnet.MSSNet.photo_weight
    mssnet.MSSNet.photo_weight = lambda self, share: 1.0  # type: ignore[method-assign]
    try:
        yield
    finally:
        mssnet.MSSNet.photo_weight = before  # type: ignore[method-assign]


def psnr_of(engine: Engine, lr: np.ndarray, hr: np.ndarray, scale: int) -> float:
    """PSNR-Y of the model's render of `lr` at the size of `hr`, as `liif-viewer eval` measures it."""
    h, w = hr.shape[:2]
    return psnr_y(engine.render_scale(engine.encode(lr), w, h), hr, scale)


def case(engine: Engine, set_name: str, scale: int, sharp: bool) -> None:
    """Print one set and scale: the mean as run, the mean gain of forcing, the part-open images."""
    deblur = next(e for e in encoder_chain(engine.model.encoder) if isinstance(e, DeblurredEncoder)).deblur
    as_run, gains, rows = [], [], []
    for index, pair in enumerate(load_pairs(set_name, scale)):
        lr = pair.lr if sharp else benchmark_blur(pair.lr, index)
        share = mssnet.photo_blur_share((np.clip(lr, 0, 1) * 255).round().astype(np.uint8))
        weight = deblur.photo_weight(share)
        a = psnr_of(engine, lr, pair.hr, scale)
        b = a
        if sharp or weight < 1.0:
            with gate_open():
                b = psnr_of(engine, lr, pair.hr, scale)
        as_run.append(a)
        gains.append(b - a)
        if not sharp and weight < 1.0:
            rows.append((pair.name, share, weight, b - a))
    kind = "sharp" if sharp else "blur-v1"
    print(
        f"{set_name} x{scale} {kind}: as run {np.mean(as_run):.4f} dB, forced open {np.mean(as_run) + np.mean(gains):.4f}"
        f" ({np.mean(gains):+.4f}; worst image {min(gains):+.3f}), {len(rows)} of {len(as_run)} part-open"
    )
    for name, share, weight, gain in sorted(rows, key=lambda r: r[1]):
        print(f"  {name:<16} estimate {share:.3f}  weight {weight:.2f}  gain {gain:+.3f} dB")


def main() -> None:
    args = sys.argv[1:]
    model = args.pop(0) if args and ":" not in args[0] else "liif-deblur"
    engine = Engine.from_name(model)
    for spec in args or DEFAULT_CASES:
        parts = spec.split(":")
        case(engine, parts[0], int(parts[1]), len(parts) > 2 and parts[2] == "sharp")


if __name__ == "__main__":
    main()
