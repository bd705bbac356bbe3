"""What bf16 autocast and channels-last buy the deblur recipes' training steps on this CPU (usage: python
docs/analysis/train_precision.py [ROUNDS]; default 3).

Part 1: one training step (forward, backward, Adam) of a deblurring network alone on 16 random crops of
64 px, for the shipped size (`liif-deblur`'s: wf 16/16/16, stages 1-2-2) and the paper's MSSNet-small
(20/40/40, 1-2-3), in fp32 and under bf16 autocast, with the default and the channels-last layout. Medians
of 5 steps after a first.

Part 2: the trainer's own steps, `train --recipe deblur` (the shipped network's size, 16 crops of 64 px)
and `--recipe deblur-tune` (from `models/liif-deblur.safetensors`, 4 crops), each for a few steps on the
training photos, as the trainer now runs them and with `conv_autocast` switched off (fp32, channels-last
kept), in alternating rounds. Prints the mean seconds per step of each round.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from viewer.liif.mssnet import MSSNet
from viewer.train import data as tdata
from viewer.train import query
from viewer.train.options import TrainConfig
from viewer.train.trainer import train

SIZES = {
    "shipped (16/16/16, 1-2-2)": {"wf": 16, "scale": 16, "vscale": 16, "stages": (1, 2, 2)},
    "MSSNet-small (20/40/40, 1-2-3)": {"wf": 20, "scale": 40, "vscale": 40, "stages": (1, 2, 3)},
}


def network_step(net: MSSNet, bf16: bool, channels_last: bool, steps: int = 6) -> float:
    """Median seconds of a forward, backward and Adam step on 16 random 64 px crops."""
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)  # type: ignore[call-overload]
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x = torch.randn(16, 3, 64, 64).contiguous(memory_format=layout)
    y = torch.randn(16, 3, 64, 64)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        if bf16:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = net(x)
        else:
            out = net(x)
        loss = (out.float() - y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


@contextmanager
def fp32_training(off: bool) -> Iterator[None]:
    """`conv_autocast` switched off for the duration (when `off`), as on a CPU without native bf16."""
    before = query.cpu_has_fast_bf16
    if off:
        query.cpu_has_fast_bf16 = lambda: False  # type: ignore[assignment]
    try:
        yield
    finally:
        query.cpu_has_fast_bf16 = before


def trainer_step(cfg: TrainConfig, images: list, steps: int) -> float:
    """Mean seconds per step of `steps` trainer steps (after one), in a fresh work folder."""
    with tempfile.TemporaryDirectory() as work:
        train(cfg, Path(work), images=images, resume=False, log=lambda _: None, stop_after=1)
        t0 = time.perf_counter()
        train(cfg, Path(work), images=images, resume=True, log=lambda _: None, stop_after=steps)
        return (time.perf_counter() - t0) / steps


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print("part 1: one step of the deblurring network alone (16 crops of 64 px), median seconds")
    for name, kwargs in SIZES.items():
        for channels_last in (False, True):
            layout = "channels-last" if channels_last else "default layout"
            fp32 = network_step(MSSNet(**kwargs), False, channels_last)  # type: ignore[arg-type]
            bf16 = network_step(MSSNet(**kwargs), True, channels_last)  # type: ignore[arg-type]
            print(f"  {name:<32} {layout:<15} fp32 {fp32:.3f} s   bf16 autocast {bf16:.3f} s")
    images = tdata.load_images(tdata.default_train_dirs())
    common = {"steps": 100, "crop": 64, "loss": "l2", "degrade_p": 1.0, "log_every": 1000, "save_every": 1000}
    cases = {
        "deblur": TrainConfig(
            recipe="deblur",
            name="probe",
            batch=16,
            teacher="edsr-baseline-liif",
            deblur_net=[16, 16, 16, 1, 2, 2],
            **common,  # type: ignore[arg-type]
        ),
        "deblur-tune": TrainConfig(
            recipe="deblur-tune",
            name="probe",
            batch=4,
            teacher="models/liif-deblur.safetensors",
            **common,  # type: ignore[arg-type]
        ),
    }
    print("part 2: the trainer's steps, seconds per step (8 steps a round)")
    for name, cfg in cases.items():
        found: dict[str, list[float]] = {"as trained now": [], "autocast off (fp32)": []}
        for _ in range(rounds):
            for label in found:
                with fp32_training(label != "as trained now"):
                    found[label].append(trainer_step(cfg, images, 8))
        for label, times in found.items():
            print(f"  {name:<12} {label:<20} {', '.join(f'{t:.3f}' for t in times)}")


if __name__ == "__main__":
    main()
