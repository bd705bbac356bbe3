"""What liif-deblur's BSD100 x4 figure would gain without its gates, or with a geometric self-ensemble of
its deblur pass: a measurement of headroom, not a shipped path (usage: MODE SET:SCALE[,SET:SCALE...] [FILE]).

MODE is one of:
- `shipped`: the model as it ships (the reference for the others);
- `open`: the photo gate forced fully open on every input (the local gate as shipped);
- `open-nogate`: the photo gate fully open and the local gate off (the whole residual everywhere);
- `tta8`: the deblur pass run on the 8 flips and transposes of each input and the results averaged (8 times
  the deblur network's work), gates as shipped;
- `forced-sharp`: on clean (sharp) inputs, the photo gate held fully open (the deblur pass and the tuned
  encoder on every photo; the local gate as shipped): what a "deblur every photo anyway" choice would do;
- `forced-residual-sharp`: the same, but the encoder mixing keeps the photo's measured gate (a photo that
  reads sharp keeps the official encoder): only the deblur network's residual is forced;
- `untuned`: the tuned encoder left out (the deblur network in front of the official encoder, as the
  `deblur` recipe trains and writes it): the reference for a run of that recipe started from the file.

Each prints the PSNR-Y, fp32, on the CPU, of FILE (default `models/liif-deblur.safetensors`): blur-v1
inputs, or clean ones for the `-sharp` modes.
"""

from __future__ import annotations

import os
import sys
import time

import torch

from viewer.engine.evaluate import evaluate
from viewer.engine.render import Engine
from viewer.liif.mssnet import DeblurredEncoder


def self_ensemble(forward, n: int):  # type: ignore[no-untyped-def]
    """`forward(x, shares)` averaged over the first `n` of the 8 flips and transposes of x."""

    def run(x: torch.Tensor, shares=None) -> torch.Tensor:  # type: ignore[no-untyped-def]
        outs = []
        for k in range(n):
            t = x.flip(-1) if k & 1 else x
            t = t.flip(-2) if k & 2 else t
            t = t.transpose(-1, -2) if k & 4 else t
            y = forward(t.contiguous(), shares)
            y = y.transpose(-1, -2) if k & 4 else y
            y = y.flip(-2) if k & 2 else y
            outs.append(y.flip(-1) if k & 1 else y)
        return torch.stack(outs).mean(0)

    return run


def main() -> None:
    """Evaluate the model in MODE on each SET:SCALE."""
    mode, cells = sys.argv[1], [c.split(":") for c in sys.argv[2].split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))  # 1 to run several side by side
    path = sys.argv[3] if len(sys.argv) > 3 else "models/liif-deblur.safetensors"
    engine = Engine.from_name(path, "cpu", "fp32")
    encoder = engine.model.encoder
    assert isinstance(encoder, DeblurredEncoder)
    deblur = encoder.deblur
    if mode in ("open", "open-nogate"):
        deblur.photo = (0.0, 1e-6)
    if mode == "open-nogate":
        deblur.gate = None
    if mode == "untuned":
        encoder.tuned = None
    elif mode == "tta8":
        deblur.forward = self_ensemble(deblur.forward, 8)  # type: ignore[method-assign]
    elif mode in ("forced-sharp", "forced-residual-sharp"):
        measured = deblur.photo_weight
        deblur.photo_weight = lambda share: 1.0  # type: ignore[method-assign]
        if mode == "forced-residual-sharp":

            def residual_only(x: torch.Tensor, blur_share: float | None = None) -> torch.Tensor:
                """The forced residual, then the official encoder (these inputs all read sharp)."""
                assert blur_share is not None and measured(blur_share) <= 0.0, "an input reads blurred"
                return encoder.inner(deblur(x, [blur_share] * x.shape[0]))

            encoder.forward = residual_only  # type: ignore[method-assign]
    elif mode not in ("shipped", "open", "open-nogate", "untuned"):
        raise SystemExit(f"unknown mode {mode}")
    for set_name, scale in cells:
        t0 = time.perf_counter()
        value = evaluate(engine, set_name, int(scale), blurred=not mode.endswith("-sharp"))
        print(f"{mode} {set_name} x{scale}: {value:.4f} dB ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
