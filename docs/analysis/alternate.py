"""Helpers of the in-process A/B scripts here: a module as it was at a commit, alternating rounds, and the
photo of `bench --decoders --cli` as pixels."""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def cli_photo() -> np.ndarray:
    """The photo `liif-viewer bench --decoders --cli` renders (the bundled sample resized to `CLI_EDGE`
    pixels), as (H, W, 3) uint8 pixels."""
    from PIL import Image

    from viewer.engine.bench_decoders import CLI_EDGE
    from viewer.engine.bench_startup import make_photo

    with tempfile.TemporaryDirectory() as tmp, Image.open(make_photo(Path(tmp) / "in.png", CLI_EDGE)) as im:
        return np.asarray(im.convert("RGB"))


def module_at(commit: str, path: str) -> ModuleType:
    """The file `path` of this repository as it was at `commit`, loaded as a module of its own."""
    text = subprocess.run(
        ["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    name = Path(path).stem + "_at_" + commit
    file = Path(tempfile.mkdtemp(prefix="at-commit-")) / f"{name}.py"
    file.write_text(text)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alternate(
    names: list[str], rounds: int, run: Callable[[str], T]
) -> tuple[dict[str, list[float]], dict[str, T]]:
    """Run each variant once per round, in an order that flips every round (round 0 warms them up and is
    not counted); the seconds of each counted run by name, and each variant's last result."""
    times: dict[str, list[float]] = {name: [] for name in names}
    results: dict[str, T] = {}
    for r in range(rounds + 1):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            results[name] = run(name)
            if r:
                times[name].append(time.perf_counter() - t)
    return times, results


def report(times: dict[str, list[float]]) -> None:
    """Print each variant's median and rounds."""
    for name, got in times.items():
        print(f"{name:10s} median {statistics.median(got):.3f} s  rounds {' '.join(f'{x:.3f}' for x in got)}")
