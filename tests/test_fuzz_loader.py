"""Fuzzing the loader: mutated PNG/JPEG/TIFF/GIF/BMP/WebP files must give a valid image or a clean
ImageLoadError, never another exception (which would reach the user as a traceback)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from viewer.engine.imageio import LoadedImage, load_image, probe_image
from viewer.errors import ImageLoadError

LIMIT_MP = 0.05  # small, so a mutated header claiming a huge size is refused instead of allocated


def _seeds() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    rgba = np.dstack((rgb, rng.integers(0, 256, (12, 10), dtype=np.uint8)))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Fuzz"
    out = []
    cases: list[tuple[str, Image.Image, str, dict[str, object]]] = [
        ("rgb.png", Image.fromarray(rgb), "PNG", {"exif": exif.tobytes()}),
        ("rgba.png", Image.fromarray(rgba), "PNG", {}),
        ("g16.png", Image.fromarray((rgb[..., 0].astype(np.uint16) * 257).astype("<u2")), "PNG", {}),
        ("rgb.jpg", Image.fromarray(rgb), "JPEG", {"exif": exif.tobytes(), "quality": 90}),
        ("prog.jpg", Image.fromarray(rgb), "JPEG", {"progressive": True}),
        ("rgb.tif", Image.fromarray(rgb), "TIFF", {}),
        ("rgba.tif", Image.fromarray(rgba), "TIFF", {}),
        ("pal.gif", Image.fromarray(rgb).convert("P"), "GIF", {"transparency": 0}),
        ("rgb.bmp", Image.fromarray(rgb), "BMP", {}),
        ("grey.bmp", Image.fromarray(rgb[..., 0]), "BMP", {}),
        ("rgb.webp", Image.fromarray(rgb), "WEBP", {"lossless": True}),
    ]
    for name, im, fmt, kw in cases:
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        out.append((name, buf.getvalue()))
    return out


SEEDS = _seeds()


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, bytes]:
    name, data = draw(st.sampled_from(SEEDS))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not buf:
            break
        op = draw(st.sampled_from(["set", "flip", "truncate", "insert", "delete", "header"]))
        i = draw(st.integers(0, len(buf) - 1))
        if op == "set":
            buf[i] = draw(st.integers(0, 255))
        elif op == "flip":
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[i : i + draw(st.integers(1, 16))]
        else:  # hit the header, where sizes and offsets live
            j = draw(st.integers(0, min(len(buf), 64) - 1))
            buf[j] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
    return name, bytes(buf)


def check_valid(im: LoadedImage) -> None:
    h, w = im.rgb.shape[:2]
    assert im.rgb.dtype == np.float32 and im.rgb.shape == (h, w, 3)
    assert h > 0 and w > 0 and h * w <= LIMIT_MP * 1e6
    assert np.isfinite(im.rgb).all() and im.rgb.min() >= 0 and im.rgb.max() <= 1
    if im.alpha is not None:
        assert im.alpha.dtype == np.float32 and im.alpha.shape == (h, w)
        assert np.isfinite(im.alpha).all() and im.alpha.min() >= 0 and im.alpha.max() <= 1
    assert im.bit_depth in (8, 16)
    assert im.icc is None or isinstance(im.icc, bytes)
    assert im.exif is None or isinstance(im.exif, bytes)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_seeds_load(fuzz_dir: Path) -> None:
    for name, data in SEEDS:
        p = fuzz_dir / name
        p.write_bytes(data)
        check_valid(load_image(p, max_megapixels=LIMIT_MP))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's remarks on the damaged files it reads
@settings(
    max_examples=400,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=mutated_files())
def test_mutated_files_load_or_fail_cleanly(fuzz_dir: Path, case: tuple[str, bytes]) -> None:
    name, data = case
    p = fuzz_dir / f"m_{name}"
    p.write_bytes(data)
    try:
        info = probe_image(p, max_megapixels=LIMIT_MP)
        assert info.width > 0 and info.height > 0
    except ImageLoadError as exc:
        assert str(p) in str(exc) and "\n" not in str(exc)
    try:
        im = load_image(p, max_megapixels=LIMIT_MP)
    except ImageLoadError as exc:
        msg = str(exc)
        assert str(p) in msg and "\n" not in msg and not math.isnan(len(msg))
        return
    check_valid(im)
