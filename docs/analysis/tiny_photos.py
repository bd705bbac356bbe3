"""Colour drift of tiny photos enlarged by LIIF (issue 26, item 6): flat and two-colour photos of 1 to 48
pixels, enlarged x4 and x8 by each shipped model, rendered four ways (usage: [MODEL ...]).

"paper": the paper's encode, zero padding at the photo's border (`Engine.encode`, unpadded);
"pad R": the photo edge-replicated by the encoder's receptive radius on each side, its own region rendered;
"pad 16": edge-replicated only up to 16 pixels a side (does a short frame do?);
"viewer": what the viewer and the command line render (`Engine.open_store`).
The two padded ways are run only below 16 pixels (they are there to choose how to frame a tiny photo).

Deviation in levels (of 255): for a flat photo from its colour; for the two-colour photo (left half one
colour, right half the other) the mean from a bicubic enlargement over all pixels, and the max from the
true colour over the parts at least half a source pixel away from the colour edge (that max is mostly
LIIF's own edge, 30 to 45 levels half a pixel from it at every size; the flat photos show the drift).
fp32 throughout. The output of a run is in tiny_photos.txt, next to this script.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from viewer.engine.features import Latents
from viewer.engine.render import Engine, SourceRect
from viewer.engine.weights import DEFAULT_MODEL

SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
SCALES = (4, 8)
FLAT = ((200, 50, 10), (30, 120, 220))
PAIR = ((200, 50, 10), (30, 120, 220))
MODELS = (DEFAULT_MODEL, "liif-lm", "liif-oldphoto", "liif-oldphoto-lm")

Renderer = Callable[[Engine, np.ndarray, int, int], np.ndarray]


def _padded(engine: Engine, pixels: np.ndarray, pad_y: int, pad_x: int, out_w: int, out_h: int) -> np.ndarray:
    """Encode `pixels` edge-replicated by pad_y / pad_x on each side; render the photo's own region."""
    framed = np.pad(pixels, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="edge")
    h, w = pixels.shape[:2]
    return engine.render(engine.encode(framed), SourceRect(pad_x, pad_y, w, h), out_w, out_h)


def paper(engine: Engine, pixels: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """The paper's way: the photo alone, zero padding at its border."""
    h, w = pixels.shape[:2]
    return engine.render(engine.encode(pixels), SourceRect(0, 0, w, h), out_w, out_h)


def pad_radius(engine: Engine, pixels: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Edge-replicated by the encoder's receptive radius on every side."""
    r = engine.model.receptive_radius
    return _padded(engine, pixels, r, r, out_w, out_h)


def pad_to_16(engine: Engine, pixels: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Edge-replicated to at least 16 pixels a side (nothing added to a side already that long)."""
    h, w = pixels.shape[:2]
    return _padded(
        engine, pixels, max(0, math.ceil((16 - h) / 2)), max(0, math.ceil((16 - w) / 2)), out_w, out_h
    )


def viewer(engine: Engine, pixels: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """What the viewer and the command line do: the engine's lazy store, whatever it decides."""
    h, w = pixels.shape[:2]
    store: Latents = engine.open_store(pixels, dtype=torch.float32)
    return engine.render(store, SourceRect(0, 0, w, h), out_w, out_h)


RENDERERS: dict[str, Renderer] = {"paper": paper, "pad R": pad_radius, "pad 16": pad_to_16, "viewer": viewer}


def two_colour(side: int) -> np.ndarray:
    """A side x side photo: the left ceil(side / 2) columns one colour, the rest the other."""
    px = np.empty((side, side, 3), np.uint8)
    split = math.ceil(side / 2)
    px[:, :split] = PAIR[0]
    px[:, split:] = PAIR[1]
    return px


def bicubic(pixels: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Pillow's bicubic enlargement, as floats in levels."""
    im = Image.fromarray(pixels).resize((out_w, out_h), Image.Resampling.BICUBIC)
    return np.asarray(im, np.float64)


def deviation(out: np.ndarray, pixels: np.ndarray, flat: bool) -> tuple[float, float]:
    """(max, mean) deviation in levels of a render `out` (float in [0, 1]) of `pixels` (see the module)."""
    got = out.astype(np.float64) * 255
    out_h, out_w = got.shape[:2]
    if flat:
        d = np.abs(got - pixels[0, 0].astype(np.float64)).max(axis=2)
        return float(d.max()), float(d.mean())
    mean = float(np.abs(got - bicubic(pixels, out_w, out_h)).max(axis=2).mean())
    side = pixels.shape[1]
    split = math.ceil(side / 2)
    x = (np.arange(out_w) + 0.5) * side / out_w  # output column centres in source pixels
    truth = np.where(x[None, :, None] < split, np.array(PAIR[0]), np.array(PAIR[1]))
    far = np.abs(x - split) >= 0.5 if split < side else np.ones(out_w, bool)
    worst = float(np.abs(got - truth)[:, far].max()) if far.any() else float("nan")
    return worst, mean


def main() -> None:
    """Print one table per model: rows are photo, size and scale; columns max/mean per renderer."""
    torch.set_num_threads(2)
    models = sys.argv[1:] or list(MODELS)
    photos: list[tuple[str, Callable[[int], np.ndarray], bool]] = [
        *[(f"flat{c}", (lambda s, c=c: np.full((s, s, 3), c, np.uint8)), True) for c in FLAT],
        ("2-colour", two_colour, False),
    ]
    for name in models:
        engine = Engine.from_name(name, "cpu", "fp32")
        start = time.monotonic()
        print(f"\n{name} (receptive radius {engine.model.receptive_radius}); max / mean deviation in levels")
        print(f"{'photo':<18} {'size':>4} {'x':>2}  " + "  ".join(f"{r:>13}" for r in RENDERERS))
        for label, make, flat in photos:
            for side in SIZES:
                pixels = make(side)
                for scale in SCALES:
                    cells = []
                    for key, render in RENDERERS.items():
                        if key.startswith("pad") and side >= 16:
                            cells.append(f"{'-':>13}")
                            continue
                        worst, mean = deviation(
                            render(engine, pixels, scale * side, scale * side), pixels, flat
                        )
                        cells.append(f"{worst:6.2f} /{mean:5.2f}")
                    print(f"{label:<18} {side:>4} {scale:>2}  " + "  ".join(cells), flush=True)
        print(f"({time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
