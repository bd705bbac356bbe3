"""Safe loading (modes, orientation, metadata, every failure) and atomic writing (PNG writer, DPI, ICC,
EXIF in PNG/JPEG/TIFF, no partial files)."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile, ImageOps

from viewer.engine import imageio
from viewer.engine.imageio import (
    ImageTooLargeError,
    PngBandWriter,
    atomic_output,
    exif_for_output,
    load_image,
    output_format,
    probe_image,
    save_image,
)
from viewer.errors import ArgumentError, Cancelled, ImageLoadError

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_exif(orientation: int = 6, make: str = "TestCam") -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    e[0x010F] = make
    e[0x0110] = "Model 1"
    e.get_ifd(0x8769)[0x9003] = "1931:05:04 12:00:00"  # DateTimeOriginal, in the Exif sub-IFD
    return e.tobytes()


def read_exif(path: Path) -> Image.Exif:
    with Image.open(path) as im:
        return im.getexif()


def rng_image(h: int, w: int, c: int, seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    a: np.ndarray = np.random.default_rng(seed).integers(0, top + 1, (h, w, c), dtype=np.int64).astype(dtype)
    return a[..., 0] if c == 1 else a


# -------------------------------------------------------------------------------------------- loading


def test_load_rgb_values_and_metadata(tmp_path: Path) -> None:
    a = rng_image(7, 9, 3)
    p = tmp_path / "rgb.png"
    Image.fromarray(a).save(p, icc_profile=ICC)
    im = load_image(p)
    assert im.rgb.dtype == np.float32 and im.rgb.shape == (7, 9, 3)
    np.testing.assert_allclose(im.rgb, a / 255, atol=1e-6)
    assert im.alpha is None and not im.grayscale and im.bit_depth == 8
    assert im.icc == ICC
    assert im.exif is None
    assert (im.width, im.height) == (9, 7)


def test_load_grey_is_flagged_and_replicated(tmp_path: Path) -> None:
    a = rng_image(5, 6, 1)
    p = tmp_path / "grey.png"
    Image.fromarray(a).save(p)
    im = load_image(p)
    assert im.grayscale and im.bit_depth == 8 and im.alpha is None
    for c in range(3):
        np.testing.assert_allclose(im.rgb[..., c], a / 255, atol=1e-6)


def test_load_la_keeps_alpha(tmp_path: Path) -> None:
    a = rng_image(5, 6, 2, seed=1)
    p = tmp_path / "la.png"
    Image.fromarray(a).save(p)
    im = load_image(p)
    assert im.grayscale and im.alpha is not None
    np.testing.assert_allclose(im.alpha, a[..., 1] / 255, atol=1e-6)
    np.testing.assert_allclose(im.rgb[..., 0], a[..., 0] / 255, atol=1e-6)


def test_load_rgba_keeps_alpha(tmp_path: Path) -> None:
    a = rng_image(4, 5, 4, seed=2)
    p = tmp_path / "rgba.png"
    Image.fromarray(a).save(p)
    im = load_image(p)
    assert im.alpha is not None and im.alpha.shape == (4, 5)
    np.testing.assert_allclose(im.alpha, a[..., 3] / 255, atol=1e-6)
    np.testing.assert_allclose(im.rgb, a[..., :3] / 255, atol=1e-6)


def test_load_palette_with_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (4, 3))
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
    pal.putdata([0, 1, 2, 1] * 3)
    p = tmp_path / "pal.png"
    pal.save(p, transparency=0)
    im = load_image(p)
    assert im.alpha is not None and not im.grayscale
    assert im.alpha[0, 0] == 0.0 and im.alpha[0, 1] == 1.0
    np.testing.assert_allclose(im.rgb[0, 1], [1, 0, 0])
    gif = tmp_path / "pal.gif"
    pal.save(gif, transparency=0)
    assert load_image(gif).alpha is not None


def test_load_16bit_grey_png(tmp_path: Path) -> None:
    a = rng_image(6, 7, 1, seed=3, dtype=np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(a.astype("<u2")).save(p)
    im = load_image(p)
    assert im.grayscale and im.bit_depth == 16
    np.testing.assert_allclose(im.rgb[..., 1], a / 65535, atol=1e-7)


def test_load_cmyk_jpeg_converts_to_rgb(tmp_path: Path) -> None:
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    im = load_image(p)
    assert im.rgb.shape == (8, 8, 3) and not im.grayscale
    assert im.rgb[..., 0].mean() > 0.9 and im.rgb[..., 1].mean() < 0.1


def test_load_one_bit(tmp_path: Path) -> None:
    p = tmp_path / "bw.png"
    Image.new("1", (5, 4), 1).save(p)
    im = load_image(p)
    assert im.grayscale and float(im.rgb.min()) == 1.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_applied_like_exif_transpose_and_reset(tmp_path: Path, orientation: int) -> None:
    a = rng_image(5, 8, 3, seed=orientation)
    p = tmp_path / "o.png"
    Image.fromarray(a).save(p, exif=make_exif(orientation))
    with Image.open(p) as src:
        expected = np.asarray(ImageOps.exif_transpose(src).convert("RGB"))
    im = load_image(p)
    np.testing.assert_allclose(im.rgb, expected / 255, atol=1e-6)
    assert im.exif is not None
    e = Image.Exif()
    e.load(im.exif)
    assert e[0x0112] == 1
    assert e[0x010F] == "TestCam"
    assert e.get_ifd(0x8769)[0x9003] == "1931:05:04 12:00:00"
    info = probe_image(p)
    assert (info.width, info.height) == (im.width, im.height)


def test_orientation_6_jpeg_rotates_clockwise(tmp_path: Path) -> None:
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = 255  # left half white: after a 90 degree clockwise turn, the top half is white
    p = tmp_path / "o6.jpg"
    Image.fromarray(a).save(p, exif=make_exif(6), quality=95)
    im = load_image(p)
    assert im.rgb.shape == (40, 20, 3)
    assert im.rgb[:20].mean() > 0.9 and im.rgb[20:].mean() < 0.1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.png", b"", "empty file"),
        ("text.png", b"hello, this is not a picture\n" * 10, "not an image"),
        ("eps.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "not an image"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as err:
        load_image(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("dtype", "shape", "message"),
    [
        ("float32", (8, 9, 3), "32-bit floating-point samples, 3 per pixel"),
        ("uint32", (8, 9, 3), "32-bit unsigned samples, 3 per pixel"),
        ("int16", (8, 9, 3), "16-bit signed samples"),
    ],
)
def test_load_names_the_samples_of_an_unreadable_tiff(
    tmp_path: Path, dtype: str, shape: tuple[int, ...], message: str
) -> None:
    """A TIFF that Pillow cannot identify for its samples says what they are and what to save instead."""
    import tifffile

    p = tmp_path / "scan.tif"
    tifffile.imwrite(p, np.zeros(shape, dtype=dtype), photometric="rgb")
    with pytest.raises(ImageLoadError, match=message) as err:
        load_image(p)
    text = str(err.value)
    assert str(p) in text and "\n" not in text and "8 or 16 bits per sample" in text


def test_load_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "BMP"])
def test_load_rejects_truncated(tmp_path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(rng_image(64, 64, 3)).save(buf, format=fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut.{fmt.lower()}"
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageLoadError) as err:
        load_image(p)
    assert str(p) in str(err.value)


def test_truncated_is_an_error_even_if_pillow_was_told_to_allow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    buf = io.BytesIO()
    Image.fromarray(rng_image(64, 64, 3)).save(buf, format="JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[:900])
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(p)


def _png_header_only(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\0" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk
        + struct.pack(">I", len(idat))
        + b"IDAT"
        + idat
        + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    )


def test_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_png_header_only(100_000, 100_000))  # claims 10 gigapixels in a few bytes
    with pytest.raises(ImageTooLargeError, match="over the input limit of 200 megapixels"):
        load_image(p)
    with pytest.raises(ImageTooLargeError):
        probe_image(p)


def test_input_limit_is_configurable(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    Image.fromarray(rng_image(100, 120, 3)).save(p)  # 0.012 MP
    with pytest.raises(ImageTooLargeError, match=r"0\.01 megapixels"):
        load_image(p, max_megapixels=0.01)
    assert load_image(p, max_megapixels=0.02).width == 120


def test_limit_above_pillows_own_is_honoured(tmp_path: Path) -> None:
    # Pillow refuses > 2 * MAX_IMAGE_PIXELS on its own; our larger limit must take over, not be cut short.
    p = tmp_path / "big.png"
    p.write_bytes(_png_header_only(20_000, 10_000))  # 200 MP header, data truncated
    with pytest.raises(ImageLoadError) as err:
        load_image(p, max_megapixels=250)
    assert not isinstance(err.value, ImageTooLargeError)
    assert "truncated" in str(err.value) or "decode" in str(err.value)


# -------------------------------------------------------------------------------------------- PNG writer


def decode_png(data: bytes) -> tuple[dict[bytes, bytes], np.ndarray]:
    """A small independent PNG decoder (non-interlaced; all five filters) for checking our writer."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, idat = 8, {}, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IDAT":
            idat += body
        else:
            chunks[kind] = body
        pos += 12 + n
    w, h, depth, ctype = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    ch = {0: 1, 4: 2, 2: 3, 6: 4}[ctype]
    bpp = ch * depth // 8
    stride = w * bpp
    raw = zlib.decompress(idat)
    assert len(raw) == h * (stride + 1)
    prev = bytearray(stride)
    out = bytearray()
    for r in range(h):
        f = raw[r * (stride + 1)]
        line = bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                assert f == 4
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[i] = (line[i] + pred) & 0xFF
        out += line
        prev = line
    dt = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    arr = np.frombuffer(bytes(out), dtype=dt).reshape(h, w, ch)
    return chunks, arr


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("depth", [8, 16])
def test_png_band_writer_round_trip(channels: int, depth: int) -> None:
    dtype = np.uint8 if depth == 8 else np.uint16
    a = rng_image(23, 11, channels, seed=channels + depth, dtype=dtype).reshape(23, 11, channels)
    a[5:12] = a[5:6]  # flat area: the writer should pick non-trivial filters
    a[14:18] = np.arange(11, dtype=dtype)[None, :, None]
    buf = io.BytesIO()
    w = PngBandWriter(buf, 11, 23, channels=channels, bit_depth=depth, dpi=254, icc=ICC, exif=make_exif(1))
    for r0, r1 in [(0, 1), (1, 9), (9, 9), (9, 23)]:
        w.write_rows(a[r0:r1])
    w.close()
    chunks, back = decode_png(buf.getvalue())
    np.testing.assert_array_equal(back.astype(np.int64), a.astype(np.int64))
    assert struct.unpack(">IIB", chunks[b"pHYs"]) == (10000, 10000, 1)
    assert zlib.decompress(chunks[b"iCCP"].split(b"\0", 1)[1][1:]) == ICC
    assert chunks[b"eXIf"] == make_exif(1)[6:]
    assert chunks[b"IEND"] == b""


def test_png_writer_uses_filters() -> None:
    a = np.tile(np.arange(64, dtype=np.uint8), (32, 1))  # a smooth ramp compresses far better filtered
    buf = io.BytesIO()
    w = PngBandWriter(buf, 64, 32, channels=1)
    w.write_rows(a)
    w.close()
    filters = {zlib.decompress(decode_png_idat(buf.getvalue()))[r * 65] for r in range(32)}
    assert filters - {0}


def test_png_bands_compress_as_one_stream() -> None:
    """Bands are deflated apart (on worker threads), each primed with the 32 KB before it: a pattern that
    repeats across bands of one row still compresses to a fraction of its size (unprimed, each band of
    random bytes would start from nothing and not compress at all; measured 3.4 against 25.9 KB, 1.1 KB
    written at once), and the zlib stream is whole (checksum included)."""
    pattern = np.random.default_rng(4).integers(0, 256, (3, 64, 3), dtype=np.uint8)
    a = np.tile(pattern, (40, 1, 1))

    def written(step: int) -> bytes:
        buf = io.BytesIO()
        w = PngBandWriter(buf, 64, 120, channels=3)
        for r in range(0, 120, step):
            w.write_rows(a[r : r + step])
        w.close()
        return buf.getvalue()

    one, banded = written(120), written(1)
    assert len(one) < len(banded) < a.size / 4
    for data in (one, banded):
        _, back = decode_png(data)
        np.testing.assert_array_equal(back, a)
        assert len(zlib.decompress(decode_png_idat(data))) == 120 * (1 + 64 * 3)


def test_png_band_failure_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands are filtered on the pool's threads, each waiting for the one before: a band that fails there
    fails the writer (no hang), and the bands after it fail too instead of writing a broken stream."""
    from viewer.engine import pngwriter

    real = pngwriter._filter_rows
    calls: list[int] = []

    def failing(x: np.ndarray, prev: np.ndarray, bpp: int) -> bytes:
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("no memory for this band")
        return real(x, prev, bpp)

    monkeypatch.setattr(pngwriter, "_filter_rows", failing)
    w = PngBandWriter(io.BytesIO(), 8, 10, channels=3)
    with pytest.raises(MemoryError, match="this band"):
        for r in range(10):
            w.write_rows(np.full((1, 8, 3), r, np.uint8))
        w.close()


def decode_png_idat(data: bytes) -> bytes:
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + n]
        pos += 12 + n
    return idat


def test_png_writer_checks_rows() -> None:
    w = PngBandWriter(io.BytesIO(), 4, 2, channels=3)
    with pytest.raises(ValueError):
        w.write_rows(np.zeros((1, 5, 3), np.uint8))
    with pytest.raises(ValueError):
        w.write_rows(np.zeros((1, 4, 3), np.uint16))
    w.write_rows(np.zeros((1, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="incomplete"):
        w.close()
    with pytest.raises(ValueError, match="too many rows"):
        w.write_rows(np.zeros((2, 4, 3), np.uint8))


def test_pillow_reads_our_png(tmp_path: Path) -> None:
    a = rng_image(9, 13, 4, seed=5)
    p = tmp_path / "x.png"
    save_image(p, a[..., :3], alpha_u=a[..., 3], dpi=300, icc=ICC, exif=make_exif(1))
    with Image.open(p) as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), a)
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert im.info["icc_profile"] == ICC
        assert im.getexif()[0x010F] == "TestCam"


# -------------------------------------------------------------------------------------------- save_image


@pytest.mark.parametrize("ext", [".png", ".jpg", ".jpeg", ".tif", ".tiff"])
def test_save_records_dpi_icc_exif(tmp_path: Path, ext: str) -> None:
    a = rng_image(16, 24, 3, seed=7)
    p = tmp_path / f"out{ext}"
    save_image(p, a, dpi=300, icc=ICC, exif=make_exif(6))
    with Image.open(p) as im:
        assert im.size == (24, 16)
        assert tuple(round(float(v)) for v in im.info["dpi"]) == (300, 300)
        assert im.info["icc_profile"] == ICC
        exif = im.getexif()
        assert exif[0x010F] == "TestCam"
        assert exif[0x0112] == 1  # the pixels are upright: the orientation tag must say so
        assert float(exif[282]) == pytest.approx(300)  # EXIF resolution agrees with the DPI
        if ext in (".tif", ".tiff"):
            assert im.tag_v2[296] == 2  # type: ignore[attr-defined]  # ResolutionUnit: inch
    assert output_format(p) in ("PNG", "JPEG", "TIFF")


def test_jpeg_density_is_jfif(tmp_path: Path) -> None:
    p = tmp_path / "d.jpg"
    save_image(p, rng_image(8, 8, 3), dpi=240)
    data = p.read_bytes()
    i = data.index(b"JFIF\0")
    unit, xd, yd = struct.unpack(">BHH", data[i + 7 : i + 12])
    assert (unit, xd, yd) == (1, 240, 240)


def test_save_grey_and_16_bit(tmp_path: Path) -> None:
    g16 = rng_image(10, 12, 1, seed=8, dtype=np.uint16)
    save_image(tmp_path / "g.png", g16, bit_depth=16, grayscale=True)
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), g16)
    save_image(tmp_path / "g.tif", g16, bit_depth=16, grayscale=True)
    with Image.open(tmp_path / "g.tif") as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), g16)
    save_image(tmp_path / "g.jpg", g16, bit_depth=16, grayscale=True)  # JPEG: 8-bit grey
    with Image.open(tmp_path / "g.jpg") as im:
        assert im.mode == "L"
    rgb16 = rng_image(10, 12, 3, seed=9, dtype=np.uint16)
    save_image(tmp_path / "c.png", rgb16, bit_depth=16)
    _, back = decode_png((tmp_path / "c.png").read_bytes())
    np.testing.assert_array_equal(back.astype(np.uint16), rgb16)
    save_image(tmp_path / "c.tif", rgb16, bit_depth=16)  # documented: 16-bit colour TIFF drops to 8 bits
    with Image.open(tmp_path / "c.tif") as im:
        assert im.mode == "RGB"
        assert np.abs(np.asarray(im).astype(int) - np.rint(rgb16 / 257)).max() <= 1


def test_grayscale_flag_reduces_colour_to_luma(tmp_path: Path) -> None:
    a = np.zeros((2, 3, 3), np.uint8)
    a[..., 0] = 255
    save_image(tmp_path / "r.png", a, grayscale=True)
    with Image.open(tmp_path / "r.png") as im:
        assert im.mode == "L"
        assert int(np.asarray(im)[0, 0]) == round(0.299 * 255)


def test_jpeg_flattens_alpha_onto_white(tmp_path: Path) -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    alpha = np.zeros((8, 8), np.uint8)
    alpha[:, :4] = 255
    save_image(tmp_path / "a.jpg", a, alpha_u=alpha, jpeg_quality=100)
    with Image.open(tmp_path / "a.jpg") as im:
        assert im.mode == "RGB"
        px = np.asarray(im).astype(int)
    assert px[:, :3].max() < 20 and px[:, 5:].min() > 235


def test_tiff_keeps_alpha(tmp_path: Path) -> None:
    a = rng_image(6, 6, 4, seed=10)
    save_image(tmp_path / "a.tif", a[..., :3], alpha_u=a[..., 3])
    with Image.open(tmp_path / "a.tif") as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), a)


@pytest.mark.parametrize("name", ["out.bmp", "out.webp", "out", "out.png.txt"])
def test_unsupported_output_format(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArgumentError, match="unsupported output format"):
        save_image(tmp_path / name, rng_image(2, 2, 3))
    assert list(tmp_path.iterdir()) == []


def test_format_limits() -> None:
    imageio.check_format_limits("JPEG", 65500, 100)
    with pytest.raises(ArgumentError, match="too large for JPEG"):
        imageio.check_format_limits("JPEG", 65501, 100)
    with pytest.raises(ArgumentError, match="too large for an uncompressed TIFF"):
        imageio.check_format_limits("TIFF", 40000, 40000, 3, 8)
    imageio.check_format_limits("PNG", 40000, 40000, 4, 16)


def test_exif_for_output_sets_resolution_and_size() -> None:
    e0 = Image.Exif()
    e0.load(make_exif(1))
    sub = e0.get_ifd(0x8769)
    sub[0xA002], sub[0xA003] = 10, 20
    out = exif_for_output(e0.tobytes(), 1000, 2000, 300)
    assert out is not None
    e = Image.Exif()
    e.load(out)
    assert float(e[282]) == 300 and float(e[283]) == 300 and e[296] == 2
    assert e.get_ifd(0x8769)[0xA002] == 1000 and e.get_ifd(0x8769)[0xA003] == 2000
    assert exif_for_output(None, 1, 1, 300) is None


# -------------------------------------------------------------------------------------------- atomicity


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt(), Cancelled()])
def test_failed_png_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    calls = {"n": 0}
    real = PngBandWriter.write_rows

    def failing(self: PngBandWriter, rows: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise exc
        real(self, rows)

    monkeypatch.setattr(PngBandWriter, "write_rows", failing)
    big = np.zeros((3000, 1500, 3), np.uint8)  # several bands of rows
    with pytest.raises(type(exc)):
        save_image(tmp_path / "out.png", big)
    assert calls["n"] == 2
    assert _files(tmp_path) == []


def test_failed_pillow_write_keeps_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "out.jpg"
    p.write_bytes(b"old contents")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(Exception, match="No space left"):
        save_image(p, rng_image(4, 4, 3))
    assert p.read_bytes() == b"old contents"
    assert _files(tmp_path) == ["out.jpg"]


def test_atomic_output_replaces_only_on_success(tmp_path: Path) -> None:
    p = tmp_path / "f.png"
    with atomic_output(p) as fh:
        fh.write(b"one")
        assert _files(tmp_path)[0].startswith(".f.png.") and _files(tmp_path)[0].endswith(".part")
        assert not p.exists()
    assert p.read_bytes() == b"one"
    with pytest.raises(KeyboardInterrupt), atomic_output(p) as fh:
        fh.write(b"two")
        raise KeyboardInterrupt
    assert p.read_bytes() == b"one"
    assert _files(tmp_path) == ["f.png"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_output_is_not_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        save_image(tmp_path / "m.png", rng_image(2, 2, 3))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.png").stat().st_mode) == 0o644


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot write"):
        save_image(tmp_path / "no" / "such" / "x.png", rng_image(2, 2, 3))
    assert imageio.check_output_path(tmp_path / "x.png") == "PNG"
    with pytest.raises(ArgumentError, match="does not exist"):
        imageio.check_output_path(tmp_path / "no" / "x.png")
    with pytest.raises(ArgumentError):
        imageio.check_output_path(tmp_path)
