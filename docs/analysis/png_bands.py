"""The PNG writer before and after its bands were compressed on two threads (2026-12-05): the same output
written by both in one process, alternating rounds (usage: python docs/analysis/png_bands.py [ROUNDS]).

The output is `liif-lm`'s x8 render of the bundled sample's 320 px corner (2560 x 2560 RGB), written in the
4 MB bands `render` writes; the writer before is read from git history (commit ad17d2f).
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from viewer import paths
from viewer.engine import pngwriter
from viewer.engine.render import Engine


def _writer_before() -> ModuleType:
    """`viewer/engine/pngwriter.py` as it was before the change, loaded as its own module."""
    text = subprocess.run(
        ["git", "show", "ad17d2f:viewer/engine/pngwriter.py"], capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "pngwriter_before.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("pngwriter_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(module: ModuleType, rgb: np.ndarray) -> tuple[float, int]:
    """Seconds to write `rgb` as a PNG with `module`'s writer, and the file's size."""
    h, w = rgb.shape[:2]
    fh = io.BytesIO()
    writer = module.PngBandWriter(fh, w, h, channels=3)
    step = max(1, (1 << 22) // (w * 3))
    start = time.perf_counter()
    for r in range(0, h, step):
        writer.write_rows(rgb[r : r + step])
    writer.close()
    return time.perf_counter() - start, len(fh.getvalue())


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    photo = np.asarray(Image.open(paths.sample_photo()).convert("RGB"), dtype=np.float32)[:320, :320] / 255
    engine = Engine.from_name("liif-lm", "cpu", "bf16")
    rgb = (engine.render_scale(engine.encode(photo), 2560, 2560) * 255 + 0.5).astype(np.uint8)
    writers = {"before": _writer_before(), "after": pngwriter}
    times: dict[str, list[float]] = {k: [] for k in writers}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for name, module in writers.items():
            seconds, sizes[name] = _write(module, rgb)
            times[name].append(seconds)
    for name, ts in times.items():
        runs = ", ".join(f"{t:.3f}" for t in ts)
        print(f"{name:6s} median {np.median(ts):.3f} s ({runs}), {sizes[name]:,} bytes")


if __name__ == "__main__":
    main()
