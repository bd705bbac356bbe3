"""`bench --big`'s generated photos: the grain that makes them read sharp, and `--blurred`, which makes a
deblur model's photo gate run its network on them (the full benchmark runs minutes: see the README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from viewer.engine.bench_big import BLUR_RADIUS, SIZES, add_arguments, make_photo
from viewer.engine.weights import deblur_suggestion
from viewer.liif.mssnet import photo_blur_share


def test_blurred_photos_open_the_deblur_gate_and_plain_ones_leave_it_shut(tmp_path: Path) -> None:
    w, h = 2000, 1500  # a sixth of the 12 MP photo; the blur scales with the width
    found = deblur_suggestion("cpu")
    assert found is not None
    shares = {}
    for blurred in (False, True):
        path = tmp_path / f"{blurred}.jpg"
        make_photo(path, w, h, BLUR_RADIUS * w / SIZES["12mp"][0] if blurred else 0.0)
        with Image.open(path) as im:
            assert im.size == (w, h)
            shares[blurred] = photo_blur_share(np.asarray(im.convert("RGB")))
    assert shares[False] < found.opens_at < shares[True]


def test_the_blurred_option_parses() -> None:
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["--blurred"]).blurred and not p.parse_args([]).blurred
