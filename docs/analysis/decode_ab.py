"""The x8 decode of `liif-lm` with the query code of an earlier commit against the current one, in one
process, alternating rounds (usage: python docs/analysis/decode_ab.py [COMMIT] [ROUNDS]; default efc0e02,
the code before the sixth session's changes, and 6 rounds).

The photo is the `bench --decoders --cli` one (the bundled sample resized to 320 px), encoded once; each round renders
its 2560 x 2560 output from the encoded features with both decoders (the projection caches warm), so only
the decode differs. Prints the seconds of each round and the largest difference between the two outputs.
"""

from __future__ import annotations

import sys

import numpy as np
from alternate import alternate, cli_photo, module_at, report  # docs/analysis/alternate.py

import viewer.engine.render as render_module
import viewer.liif.query as query_now
from viewer.engine.render import Engine


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "efc0e02"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    before = module_at(commit, "viewer/liif/query.py")
    engine = Engine.from_name("liif-lm")
    photo = cli_photo()
    fm = engine.encode(photo)
    variants = {
        "before": (before.GridQuery, before.Decoder(engine.model, engine.dtype, engine.device)),
        "now": (query_now.GridQuery, query_now.Decoder(engine.model, engine.dtype, engine.device)),
    }

    def run(name: str) -> np.ndarray:
        grid_query, decoder = variants[name]
        render_module.GridQuery = grid_query  # type: ignore[misc]
        engine.decoder = decoder
        return engine.render_scale(fm, 2560, 2560)

    times, outputs = alternate(list(variants), rounds, run)
    render_module.GridQuery = query_now.GridQuery  # type: ignore[misc]
    report(times)
    diff = float(np.abs(outputs["before"] - outputs["now"]).max()) * 255
    print(f"largest difference between the outputs: {diff:.4f}/255")


if __name__ == "__main__":
    main()
