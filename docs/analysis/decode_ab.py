"""The x8 decode of `liif-lm` with the query code of an earlier commit against the current one, in one
process, alternating rounds (usage: python docs/analysis/decode_ab.py [COMMIT] [ROUNDS]; default efc0e02,
the code before the sixth session's changes, and 6 rounds).

The photo is the `bench --decoders --cli` one (the bundled sample resized to 320 px), encoded once; each round renders
its 2560 x 2560 output from the encoded features with both decoders (the projection caches warm), so only
the decode differs. Prints the seconds of each round and the largest difference between the two outputs.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

import viewer.engine.render as render_module
import viewer.liif.query as query_now
from viewer.engine.bench_decoders import CLI_EDGE
from viewer.engine.bench_startup import make_photo
from viewer.engine.render import Engine


def _query_at(commit: str) -> ModuleType:
    """`viewer/liif/query.py` as it was at `commit`, loaded as its own module."""
    text = subprocess.run(
        ["git", "show", f"{commit}:viewer/liif/query.py"], capture_output=True, text=True, check=True
    ).stdout
    folder = Path(tempfile.mkdtemp(prefix="decode-ab-"))
    (folder / "query_before.py").write_text(text)
    spec = importlib.util.spec_from_file_location("query_before", folder / "query_before.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "efc0e02"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    before = _query_at(commit)
    engine = Engine.from_name("liif-lm")
    with tempfile.TemporaryDirectory() as tmp, Image.open(make_photo(Path(tmp) / "in.png", CLI_EDGE)) as im:
        photo = np.asarray(im.convert("RGB"))
    fm = engine.encode(photo)
    variants = {
        "before": (before.GridQuery, before.Decoder(engine.model, engine.dtype, engine.device)),
        "now": (query_now.GridQuery, query_now.Decoder(engine.model, engine.dtype, engine.device)),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, np.ndarray] = {}
    for r in range(rounds + 1):  # round 0 warms both up and is not counted
        for name in list(variants) if r % 2 == 0 else list(variants)[::-1]:
            grid_query, decoder = variants[name]
            render_module.GridQuery = grid_query  # type: ignore[misc]
            engine.decoder = decoder
            t = time.perf_counter()
            outputs[name] = engine.render_scale(fm, 2560, 2560)
            if r:
                times[name].append(time.perf_counter() - t)
    render_module.GridQuery = query_now.GridQuery  # type: ignore[misc]
    for name, got in times.items():
        print(f"{name:6s} median {statistics.median(got):.3f} s  rounds {' '.join(f'{x:.3f}' for x in got)}")
    diff = float(np.abs(outputs["before"] - outputs["now"]).max()) * 255
    print(f"largest difference between the outputs: {diff:.4f}/255")


if __name__ == "__main__":
    main()
