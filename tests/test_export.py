"""Export planning and the banded export run, with a real (tiny, random) LIIF engine."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from viewer.engine import export as export_mod
from viewer.engine.cancel import CancelToken
from viewer.engine.export import ExportPlan, plan_export, run_export
from viewer.engine.imageio import LoadedImage, PngBandWriter, load_image, quantize, to_luma
from viewer.engine.printsize import PixelSize, PrintSize, Region
from viewer.errors import ArgumentError, Cancelled, LimitError

torch = pytest.importorskip("torch")
from viewer.engine.render import Engine, FeatureMap, SourceRect  # noqa: E402
from viewer.liif.liif import make_liif  # noqa: E402

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    e[0x010F] = "TestCam"
    return e.tobytes()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(make_liif(seed=3), "cpu", "fp32", chunk=600)


def photo(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def encode(engine: Engine, loaded: LoadedImage) -> FeatureMap:
    return engine.encode(loaded.rgb)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def png_ihdr(path: Path) -> tuple[int, int, int, int]:
    w, h, depth, ctype = struct.unpack(">IIBB", path.read_bytes()[16:26])
    return w, h, depth, ctype


# ------------------------------------------------------------------------------------------ planning


def test_plan_print_size_and_orientation() -> None:
    p = plan_export(4000, 3000, None, PrintSize(8, 10, "in"), 300, "crop")
    assert (p.out_w, p.out_h) == (3000, 2400)  # landscape photo: the 8x10 print turns to 10x8
    assert p.dpi == 300 and p.print_inches() == (10, 8)
    assert p.rect == pytest.approx((125, 0, 3750, 3000))  # crop to 5:4, centred: 125 px off each side
    assert p.magnification == pytest.approx(0.8)


def test_plan_default_dpi_for_print_is_300() -> None:
    assert (plan_export(3000, 4000, None, PrintSize(210, 297, "mm"), None).out_w) == 2480


def test_plan_pixel_size_and_fit_modes() -> None:
    p = plan_export(100, 50, Region(10, 10, 40, 20), PixelSize(300, 300), None, "fit")
    assert (p.out_w, p.out_h) == (300, 150) and p.dpi is None
    assert tuple(p.rect) == (10, 10, 40, 20)
    s = plan_export(100, 50, Region(10, 10, 40, 20), PixelSize(300, 300), 150, "stretch")
    assert (s.out_w, s.out_h, s.dpi) == (300, 300, 150)
    c = plan_export(100, 50, Region(10, 10, 40, 20), PixelSize(300, 300), None, "crop")
    assert tuple(c.rect) == pytest.approx((20, 10, 20, 20))


@pytest.mark.parametrize(
    "region",
    [
        Region(-1, 0, 10, 10),
        Region(0, -0.5, 10, 10),
        Region(95, 0, 10, 10),
        Region(0, 45, 10, 10),
        Region(200, 200, 5, 5),
    ],
)
def test_plan_region_outside(region: Region) -> None:
    with pytest.raises(ArgumentError, match="outside the 100x50 image"):
        plan_export(100, 50, region, PixelSize(10, 10))


def test_plan_output_limit() -> None:
    with pytest.raises(LimitError, match="over the limit of 400 megapixels"):
        plan_export(4000, 3000, None, PrintSize(24, 36, "in"), 1000)  # 24000 x 36000 = 864 MP
    with pytest.raises(LimitError, match="over the limit of 1 megapixels"):
        plan_export(100, 100, None, PixelSize(1001, 1000), max_output_megapixels=1)
    assert plan_export(100, 100, None, PixelSize(1000, 1000), max_output_megapixels=1).megapixels == 1.0


def test_plan_tiny_print_is_refused() -> None:
    with pytest.raises(ArgumentError, match="less than one pixel"):
        plan_export(100, 100, None, PrintSize(1, 1, "mm"), 1)


# ------------------------------------------------------------------------------------------ running


def _loaded(tmp_path: Path, arr: np.ndarray, name: str = "src.png", **save: object) -> LoadedImage:
    p = tmp_path / name
    Image.fromarray(arr).save(p, **save)  # type: ignore[arg-type]
    return load_image(p)


def test_png_export_equals_a_whole_render(tmp_path: Path, engine: Engine) -> None:
    loaded = _loaded(tmp_path, photo())
    fm = encode(engine, loaded)
    plan = plan_export(16, 12, Region(2, 1, 11, 9), PixelSize(37, 29), 72, "stretch")
    seen: list[tuple[int, int]] = []
    out = run_export(
        engine, fm, loaded, plan, tmp_path / "o.png", progress=lambda d, t: seen.append((d, t)), band_rows=5
    )
    whole = engine.render(fm, SourceRect(2, 1, 11, 9), 37, 29)
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (37, 29)
        np.testing.assert_array_equal(np.asarray(im), quantize(whole, 8))  # 6 bands, no seams
        assert im.info["dpi"] == pytest.approx((72, 72), abs=0.01)
    assert seen[-1] == (37 * 29, 37 * 29)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len({d for d, _ in seen}) >= 6  # at least once per band
    assert files(tmp_path) == ["o.png", "src.png"]


@pytest.mark.parametrize("ext", ["png", "jpg", "tif"])
def test_export_keeps_icc_exif_dpi(tmp_path: Path, engine: Engine, ext: str) -> None:
    loaded = _loaded(tmp_path, photo(10, 14), "src.jpg", icc_profile=ICC, exif=make_exif(6), quality=95)
    assert (loaded.width, loaded.height) == (10, 14)  # orientation 6 applied on load
    fm = encode(engine, loaded)
    plan = plan_export(loaded.width, loaded.height, None, PrintSize(1, 1.4, "in"), 30, "crop")
    out = run_export(engine, fm, loaded, plan, tmp_path / f"o.{ext}")
    with Image.open(out) as im:
        assert im.size == (30, 42)
        assert tuple(round(float(v)) for v in im.info["dpi"]) == (30, 30)
        assert im.info["icc_profile"] == ICC
        exif = im.getexif()
        assert exif[0x010F] == "TestCam" and exif[0x0112] == 1


def test_alpha_is_upscaled_and_kept(tmp_path: Path, engine: Engine) -> None:
    rgba = np.dstack((photo(), np.tile(np.linspace(0, 255, 16).astype(np.uint8), (12, 1))))
    loaded = _loaded(tmp_path, rgba)
    fm = encode(engine, loaded)
    plan = plan_export(16, 12, Region(1, 1, 14, 10), PixelSize(42, 30), None, "stretch")
    out = run_export(engine, fm, loaded, plan, tmp_path / "o.png", band_rows=7)
    assert loaded.alpha is not None
    ref = Image.fromarray(loaded.alpha).resize((42, 30), Image.Resampling.BICUBIC, box=(1, 1, 15, 11))
    with Image.open(out) as im:
        assert im.mode == "RGBA"
        a = np.asarray(im)[..., 3].astype(int)
    np.testing.assert_allclose(a, quantize(np.clip(np.asarray(ref), 0, 1), 8), atol=1)
    assert a[:, 0].mean() < a[:, -1].mean() - 150  # the ramp survived
    run_export(engine, fm, loaded, plan, tmp_path / "o.tif")
    with Image.open(tmp_path / "o.tif") as im:
        assert im.mode == "RGBA"


def test_grayscale_stays_grayscale(tmp_path: Path, engine: Engine) -> None:
    grey = photo()[..., 0]
    loaded = _loaded(tmp_path, grey)
    assert loaded.grayscale
    fm = encode(engine, loaded)
    plan = plan_export(16, 12, None, PixelSize(24, 18), None, "stretch")
    for ext in ("png", "jpg", "tif"):
        out = run_export(engine, fm, loaded, plan, tmp_path / f"o.{ext}")
        with Image.open(out) as im:
            assert im.mode == "L", ext
    with Image.open(tmp_path / "o.png") as im:
        expected = quantize(to_luma(engine.render(fm, SourceRect(0, 0, 16, 12), 24, 18)), 8)
        np.testing.assert_array_equal(np.asarray(im), expected)


def test_16_bit_source_gives_16_bit_png(tmp_path: Path, engine: Engine) -> None:
    g16 = (photo()[..., 0].astype(np.uint16) * 257 + 123).astype("<u2")
    loaded = _loaded(tmp_path, g16)
    assert loaded.bit_depth == 16
    fm = encode(engine, loaded)
    plan = plan_export(16, 12, None, PixelSize(20, 15), None, "stretch")
    out = run_export(engine, fm, loaded, plan, tmp_path / "o.png")
    assert png_ihdr(out) == (20, 15, 16, 0)
    with Image.open(out) as im:
        assert im.mode == "I;16"
        got = np.asarray(im)
    expected = quantize(to_luma(engine.render(fm, SourceRect(0, 0, 16, 12), 20, 15)), 16)
    np.testing.assert_array_equal(got, expected)
    assert np.any(got % 257 != 0)  # real 16-bit values, not 8 bits stretched
    run_export(engine, fm, loaded, plan, tmp_path / "o.tif")
    with Image.open(tmp_path / "o.tif") as im:
        assert im.mode == "I;16"


def test_16_bit_colour_png_written_at_16_bits(tmp_path: Path, engine: Engine) -> None:
    rgb = photo()
    pixels = (rgb.astype(np.float64) * 257).astype(np.uint16)  # the same values, held at 16 bits
    loaded = LoadedImage(tmp_path / "x.png", pixels, None, None, None, False, 16)
    fm = encode(engine, loaded)
    plan = plan_export(16, 12, None, PixelSize(8, 6), None, "stretch")
    out = run_export(engine, fm, loaded, plan, tmp_path / "o.png")
    assert png_ihdr(out) == (8, 6, 16, 2)


@pytest.mark.parametrize("ext", ["png", "jpg", "tif"])
def test_cancel_mid_export_leaves_nothing(tmp_path: Path, engine: Engine, ext: str) -> None:
    loaded = _loaded(tmp_path, photo())
    fm = encode(engine, loaded)
    plan = plan_export(16, 12, None, PixelSize(40, 60), None, "stretch")
    token = CancelToken()
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if done >= total // 3:
            token.cancel()

    target = tmp_path / f"out.{ext}"
    with pytest.raises(Cancelled):
        run_export(engine, fm, loaded, plan, target, cancel=token, progress=progress, band_rows=10)
    assert 0 < max(calls) < 40 * 60
    assert files(tmp_path) == ["src.png"]


def test_writer_failure_leaves_nothing_and_keeps_old_file(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _loaded(tmp_path, photo())
    fm = encode(engine, loaded)
    plan = plan_export(16, 12, None, PixelSize(30, 30), None, "stretch")
    target = tmp_path / "out.png"
    target.write_bytes(b"previous export")
    n = {"rows": 0}
    real = PngBandWriter.write_rows

    def failing(self: PngBandWriter, rows: np.ndarray) -> None:
        n["rows"] += 1
        if n["rows"] == 2:
            raise OSError(28, "No space left on device")
        real(self, rows)

    monkeypatch.setattr(PngBandWriter, "write_rows", failing)
    with pytest.raises(Exception, match="No space left"):
        run_export(engine, fm, loaded, plan, target, band_rows=8)
    assert target.read_bytes() == b"previous export"
    assert files(tmp_path) == ["out.png", "src.png"]


def test_bands_are_bounded_for_wide_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_mod, "MAX_BAND_PIXELS", 1000)
    assert export_mod._band_rows(300, 256) == 3
    assert export_mod._band_rows(5000, 256) == 1
    assert export_mod._band_rows(2, 256) == 256


def test_bad_output_path_is_refused_first(tmp_path: Path, engine: Engine) -> None:
    loaded = _loaded(tmp_path, photo())
    fm = encode(engine, loaded)
    plan = ExportPlan(Region(0, 0, 16, 12), 8, 6, None, "stretch")
    with pytest.raises(ArgumentError, match="unsupported output format"):
        run_export(engine, fm, loaded, plan, tmp_path / "o.gif")
    with pytest.raises(ArgumentError, match="quality"):
        run_export(engine, fm, loaded, plan, tmp_path / "o.jpg", jpeg_quality=0)
    assert files(tmp_path) == ["src.png"]


# ------------------------------------------------------------------------------ through the lazy store


def big_photo(tmp_path: Path, w: int = 420, h: int = 300) -> LoadedImage:
    rng = np.random.default_rng(7)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    Image.fromarray(np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)).save(
        tmp_path / "big.png"
    )
    return load_image(tmp_path / "big.png")


def test_a_region_export_encodes_only_the_region_and_equals_the_dense_export(tmp_path: Path) -> None:
    engine = Engine(make_liif(n_resblocks=3, seed=3), "cpu", "fp32")
    loaded = big_photo(tmp_path)
    assert loaded.pixels.dtype == np.uint8
    plan = plan_export(loaded.width, loaded.height, Region(200, 100, 60, 50), PixelSize(150, 125))
    store = engine.open_store(loaded.pixels, tile=32)
    run_export(engine, store, loaded, plan, tmp_path / "lazy.png")
    run_export(engine, encode(engine, loaded), loaded, plan, tmp_path / "dense.png")
    lazy = np.asarray(Image.open(tmp_path / "lazy.png"), np.int16)
    dense = np.asarray(Image.open(tmp_path / "dense.png"), np.int16)
    assert np.abs(lazy - dense).max() <= 1
    total = store.rows * store.cols
    # The region (x 200-260, y 100-150) widened to the projection's 32-latent blocks and the unfold's
    # neighbour (x 191-289, y 95-161): tiles 5-9 across and 2-5 down, 20 of the photo's 140.
    assert store.encoded == 20 and total == 140


def test_a_whole_photo_export_streams_through_a_small_budget(tmp_path: Path) -> None:
    engine = Engine(make_liif(n_resblocks=2, seed=3), "cpu", "fp32")
    loaded = big_photo(tmp_path)
    plan = plan_export(loaded.width, loaded.height, None, PixelSize(840, 600))
    tile_bytes = engine.model.feat_dim * 32 * 32 * 4
    store = engine.open_store(loaded.pixels, tile=32, budget_bytes=70 * tile_bytes)  # half the 140 tiles
    peak = [0]
    real_insert = store._insert

    def insert(key: tuple[int, int], value: Any) -> None:
        real_insert(key, value)
        peak[0] = max(peak[0], store.memory_bytes)

    store._insert = insert  # type: ignore[method-assign]
    run_export(engine, store, loaded, plan, tmp_path / "lazy.png", band_rows=64)
    run_export(engine, encode(engine, loaded), loaded, plan, tmp_path / "dense.png")
    lazy = np.asarray(Image.open(tmp_path / "lazy.png"), np.int16)
    dense = np.asarray(Image.open(tmp_path / "dense.png"), np.int16)
    assert np.abs(lazy - dense).max() <= 1
    assert peak[0] <= 70 * tile_bytes and store.evicted > 0
    # Streaming re-encodes little: every tile about once, not once per band.
    assert store.encoded <= 1.3 * store.rows * store.cols
