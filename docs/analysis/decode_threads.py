"""A CPU render decoded by several threads (`viewer.engine.render._render_parts`) against one thread with
all the intra-op threads, in one process, alternating rounds (usage: python docs/analysis/decode_threads.py
[MODEL] [EDGE] [ROUNDS]; default liif-lm, 2560, 8).

The photo is the `bench --decoders --cli` one (the bundled sample resized to 320 px), encoded once; each
round renders it at EDGE x EDGE from the encoded features both ways (the projection cache warm), so only
the decode differs. Prints the seconds of each round and the largest difference between the two outputs.
"""

from __future__ import annotations

import sys

import numpy as np
from alternate import alternate, cli_photo, report  # docs/analysis/alternate.py

import viewer.engine.render as render_module
from viewer.engine.render import Engine
from viewer.heap import keep_heap


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "liif-lm"
    edge = int(sys.argv[2]) if len(sys.argv) > 2 else 2560
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    keep_heap()  # as the `render` command runs
    engine = Engine.from_name(model)
    photo = cli_photo()
    fm = engine.encode(photo)
    threaded = render_module._decode_threads
    variants = {"one thread": lambda device: 1, "threads": threaded}

    def run(name: str) -> np.ndarray:
        render_module._decode_threads = variants[name]  # type: ignore[assignment]
        return engine.render_scale(fm, edge, edge)

    times, outputs = alternate(list(variants), rounds, run)
    render_module._decode_threads = threaded  # type: ignore[assignment]
    report(times)
    diff = float(np.abs(outputs["one thread"] - outputs["threads"]).max()) * 255
    print(f"largest difference between the outputs: {diff:.4f}/255")


if __name__ == "__main__":
    main()
