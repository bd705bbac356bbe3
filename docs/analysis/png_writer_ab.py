"""`liif-viewer render --scale 8` of a 320 px photo (the `bench --decoders --cli` one) in one process, its
PNG written by the writer of an earlier commit and by the current one, alternating rounds (usage: python
docs/analysis/png_writer_ab.py [COMMIT] [ROUNDS]; default e3aa46f, the writer before the seventh session:
zlib-ng level 5, libpng's choice of filter per row, filtered on the calling thread; 6 rounds).

Everything but the writer is the current code, in the same process (no import or start-up in the times);
each render starts from an empty feature disk cache. Prints each variant's seconds and file size.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from alternate import alternate, module_at  # docs/analysis/alternate.py

import viewer.engine.export as export_module
from viewer.cli import main as cli_main
from viewer.engine import pngwriter
from viewer.engine.bench_decoders import CLI_EDGE
from viewer.engine.bench_startup import make_photo
from viewer.heap import keep_heap


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "e3aa46f"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    keep_heap()  # as the `render` command runs
    with tempfile.TemporaryDirectory(prefix="png-writer-ab-") as d:
        tmp = Path(d)
        src = make_photo(tmp / "in.png", CLI_EDGE)
        writers = {
            "before": module_at(commit, "viewer/engine/pngwriter.py").PngBandWriter,
            "now": pngwriter.PngBandWriter,
        }

        def run(name: str) -> None:
            export_module.PngBandWriter = writers[name]  # type: ignore[misc]
            shutil.rmtree(tmp / "cache", ignore_errors=True)
            os.environ["LIIF_VIEWER_CACHE"] = str(tmp / "cache")
            argv = ["render", str(src), "-o", str(tmp / f"{name}.png"), "--scale", "8", "--model", "liif-lm"]
            with contextlib.redirect_stdout(io.StringIO()):
                cli_main(argv)

        times, _ = alternate(list(writers), rounds, run)
        for name, got in times.items():
            size = (tmp / f"{name}.png").stat().st_size
            rounds_text = " ".join(f"{x:.3f}" for x in got)
            print(
                f"{name:6s} median {statistics.median(got):.3f} s  rounds {rounds_text}  file {size:,} bytes"
            )


if __name__ == "__main__":
    main()
