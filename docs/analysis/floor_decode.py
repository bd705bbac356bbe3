"""How much of `bench --decoders --cli`'s floor is decoding (usage: python docs/analysis/floor_decode.py
[MODEL] [ROUNDS]; default liif-lm, 5).

The photo is the `bench --decoders --cli` one (the bundled sample resized to 320 px), encoded once. Each
round decodes it from a fresh copy of its features (an empty projection cache, as a fresh process has) at
the floor's size (`--scale FLOOR_SCALE`) and at the x8 render's, and computes the decoder's per-latent
projection (for `liif-lm`, its hypernetwork) over the whole photo alone. Prints the medians of the rounds
after the first.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from alternate import cli_photo  # docs/analysis/alternate.py

from viewer.engine.bench_decoders import CLI_EDGE, CLI_SCALE, FLOOR_SCALE
from viewer.engine.features import FeatureMap
from viewer.engine.render import Engine
from viewer.heap import keep_heap


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "liif-lm"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    keep_heap()  # as the `render` command runs
    engine = Engine.from_name(model)
    photo = cli_photo()
    encoded = engine.encode(photo)
    assert isinstance(encoded, FeatureMap)
    floor_edge, full_edge = round(CLI_EDGE * FLOOR_SCALE), CLI_EDGE * CLI_SCALE

    def fresh() -> FeatureMap:
        return FeatureMap(encoded.feat.clone())

    def project() -> None:
        fm = fresh()
        engine.decoder.project(fm, 0, fm.height, 0, fm.width)

    work: dict[str, Callable[[], object]] = {
        f"decode to {floor_edge} px (the floor's)": lambda: engine.render_scale(
            fresh(), floor_edge, floor_edge
        ),
        f"decode to {full_edge} px (the x{CLI_SCALE} render's)": lambda: engine.render_scale(
            fresh(), full_edge, full_edge
        ),
        "per-latent projection of the whole photo": project,
    }
    times: dict[str, list[float]] = {name: [] for name in work}
    for r in range(rounds):
        for name, run in work.items():
            t0 = time.perf_counter()
            run()
            if r:
                times[name].append(time.perf_counter() - t0)
    for name, found in times.items():
        print(f"{name:<44} median {statistics.median(found):.3f} s  ({', '.join(f'{t:.3f}' for t in found)})")


if __name__ == "__main__":
    main()
