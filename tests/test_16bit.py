"""16 bits end to end: 48- and 64-bit TIFF and PNG scans load at 16 bits, and render/export keep them."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from viewer import cli
from viewer.engine.imageio import PngBandWriter, display_8bit, load_image
from viewer.errors import ImageLoadError

REPO = Path(__file__).resolve().parents[1]
FAST_MODEL = REPO / "models" / "liif-lm.safetensors"
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def scan(h: int = 12, w: int = 20, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Random 16-bit samples, most of them not a multiple of 257 (so not 8-bit values widened)."""
    return np.random.default_rng(seed).integers(0, 65536, (h, w, channels), dtype=np.uint16)


def write_png16(path: Path, a: np.ndarray, icc: bytes | None = None) -> None:
    with open(path, "wb") as fh:
        w = PngBandWriter(fh, a.shape[1], a.shape[0], channels=a.shape[2], bit_depth=16, icc=icc)
        w.write_rows(a)
        w.close()


@pytest.mark.parametrize("compression", [None, "zlib", "lzw", "deflate-planar"])
def test_48_bit_tiff_loads_at_16_bits(tmp_path: Path, compression: str | None) -> None:
    a = scan()
    p = tmp_path / "scan.tif"
    if compression == "deflate-planar":  # samples stored plane by plane
        tifffile.imwrite(
            p, np.moveaxis(a, 2, 0), photometric="rgb", planarconfig="separate", compression="zlib"
        )
    else:
        tifffile.imwrite(p, a, photometric="rgb", compression=compression, iccprofile=ICC)
    loaded = load_image(p)
    assert loaded.bit_depth == 16 and loaded.pixels.dtype == np.uint16 and not loaded.grayscale
    np.testing.assert_array_equal(loaded.pixels, a)
    if compression != "deflate-planar":
        assert loaded.icc == ICC


def test_64_bit_tiff_and_png_keep_their_alpha_at_16_bits(tmp_path: Path) -> None:
    a = scan(channels=4, seed=1)
    tifffile.imwrite(tmp_path / "a.tif", a, photometric="rgb", extrasamples=["unassalpha"])
    write_png16(tmp_path / "a.png", a)
    for name in ("a.tif", "a.png"):
        loaded = load_image(tmp_path / name)
        assert loaded.bit_depth == 16 and loaded.alpha_pixels is not None
        np.testing.assert_array_equal(loaded.pixels, a[..., :3])
        np.testing.assert_array_equal(loaded.alpha_pixels, a[..., 3])


def test_48_bit_png_and_16_bit_grey_load_at_16_bits(tmp_path: Path) -> None:
    a = scan(seed=2)
    write_png16(tmp_path / "c.png", a, icc=ICC)
    loaded = load_image(tmp_path / "c.png")
    assert loaded.bit_depth == 16 and loaded.icc == ICC
    np.testing.assert_array_equal(loaded.pixels, a)
    g = scan(channels=2, seed=3)  # grey + alpha
    write_png16(tmp_path / "ga.png", g)
    tifffile.imwrite(tmp_path / "g.tif", g[..., 0], photometric="minisblack")
    ga = load_image(tmp_path / "ga.png")
    assert ga.grayscale and ga.bit_depth == 16 and ga.alpha_pixels is not None
    np.testing.assert_array_equal(ga.pixels[..., 1], g[..., 0])
    grey = load_image(tmp_path / "g.tif")
    assert grey.grayscale and grey.bit_depth == 16
    np.testing.assert_array_equal(grey.pixels[..., 2], g[..., 0])


def test_a_tiff_orientation_is_applied_to_16_bit_pixels(tmp_path: Path) -> None:
    a = scan(h=6, w=10, seed=4)
    p = tmp_path / "rot.tif"
    tifffile.imwrite(p, a, photometric="rgb", extratags=[(274, 3, 1, 6, True)])  # rotate 90° clockwise
    loaded = load_image(p)
    assert (loaded.width, loaded.height) == (6, 10)
    np.testing.assert_array_equal(loaded.pixels, np.rot90(a, -1))


def test_a_damaged_16_bit_tiff_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "cut.tif"
    tifffile.imwrite(p, scan(h=64, w=64), photometric="rgb", compression="zlib")
    data = p.read_bytes()
    p.write_bytes(data[:200] + bytes(len(data) - 200))  # the compressed strip zeroed
    with pytest.raises(ImageLoadError, match=r"cut\.tif: cannot decode"):
        load_image(p)


def gradient(tmp_path: Path) -> Path:
    """A 48-bit gradient scan, 1200 x 8: every channel spans thousands of 16-bit levels."""
    x = np.linspace(0.0, 1.0, 1200)[None, :] * np.ones((8, 1))
    a = np.stack([x, 1 - x, 0.25 + 0.5 * x], axis=2) * 65535
    p = tmp_path / "gradient.tif"
    tifffile.imwrite(p, np.rint(a).astype(np.uint16), photometric="rgb", resolution=(600, 600))
    return p


def levels(a: np.ndarray) -> list[int]:
    return [len(np.unique(a[..., c])) for c in range(3)]


@pytest.mark.skipif(not FAST_MODEL.is_file(), reason="the shipped liif-lm model is not in models/")
def test_a_48_bit_gradient_rendered_x2_keeps_over_2000_levels_per_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))
    src = gradient(tmp_path)
    for ext in ("tif", "png", "jpg"):
        out = tmp_path / f"x2.{ext}"
        rc = cli.main(["render", str(src), "-o", str(out), "--scale", "2", "--model", str(FAST_MODEL),
                       "--disk-cache", "0"])  # fmt: skip
        assert rc == 0, capsys.readouterr().err
    tif = tifffile.imread(tmp_path / "x2.tif")
    png = np.asarray(imagecodecs.png_decode((tmp_path / "x2.png").read_bytes()))
    jpg = np.asarray(Image.open(tmp_path / "x2.jpg"))
    for a in (tif, png):
        assert a.dtype == np.uint16 and a.shape == (16, 2400, 3)
        assert min(levels(a)) > 2000, levels(a)
    np.testing.assert_array_equal(tif, png)
    assert jpg.dtype == np.uint8 and max(levels(jpg)) <= 256  # JPEG stays 8-bit


def test_a_16_bit_tiff_export_keeps_dpi_icc_and_the_camera_name(tmp_path: Path) -> None:
    import torch  # noqa: F401  (the engine needs it)

    from viewer.engine.export import plan_export, run_export
    from viewer.engine.printsize import PixelSize
    from viewer.engine.render import Engine
    from viewer.liif.liif import make_liif

    exif = Image.Exif()
    exif[271] = "ScanCo"
    exif.get_ifd(0x8769)[0x9003] = "1952:06:01 10:00:00"  # DateTimeOriginal, in the Exif sub-IFD
    src = tmp_path / "src.tif"
    tifffile.imwrite(
        src, scan(seed=5), photometric="rgb", iccprofile=ICC, extratags=[(271, 2, None, "ScanCo", True)]
    )
    loaded = load_image(src)
    loaded = type(loaded)(loaded.path, loaded.pixels, loaded.alpha_pixels, ICC, exif.tobytes(), False, 16)
    engine = Engine(make_liif(seed=3), "cpu", "fp32")
    fm = engine.encode(loaded.rgb)
    plan = plan_export(20, 12, None, PixelSize(30, 18), 240, "stretch")
    notes: list[str] = []
    out = run_export(engine, fm, loaded, plan, tmp_path / "o.tif", on_note=notes.append)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages.first
        assert page.dtype == np.uint16 and page.shape == (18, 30, 3)
        tags = {t.name: t.value for t in page.tags.values()}
    assert tags["Make"] == "ScanCo" and tags["InterColorProfile"] == ICC
    assert tags["XResolution"] == (240, 1)
    assert any("16-bit colour TIFF" in n for n in notes)
    with Image.open(out) as im:
        assert im.info["dpi"] == pytest.approx((240, 240))


def test_the_screen_copy_of_a_16_bit_scan_rounds_every_value_to_the_nearest_8_bit_one(tmp_path: Path) -> None:
    every = np.arange(65536, dtype=np.uint16)
    nearest = (every.astype(np.int64) * 510 + 65535) // 131070  # round(p * 255 / 65535), exact
    assert np.array_equal(display_8bit(every), nearest.astype(np.uint8))
    # the float32 rounding the screen copy was made with before: the same values
    assert np.array_equal(display_8bit(every), np.rint(every.astype(np.float32) * np.float32(255 / 65535)))
    a = scan(40, 30)
    p = tmp_path / "scan.tif"
    tifffile.imwrite(p, a, photometric="rgb")
    shown = load_image(p).rgb8()
    assert shown.dtype == np.uint8 and np.array_equal(shown, nearest[a].astype(np.uint8))
