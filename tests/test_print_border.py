"""Print pages with a white border or a bleed: planning, the written file, and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer import cli
from viewer.engine.export import plan_export, run_export
from viewer.engine.imageio import load_image, quantize, to_luma
from viewer.engine.printsize import Length, PixelSize, PrintSize, Region, parse_length
from viewer.errors import ArgumentError, LimitError


def test_lengths_parse_with_a_unit() -> None:
    assert parse_length("5mm") == Length(5, "mm")
    assert parse_length("0.25 in") == Length(0.25, "in")
    assert parse_length("40px").pixels(None) == 40
    assert parse_length("0mm").pixels(300) == 0
    assert Length(5, "mm").pixels(300) == 59  # 5 / 25.4 * 300 = 59.06
    for bad in ("5", "-1mm", "5 furlongs", "mm"):
        with pytest.raises(ArgumentError):
            parse_length(bad, "border")
    with pytest.raises(ArgumentError, match="needs a DPI"):
        Length(5, "mm").pixels(None)


def test_a_border_keeps_the_page_and_shrinks_the_photo() -> None:
    p = plan_export(3000, 4000, None, PrintSize(8, 10, "in"), 300, "crop", border=Length(5, "mm"))
    assert (p.file_w, p.file_h) == (2400, 3000)  # the page
    assert (p.out_w, p.out_h) == (2400 - 118, 3000 - 118)  # the photo inside 59 px of paper
    assert p.pad == (59, 59, 59, 59) and (p.border, p.bleed) == (59, 0)
    assert p.rect.w / p.rect.h == pytest.approx(p.out_w / p.out_h, rel=1e-3)  # cropped to the inner aspect
    assert p.print_inches() == (8, 10)


def test_fit_inside_a_bordered_page_centres_the_photo_on_white() -> None:
    # A square region on a portrait 4x6 in page at 100 DPI with a 0.5 in border: inner 300x500 px.
    p = plan_export(800, 800, None, PrintSize(4, 6, "in"), 100, "fit", border=Length(0.5, "in"))
    assert (p.file_w, p.file_h) == (400, 600)
    assert (p.out_w, p.out_h) == (300, 300)
    assert p.pad == (50, 150, 50, 150)
    assert tuple(p.rect) == (0, 0, 800, 800)  # nothing cropped


def test_a_bleed_grows_the_page_and_the_photo_fills_it() -> None:
    p = plan_export(3000, 4000, None, PrintSize(8, 10, "in"), 300, "crop", bleed=Length(3, "mm"))
    assert (p.file_w, p.file_h) == (2400 + 70, 3000 + 70) == (p.out_w, p.out_h)
    assert p.pad == (0, 0, 0, 0) and p.bleed == 35


def test_bad_borders_are_refused() -> None:
    with pytest.raises(ArgumentError, match="not both"):
        plan_export(
            100, 100, None, PixelSize(50, 50), None, "crop", border=Length(2, "px"), bleed=Length(2, "px")
        )
    with pytest.raises(ArgumentError, match="leaves no room"):
        plan_export(100, 100, None, PixelSize(50, 50), None, "crop", border=Length(25, "px"))
    with pytest.raises(ArgumentError, match="needs a DPI"):
        plan_export(100, 100, None, PixelSize(50, 50), None, "crop", border=Length(1, "mm"))
    with pytest.raises(LimitError):  # the limit counts the whole page
        plan_export(
            10, 10, None, PixelSize(1000, 1000), None, "fit", bleed=Length(1, "px"), max_output_megapixels=1
        )


torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def engine() -> object:
    from viewer.engine.render import Engine
    from viewer.liif.liif import make_liif

    return Engine(make_liif(seed=3), "cpu", "fp32", chunk=600)


def _source(tmp_path: Path, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 200, (20, 24, 4), dtype=np.uint8)  # never white, so paper shows
    p = tmp_path / f"src-{mode}.png"
    img = Image.fromarray(arr, "RGBA")
    (img.convert(mode) if mode != "RGBA" else img).save(p)
    return p


@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_the_file_is_the_photo_on_white_paper(tmp_path: Path, engine: object, ext: str, mode: str) -> None:
    loaded = load_image(_source(tmp_path, mode))
    fm = engine.encode(loaded.rgb)  # type: ignore[attr-defined]
    framed = plan_export(24, 20, Region(2, 2, 20, 16), PixelSize(60, 40), 300, "fit", border=Length(4, "px"))
    assert framed.pad == (10, 4, 10, 4) and (framed.out_w, framed.out_h) == (40, 32)  # fitted in 52x32
    out = run_export(engine, fm, loaded, framed, tmp_path / f"o.{ext}", band_rows=5)  # type: ignore[arg-type]
    got = np.asarray(Image.open(out))
    assert got.shape[:2] == (40, 60)
    inner = got[4:36, 10:50]
    paper = np.ones(got.shape, bool)
    paper[4:36, 10:50] = False
    assert np.all(got[paper] == 255)  # white (and opaque) all round
    whole = engine.render(fm, framed.source_rect(), 40, 32)  # type: ignore[attr-defined]
    colour = quantize(to_luma(whole) if mode == "L" else whole, 8)
    np.testing.assert_array_equal(inner[..., :3] if mode != "L" else inner, colour)
    assert inner.min() < 200


def test_a_jpeg_with_a_border_has_white_paper(tmp_path: Path, engine: object) -> None:
    loaded = load_image(_source(tmp_path))
    fm = engine.encode(loaded.rgb)  # type: ignore[attr-defined]
    plan = plan_export(24, 20, None, PrintSize(0.2, 0.2, "in"), 300, "crop", border=Length(1, "mm"))
    out = run_export(engine, fm, loaded, plan, tmp_path / "o.jpg")  # type: ignore[arg-type]
    got = np.asarray(Image.open(out)).astype(int)
    assert got.shape == (60, 60, 3) and plan.pad == (12, 12, 12, 12)
    assert got[:4].min() > 240 and got[:, -4:].min() > 240 and got[20:40, 20:40].mean() < 200


def test_cli_border_and_bleed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from viewer.liif.checkpoint import save_safetensors
    from viewer.liif.liif import make_liif

    model = tmp_path / "tiny.safetensors"
    save_safetensors(make_liif(seed=1), model, {"name": "tiny-test"})
    src = _source(tmp_path)
    base = [
        "export",
        str(src),
        "--print",
        "0.4x0.3in",
        "--dpi",
        "100",
        "--model",
        str(model),
        "--disk-cache",
        "0",
    ]
    assert cli.main([*base, "-o", str(tmp_path / "b.png"), "--border", "0.05in"]) == 0
    out = capsys.readouterr().out
    assert "40x30 px" in out and "5 px border" in out
    b = np.asarray(Image.open(tmp_path / "b.png"))
    assert b.shape == (30, 40, 3) and np.all(b[:5] == 255) and b[5:25, 5:35].min() < 200
    assert cli.main([*base, "-o", str(tmp_path / "l.png"), "--bleed", "2px"]) == 0
    assert "2 px bleed" in capsys.readouterr().out
    assert np.asarray(Image.open(tmp_path / "l.png")).shape == (34, 44, 3)
    rc = cli.main([*base, "-o", str(tmp_path / "x.png"), "--border", "1mm", "--bleed", "1mm"])
    err = capsys.readouterr().err
    assert rc == 2 and "not both" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
