"""`liif-viewer render --scale 8` of a 320 px photo (the `bench --decoders --cli` one) in one process, its
PNG written by the writer of an earlier commit and by the current one, alternating rounds (usage: python
docs/analysis/png_writer_ab.py [COMMIT] [ROUNDS]; default e3aa46f, the writer before the seventh session:
zlib-ng level 5, libpng's choice of filter per row, filtered on the calling thread; 6 rounds).

Everything but the writer is the current code, in the same process (no import or start-up in the times);
each render starts from an empty feature disk cache. Prints each variant's seconds and file size.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import viewer.engine.export as export_module
from viewer.cli import main as cli_main
from viewer.engine import pngwriter
from viewer.engine.bench_decoders import CLI_EDGE
from viewer.engine.bench_startup import make_photo
from viewer.heap import keep_heap


def _writer_at(commit: str, folder: Path) -> ModuleType:
    """`viewer/engine/pngwriter.py` as it was at `commit`, loaded as its own module."""
    text = subprocess.run(
        ["git", "show", f"{commit}:viewer/engine/pngwriter.py"], capture_output=True, text=True, check=True
    ).stdout
    (folder / "pngwriter_before.py").write_text(text)
    spec = importlib.util.spec_from_file_location("pngwriter_before", folder / "pngwriter_before.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "e3aa46f"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    keep_heap()  # as the `render` command runs
    with tempfile.TemporaryDirectory(prefix="png-writer-ab-") as d:
        tmp = Path(d)
        src = make_photo(tmp / "in.png", CLI_EDGE)
        writers = {"before": _writer_at(commit, tmp).PngBandWriter, "now": pngwriter.PngBandWriter}
        times: dict[str, list[float]] = {name: [] for name in writers}
        for r in range(rounds + 1):  # round 0 warms both up and is not counted
            for name in list(writers) if r % 2 == 0 else list(writers)[::-1]:
                export_module.PngBandWriter = writers[name]  # type: ignore[misc]
                shutil.rmtree(tmp / "cache", ignore_errors=True)
                os.environ["LIIF_VIEWER_CACHE"] = str(tmp / "cache")
                argv = [
                    "render",
                    str(src),
                    "-o",
                    str(tmp / f"{name}.png"),
                    "--scale",
                    "8",
                    "--model",
                    "liif-lm",
                ]
                t = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    cli_main(argv)
                if r:
                    times[name].append(time.perf_counter() - t)
        for name, got in times.items():
            size = (tmp / f"{name}.png").stat().st_size
            rounds_text = " ".join(f"{x:.3f}" for x in got)
            print(
                f"{name:6s} median {statistics.median(got):.3f} s  rounds {rounds_text}  file {size:,} bytes"
            )


if __name__ == "__main__":
    main()
