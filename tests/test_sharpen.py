"""Print sharpening: parsing, the table, the unsharp mask itself, and seamless banded exports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.engine.export import downscale_source, plan_export, run_export
from viewer.engine.imageio import load_image, quantize
from viewer.engine.printsize import PixelSize, PrintSize
from viewer.engine.sharpen import Sharpen, UnsharpMask, parse_sharpen
from viewer.errors import ArgumentError


def test_parse_medium_and_strength() -> None:
    assert parse_sharpen("matte") == Sharpen("matte", "standard")
    assert parse_sharpen("Glossy:HIGH") == Sharpen("glossy", "high")
    assert parse_sharpen("screen:low") == Sharpen("screen", "low")
    assert parse_sharpen("none") is None and parse_sharpen("off") is None
    for bad in ("canvas", "matte:max", "matte:", ":high", "matte:high:low"):
        with pytest.raises(ArgumentError, match="--sharpen"):
            parse_sharpen(bad)


def test_radius_scales_with_the_dpi_and_amount_with_the_strength() -> None:
    matte = UnsharpMask.for_output(Sharpen("matte"), 300)
    assert (matte.radius, matte.amount, matte.threshold) == pytest.approx((1.2, 1.0, 2 / 255))
    assert UnsharpMask.for_output(Sharpen("matte"), 600).radius == pytest.approx(2.4)
    assert UnsharpMask.for_output(Sharpen("glossy", "high"), None).radius == pytest.approx(0.8)  # 300 assumed
    assert UnsharpMask.for_output(Sharpen("screen"), 72).radius == pytest.approx(0.5)  # never under 0.5 px
    amounts = [UnsharpMask.for_output(Sharpen("glossy", s), 300).amount for s in ("low", "standard", "high")]
    assert amounts == sorted(amounts) and len(set(amounts)) == 3
    assert UnsharpMask.for_output(Sharpen("matte", "high"), 600).halo == 8  # ceil(3 * 2.4)


def test_an_edge_gains_contrast_and_flat_or_faint_detail_is_left_alone() -> None:
    img = np.full((20, 40, 3), 0.3, np.float32)
    img[:, 20:] = 0.7
    rng = np.random.default_rng(0)
    img[:, :10] += rng.uniform(-0.5, 0.5, (20, 10, 3)).astype(np.float32) / 255  # grain under the threshold
    usm = UnsharpMask.for_output(Sharpen("matte"), 300)
    out = usm.apply(img)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out[:, 19].max() < 0.3 - 0.05 and out[:, 20].min() > 0.7 + 0.05  # overshoot both sides
    np.testing.assert_array_equal(out[:, :10], img[:, :10])  # grain untouched
    np.testing.assert_array_equal(out[:, 25:], img[:, 25:])  # flat far from the edge
    grey = usm.apply(img[..., 0])
    np.testing.assert_allclose(grey, out[..., 0], atol=1e-6)  # (H, W) works as one channel


def test_bands_with_their_halo_equal_the_whole_image() -> None:
    rng = np.random.default_rng(1)
    img = rng.random((37, 23, 3), dtype=np.float32)
    usm = UnsharpMask.for_output(Sharpen("matte", "high"), 600)  # halo 8 rows
    whole = usm.apply(img)
    bands = []
    for r0 in range(0, 37, 5):
        r1 = min(37, r0 + 5)
        a0, a1 = max(0, r0 - usm.halo), min(37, r1 + usm.halo)
        bands.append(usm.apply_rows(img[a0:a1], a0, r0, r1, 37))
    np.testing.assert_array_equal(np.concatenate(bands), whole)
    with pytest.raises(ValueError):  # too little halo is a bug, not a seam
        usm.apply_rows(img[8:20], 8, 10, 15, 37)


def test_tiny_images_are_sharpened_without_error() -> None:
    usm = UnsharpMask.for_output(Sharpen("matte", "high"), 1200)  # halo larger than the image
    for shape in ((1, 1, 3), (2, 5, 3), (5, 1, 3)):
        out = usm.apply(np.full(shape, 0.5, np.float32))
        np.testing.assert_allclose(out, 0.5, atol=1e-6)


torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def engine() -> object:
    from viewer.engine.render import Engine
    from viewer.liif.liif import make_liif

    return Engine(make_liif(seed=3), "cpu", "fp32", chunk=600)


def _photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:20, 0:24]
    base = np.where((x // 6 + y // 5) % 2 == 0, 60, 190)[..., None] * np.ones(3)
    arr = np.clip(base + rng.normal(0, 12, (20, 24, 3)), 0, 255).astype(np.uint8)
    p = tmp_path / "src.png"
    Image.fromarray(arr).save(p)
    return p


@pytest.mark.parametrize(
    "size", [PrintSize(0.08, 0.066, "in"), PixelSize(12, 10)], ids=["enlarged", "reduced"]
)
def test_a_banded_sharpened_export_equals_a_one_band_export(
    tmp_path: Path, engine: object, size: PrintSize | PixelSize
) -> None:
    loaded = load_image(_photo(tmp_path))
    fm = engine.encode(loaded.rgb)  # type: ignore[attr-defined]
    sharp = plan_export(24, 20, None, size, 600, "crop", sharpen=Sharpen("matte", "high"))
    plain = plan_export(24, 20, None, size, 600, "crop")
    assert sharp.out_w in (48, 12)  # x2 at 600 DPI, or halved
    one = run_export(engine, fm, loaded, sharp, tmp_path / "one.png", band_rows=10_000)  # type: ignore[arg-type]
    banded = run_export(engine, fm, loaded, sharp, tmp_path / "banded.png", band_rows=3)  # type: ignore[arg-type]
    unsharp = run_export(engine, fm, loaded, plain, tmp_path / "plain.png", band_rows=3)  # type: ignore[arg-type]
    a, b, c = (np.asarray(Image.open(p)).astype(int) for p in (one, banded, unsharp))
    assert np.abs(a - b).max() <= 1 and np.mean(a != b) < 0.01  # no seams (float noise at most)
    # ... and it is the unsharp mask of the unsharpened output, applied in output pixels.
    if plain.from_source:
        colour = downscale_source(loaded.pixels, plain)
    else:
        colour = engine.render(fm, plain.source_rect(), plain.out_w, plain.out_h)  # type: ignore[attr-defined]
    usm = UnsharpMask.for_output(Sharpen("matte", "high"), 600)
    expected = quantize(usm.apply(colour), 8).astype(int)
    assert np.abs(a - expected).max() <= 1 and np.mean(a == expected) > 0.99
    assert np.abs(a - c).mean() > 2  # and it did sharpen
