"""Whole-process `liif-viewer render --scale 8` of a 320 px photo (the `bench --decoders --cli` one) from
several checkouts, alternating rounds (usage: python docs/analysis/cli_ab.py ROUNDS DIR [DIR ...], e.g.
`git worktree add /tmp/before COMMIT` and `python docs/analysis/cli_ab.py 6 /tmp/before .`).

Each run is a fresh `python -m viewer.entry render` in that checkout with an empty feature disk cache of its
own; prints the median and every wall time, and the median user and system CPU seconds.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from viewer.engine.bench_decoders import CLI_EDGE, CLI_SCALE
from viewer.engine.bench_startup import make_photo


def main() -> None:
    rounds, dirs = int(sys.argv[1]), [str(Path(d).resolve()) for d in sys.argv[2:]]
    with tempfile.TemporaryDirectory(prefix="cli-ab-") as tmp:
        src = make_photo(Path(tmp) / "in.png", CLI_EDGE)
        found: dict[str, list[tuple[float, float, float]]] = {d: [] for d in dirs}
        for r in range(rounds + 1):  # round 0 warms the page cache and is not counted
            for d in dirs if r % 2 == 0 else dirs[::-1]:
                cache = Path(tmp) / "cache"
                shutil.rmtree(cache, ignore_errors=True)
                env = {**os.environ, "LIIF_VIEWER_CACHE": str(cache)}
                argv = [sys.executable, "-m", "viewer.entry", "render", str(src), "-o", f"{tmp}/out.png"]
                argv += ["--scale", str(CLI_SCALE), "--model", "liif-lm"]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run(argv, env=env, cwd=d, check=True, capture_output=True)
                wall = time.perf_counter() - t
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                if r:
                    found[d].append(
                        (wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)
                    )
    for d, runs in found.items():
        walls = " ".join(f"{w:.2f}" for w, _, _ in runs)
        user = statistics.median(u for _, u, _ in runs)
        system = statistics.median(s for _, _, s in runs)
        print(
            f"{d}: wall median {statistics.median(w for w, _, _ in runs):.3f} s [{walls}]  "
            f"user {user:.2f} s, system {system:.2f} s"
        )


if __name__ == "__main__":
    main()
