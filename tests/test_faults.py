"""Faults lose nothing (issue 26): a full disk, SIGTERM and SIGHUP, crafted checkpoints, metadata a format
cannot hold, no display, downscaling, and the minor cases. Each test fails without its fix."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer.engine import imageio
from viewer.engine.export import plan_export, run_export
from viewer.engine.imageio import CheckedFile, load_image, save_image, temp_prefix
from viewer.engine.printsize import PixelSize
from viewer.errors import ArgumentError, ViewerError

torch = pytest.importorskip("torch")
from viewer.engine.render import Engine  # noqa: E402
from viewer.liif.liif import make_liif  # noqa: E402

FLAT = (200, 50, 10)


@pytest.fixture(scope="module")
def engine() -> Engine:
    """A tiny random model: far from the identity, so a colour it is asked to reproduce drifts."""
    return Engine(make_liif(seed=3), "cpu", "fp32", chunk=600)


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random pixels: they compress badly, so a file of them is about 3 bytes a pixel."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def leftovers(folder: Path) -> list[str]:
    """Temporary files an interrupted or failed write would leave."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def export_file(engine: Engine, src: Path, out: Path, size: tuple[int, int], **kw: object) -> Path:
    """Export the whole of `src` at `size` pixels (stretched), through the engine's export."""
    loaded = load_image(src)
    plan = plan_export(loaded.width, loaded.height, None, PixelSize(*size), None, "stretch")
    return run_export(engine, engine.encode(loaded.rgb), loaded, plan, out, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB tmpfs with 1.5 MB of it used; skipped where a tmpfs cannot be mounted (not root)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root on Linux; the fake full disk below covers the logic")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        (mnt / "fill").write_bytes(b"\0" * 1_500_000)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("ext", ["jpg", "tif", "png"])
def test_a_full_disk_is_an_error_and_keeps_the_old_file(small_disk: Path, ext: str) -> None:
    out = small_disk / f"x.{ext}"
    out.write_bytes(b"the good old file")
    with pytest.raises(ViewerError, match="No space left on device"):
        save_image(out, noise(600, 800), jpeg_quality=100)
    assert out.read_bytes() == b"the good old file"
    assert leftovers(small_disk) == []


class FullDiskFile(CheckedFile):
    """An output file on a disk that fills after 64 KB: the write that crosses it raises ENOSPC."""

    room = 64 << 10

    def write(self, data: object) -> int:
        n = len(memoryview(data))  # type: ignore[arg-type]
        FullDiskFile.room -= n
        if FullDiskFile.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("ext", ["jpg", "tif", "png"])
def test_a_write_that_fails_is_an_error_for_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    """Pillow wrote JPEG and TIFF straight to the descriptor, where a short write went unnoticed; every
    byte now goes through the checked `write`."""
    monkeypatch.setattr(imageio, "CheckedFile", FullDiskFile)
    monkeypatch.setattr(FullDiskFile, "room", 64 << 10)
    out = tmp_path / f"x.{ext}"
    out.write_bytes(b"the good old file")
    with pytest.raises(ViewerError, match="No space left on device"):
        save_image(out, noise(300, 400), jpeg_quality=100)
    assert out.read_bytes() == b"the good old file"
    assert leftovers(tmp_path) == []


def test_the_output_file_hides_its_descriptor(tmp_path: Path) -> None:
    with imageio.atomic_output(tmp_path / "x.jpg") as fh, pytest.raises(OSError):
        fh.fileno()


# --------------------------------------------------------------------------------------- long names


def test_a_long_output_name_is_written(tmp_path: Path) -> None:
    for stem in ("a" * 240, "é" * 125):  # 244 characters; 250 bytes of UTF-8 + ".png"
        out = tmp_path / f"{stem}.png"
        assert len(os.fsencode(out.name)) <= 255
        save_image(out, noise(4, 4))
        assert load_image(out).width == 4
    assert leftovers(tmp_path) == []
    assert len(os.fsencode(temp_prefix("é" * 125 + ".png"))) <= imageio.TEMP_NAME_BYTES + 2


# ---------------------------------------------------------------------------- metadata a format cannot hold


def big_exif() -> bytes:
    """A camera's EXIF with a 100 KB maker note: more than one JPEG segment holds."""
    e = Image.Exif()
    e[0x010F] = "TestCam"
    sub = e.get_ifd(0x8769)
    sub[0x9003] = "1931:06:01 12:00:00"
    sub[0x927C] = b"\x01" * 100_000
    return e.tobytes()


def test_a_100_kb_exif_is_trimmed_for_jpeg_with_one_line(tmp_path: Path, engine: Engine) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src, exif=big_exif())
    notes: list[str] = []
    out = export_file(engine, src, tmp_path / "o.jpg", (32, 24), on_note=notes.append)
    assert len(notes) == 1 and "EXIF" in notes[0] and "MakerNote" in notes[0], notes
    with Image.open(out) as im:
        exif = im.getexif()
        assert exif[0x010F] == "TestCam"
        sub = exif.get_ifd(0x8769)
        assert sub[0x9003] == "1931:06:01 12:00:00" and 0x927C not in sub
    # PNG and TIFF hold it all, with nothing to say.
    for ext in ("png", "tif"):
        out = export_file(engine, src, tmp_path / f"o.{ext}", (32, 24), on_note=notes.append)
        with Image.open(out) as im:
            assert len(im.getexif().get_ifd(0x8769)[0x927C]) == 100_000
    assert len(notes) == 1


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_a_17_mb_icc_profile_is_left_out_where_readers_refuse_it(
    tmp_path: Path, engine: Engine, ext: str
) -> None:
    src = tmp_path / "src.tif"
    icc = np.random.default_rng(1).integers(0, 256, 17_000_000, dtype=np.uint8).tobytes()
    Image.fromarray(noise(12, 16)).save(src, icc_profile=icc)
    notes: list[str] = []
    out = export_file(engine, src, tmp_path / f"o.{ext}", (32, 24), on_note=notes.append)
    assert len(notes) == 1 and "ICC" in notes[0], notes
    back = load_image(out)  # the app opens what it wrote
    assert (back.width, back.height) == (32, 24) and back.icc is None


# ------------------------------------------------------------------------------------------- downscaling


def flat_png(path: Path, w: int, h: int) -> Path:
    Image.fromarray(np.full((h, w, 3), FLAT, np.uint8)).save(path)
    return path


@pytest.mark.parametrize("size", [(16, 16), (4, 4), (16, 40), (64, 64)])
def test_shrinking_keeps_colours(tmp_path: Path, engine: Engine, size: tuple[int, int]) -> None:
    src = flat_png(tmp_path / "flat.png", 64, 64)
    got = np.asarray(Image.open(export_file(engine, src, tmp_path / "o.png", size))).astype(int)
    assert np.abs(got - np.array(FLAT)).max() <= 2, (got.min((0, 1)), got.max((0, 1)))


def test_a_1x1_photo_keeps_its_colour(tmp_path: Path, engine: Engine) -> None:
    src = flat_png(tmp_path / "one.png", 1, 1)
    for ext in ("png", "jpg", "tif"):
        got = np.asarray(Image.open(export_file(engine, src, tmp_path / f"o.{ext}", (1, 1)))).astype(int)
        assert np.abs(got - np.array(FLAT)).max() <= 2, (ext, got)


def test_a_shrink_is_an_antialiased_resample_of_the_source(tmp_path: Path, engine: Engine) -> None:
    src = tmp_path / "src.png"
    pixels = noise(40, 60, seed=4)
    Image.fromarray(pixels).save(src)
    got = np.asarray(Image.open(export_file(engine, src, tmp_path / "o.png", (15, 10)))).astype(int)
    ref = np.asarray(Image.fromarray(pixels).resize((15, 10), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(got - ref).max() <= 2  # Pillow's own 8-bit Lanczos rounds between its passes


def test_shrinking_one_axis_and_enlarging_the_other(tmp_path: Path) -> None:
    """Stretched: the model renders at scale 1 on the reduced axis, which is then downsampled. A real
    model is needed to judge colour (the tiny random one does not reproduce colours at any scale)."""
    from viewer.engine.weights import resolve_model_path
    from viewer.errors import WeightsMissingError

    try:
        real = Engine.from_name(str(resolve_model_path("liif-fast")), "cpu", "fp32")
    except WeightsMissingError:
        pytest.skip("liif-fast is not installed")
    src = flat_png(tmp_path / "flat.png", 64, 64)
    got = np.asarray(Image.open(export_file(real, src, tmp_path / "o.png", (16, 160)))).astype(int)
    inner = got[8:-8, 2:-2]  # the model's zero-padded border is a few levels off, as at any scale
    # liif-fast enlarges this flat colour within 3 levels; queried below scale 1 it was 11 off.
    assert np.abs(inner - np.array(FLAT)).max() <= 4, (inner.min((0, 1)), inner.max((0, 1)))


# ------------------------------------------------------------------------------------------------- DPI


def test_jpeg_refuses_a_dpi_it_cannot_record(tmp_path: Path, engine: Engine) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src)
    loaded = load_image(src)
    for dpi in (0.5, 299.5, 70000):
        plan = plan_export(16, 12, None, PixelSize(32, 24), dpi, "stretch")
        with pytest.raises(ArgumentError, match="whole number of DPI"):
            run_export(engine, engine.encode(loaded.rgb), loaded, plan, tmp_path / "o.jpg")
    assert not (tmp_path / "o.jpg").exists()
    plan = plan_export(16, 12, None, PixelSize(32, 24), 0.5, "stretch")  # PNG records 0.5 DPI (20 px/m)
    out = run_export(engine, engine.encode(loaded.rgb), loaded, plan, tmp_path / "o.png")
    with Image.open(out) as im:
        assert im.info["dpi"][0] == pytest.approx(0.5, abs=0.01)
