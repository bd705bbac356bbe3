"""Seam error of liif-deblur's tiled encoding: the rendered x2 output of tiled encodes against a whole
encode, on blur-v1 Set14 inputs, for halos of the deblur network (usage: MODEL [HALO ...] [--off-grid]);
with --as-built, only the model's own halo (for a model whose deblur pass sits behind another, such as
the retired liif-oldphoto-deblur's clean-up network); with --first N, only Set14's first N images.

"grid": the viewer's lazy store (64-pixel tiles: crops start on the network's 16-pixel grid);
"off-grid" (with --off-grid; about as slow again): 50-pixel tiles, whose crops start off that grid (the
engine never cuts there: `Engine.encode_tile_size` is a multiple of the grid).
"""

from __future__ import annotations

import sys
from typing import cast

import numpy as np
import torch

from viewer.engine.degrade import benchmark_blur
from viewer.engine.evaluate import load_pairs
from viewer.engine.features import FeatureMap
from viewer.engine.render import Engine
from viewer.liif.mssnet import DeblurredEncoder


def main() -> None:
    """Print the largest difference (in 1/255) over Set14's 14 images for each halo and tiling."""
    torch.set_num_threads(2)
    engine = Engine.from_name(sys.argv[1], "cpu", "fp32")
    argv = sys.argv[2:]
    first = None
    if "--first" in argv:
        at = argv.index("--first")
        first = int(argv[at + 1])
        del argv[at : at + 2]
    flags = {"--off-grid", "--as-built"}
    off_grid = "--off-grid" in argv
    halos: list[int | None] = [int(h) for h in argv if h not in flags] or [16, 32, 48]
    if "--as-built" in argv:
        halos = [None]
    pairs = load_pairs("Set14", 2)[:first]
    for halo in halos:
        if halo is not None:
            encoder = engine.model.encoder
            assert isinstance(encoder, DeblurredEncoder), "this script measures a deblur model"
            deblur = encoder.deblur
            deblur.receptive_radius = halo
            inner_radius = int(cast(int, encoder.inner.receptive_radius))
            total = halo + inner_radius  # rounded up to the grid, as the model does
            encoder.receptive_radius = -(-total // deblur.multiple) * deblur.multiple
        worst = {"grid": 0.0, "off-grid": 0.0}
        for i, pair in enumerate(pairs):
            lr = benchmark_blur(pair.lr, i)
            h, w = lr.shape[:2]
            whole = engine.render_scale(engine.encode(lr), 2 * w, 2 * h)
            side = 64 + 2 * engine.model.receptive_radius  # a budget of one 64-pixel tile per encode
            small = Engine(engine.model, "cpu", "fp32", encode_budget_bytes=side * side * 4 * 256)
            grid = small.render_scale(small.open_store(lr, dtype=torch.float32), 2 * w, 2 * h)
            worst["grid"] = max(worst["grid"], float(np.abs(grid - whole).max()) * 255)
            if off_grid:
                feat = torch.empty((engine.model.feat_dim, h, w))
                for y in range(0, h, 50):
                    for x in range(0, w, 50):
                        y1, x1 = min(h, y + 50), min(w, x + 50)
                        feat[:, y:y1, x:x1] = engine.encode_region(lr, y, y1, x, x1)
                off = engine.render_scale(FeatureMap(feat), 2 * w, 2 * h)
                worst["off-grid"] = max(worst["off-grid"], float(np.abs(off - whole).max()) * 255)
            print(f"  image {i}: grid so far {worst['grid']:.3f}/255", flush=True)
        both = f", off-grid {worst['off-grid']:.3f}/255" if off_grid else ""
        label = f"halo {halo}" if halo is not None else f"as built (radius {engine.model.receptive_radius})"
        print(f"{label}: grid {worst['grid']:.3f}/255{both}", flush=True)


if __name__ == "__main__":
    main()
