"""`liif-viewer batch` with export's print options: --sharpen, --border and --bleed give each photo what a
single `export` with the same options gives; they are part of the settings a rerun compares (other
options: the photos are done again); options that cannot work are one line before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from viewer import cli
from viewer.engine.batch import LOG_NAME, BatchOptions, Scale
from viewer.engine.printsize import Length, PrintSize
from viewer.engine.sharpen import Sharpen
from viewer.errors import ArgumentError

SIZE = ["--print", "4x6in", "--dpi", "50"]  # 200x300 px, or 300x200 for a landscape photo
SHARP = ["--print", "1x1.5in", "--dpi", "200"]  # 200x300 px again; the filter's radius is 0.8 px
BORDER_PX = 10  # 5 mm at 50 DPI: 5 / 25.4 * 50 = 9.84


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))
    monkeypatch.delenv("LIIF_VIEWER_MAX_INPUT_MP", raising=False)
    monkeypatch.delenv("LIIF_VIEWER_MAX_OUTPUT_MP", raising=False)


def photo(path: Path, w: int, h: int, seed: int) -> Path:
    """Noise over gradients: detail for the sharpening to change, and no white at the edges."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 200 // w, y * 200 // h, (x + y) * 100 // (w + h)], axis=2)
    Image.fromarray(np.clip(base + rng.integers(0, 50, (h, w, 3)), 0, 230).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    photo(folder / "a.png", 24, 36, 1)  # portrait
    photo(folder / "b.png", 30, 20, 2)  # landscape
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.int16)


def log_lines(outdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (outdir / LOG_NAME).read_text().splitlines()]


def single(
    capsys: pytest.CaptureFixture[str],
    source: Path,
    out: Path,
    model: Path,
    *options: str,
    size: list[str] = SIZE,
) -> np.ndarray:
    """`export` of one photo with `options`: what the batch must give for it."""
    rc, _, err = run(capsys, "export", source, "-o", out, *size, "--model", model, *options)
    assert rc == 0, err
    return pixels(out)


def test_sharpened_batch_equals_sharpened_single_exports_and_a_rerun_follows_the_options(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "big"
    photo(src / "a.png", 80, 120, 1)  # x2.5: fine detail left for the 0.8 px filter to sharpen
    photo(src / "b.jpg", 120, 80, 2)
    names = ("a.png", "b.jpg")
    plain, sharp = tmp_path / "plain", tmp_path / "sharp"
    matte = ["--sharpen", "matte:standard"]
    rc, _, err = run(capsys, "batch", src, "-o", plain, *SHARP, "--model", model_file)
    assert rc == 0, err
    rc, stdout, err = run(capsys, "batch", src, "-o", sharp, *SHARP, *matte, "--model", model_file)
    assert rc == 0, err
    assert "2 written" in stdout
    for name in names:
        one = single(capsys, src / name, tmp_path / f"one-{name}", model_file, *matte, size=SHARP)
        assert np.abs(pixels(sharp / name) - one).max() <= 1, name
        assert np.abs(pixels(plain / name) - one).max() > 8, name  # the sharpening did reach the photo
    settings = {r["settings"] for r in log_lines(sharp)}
    assert len(settings) == 1 and "; sharpen matte:standard; " in settings.pop()

    # A rerun with other print options is another request: the photos are done again, with the new ones.
    rc, stdout, err = run(capsys, "batch", src, "-o", plain, *SHARP, *matte, "--model", model_file)
    assert rc == 0, err
    assert "2 written, 0 skipped" in stdout
    for name in names:
        assert np.abs(pixels(plain / name) - pixels(sharp / name)).max() <= 1, name
    # The same options again: nothing to do.
    rc, stdout, err = run(capsys, "batch", src, "-o", plain, *SHARP, *matte, "--model", model_file)
    assert rc == 0 and "0 written, 2 skipped" in stdout, err


def test_a_bordered_batch_gives_white_paper_round_each_photo_at_the_page_size(
    tmp_path: Path, src: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, _, err = run(capsys, "batch", src, "-o", out, *SIZE, "--border", "5mm", "--model", model_file)
    assert rc == 0, err
    for name, page in (("a.png", (200, 300)), ("b.png", (300, 200))):
        with Image.open(out / name) as im:
            assert im.size == page, name  # the whole 4x6 in page at 50 DPI, border included
            assert round(im.info["dpi"][0]) == 50
        px = pixels(out / name)
        b = BORDER_PX
        frame = np.ones(px.shape[:2], bool)
        frame[b:-b, b:-b] = False
        assert (px[frame] == 255).all(), name
        inner = px[b:-b, b:-b]
        assert (inner[0] != 255).any() and (inner[-1] != 255).any(), name  # the photo fills the rest
        assert (inner[:, 0] != 255).any() and (inner[:, -1] != 255).any(), name
        one = single(capsys, src / name, tmp_path / f"one-{name}", model_file, "--border", "5mm")
        assert np.abs(px - one).max() <= 1, name
    assert {r["size"] for r in log_lines(out)} == {"200x300", "300x200"}  # the file's size
    # Without the log, a complete output is told by its size: the page's, border included.
    (out / LOG_NAME).unlink()
    rc, stdout, err = run(capsys, "batch", src, "-o", out, *SIZE, "--border", "5mm", "--model", model_file)
    assert rc == 0 and "0 written, 2 skipped" in stdout, err

    # Fit inside a bordered page: a square photo is centred, the rest of the page white.
    photo(tmp_path / "sq" / "s.png", 24, 24, 3)
    fitted = tmp_path / "fitted"
    rc, _, err = run(
        capsys,
        "batch",
        tmp_path / "sq",
        "-o",
        fitted,
        *SIZE,
        "--fit",
        "fit",
        "--border",
        "5mm",
        "--model",
        model_file,
    )
    assert rc == 0, err
    px = pixels(fitted / "s.png")
    assert px.shape[:2] == (300, 200)
    top = (300 - 180) // 2  # a 180 px photo inside the 180x280 px that the border leaves
    assert (px[:top] == 255).all() and (px[top + 180 :] == 255).all()
    assert (px[:, :BORDER_PX] == 255).all() and (px[:, -BORDER_PX:] == 255).all()
    assert (px[top, BORDER_PX:-BORDER_PX] != 255).any() and (px[top + 179, BORDER_PX:-BORDER_PX] != 255).any()


def test_a_bled_batch_grows_the_page(
    tmp_path: Path, src: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, _, err = run(
        capsys, "batch", src / "a.png", "-o", out, *SIZE, "--bleed", "3mm", "--model", model_file
    )
    assert rc == 0, err
    with Image.open(out / "a.png") as im:
        assert im.size == (200 + 12, 300 + 12)  # 3 mm at 50 DPI is 6 px on each side


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--border", "5mm", "--bleed", "3mm"], "not both"),
        (["--border", "3in"], "leaves no room"),
        (["--border", "5"], "cannot parse --border '5'"),
        (["--bleed=-1mm"], "cannot parse --bleed"),
        (["--sharpen", "velvet"], "invalid --sharpen 'velvet'"),
    ],
)
def test_print_options_that_cannot_work_are_one_line_before_any_work(
    tmp_path: Path,
    src: Path,
    model_file: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    words: str,
) -> None:
    out = tmp_path / "out"
    rc, _, err = run(capsys, "batch", src, "-o", out, *SIZE, *options, "--model", model_file)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liif-viewer: error: ") and words in lines[0], err
    assert not out.exists()


def test_a_margin_with_scale_is_refused_and_sharpening_is_not(
    tmp_path: Path, src: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, _, err = run(
        capsys, "batch", src, "-o", out, "--scale", "2", "--border", "2px", "--model", model_file
    )
    assert rc == 2 and "needs a page" in err and "--scale" in err, err
    assert not out.exists()
    rc, _, err = run(
        capsys, "batch", src, "-o", out, "--scale", "2", "--sharpen", "screen:low", "--model", model_file
    )
    assert rc == 0, err
    with Image.open(out / "a.png") as im:
        assert im.size == (48, 72)


def test_batch_options_carry_the_print_options_to_the_plan() -> None:
    o = BatchOptions(PrintSize(4, 6, "in"), 50.0, sharpen=Sharpen("glossy", "high"), border=Length(5, "mm"))
    plan = o.plan(30, 40)
    assert plan.sharpen == Sharpen("glossy", "high") and plan.border == BORDER_PX
    assert (plan.file_w, plan.file_h) == (200, 300) and (plan.out_w, plan.out_h) == (180, 280)
    assert "sharpen glossy:high; border 5mm" in o.describe()
    assert "sharpen" not in BatchOptions(Scale(2)).describe()  # logs of plain batches stay as they were
    with pytest.raises(ArgumentError, match="needs a page"):
        BatchOptions(Scale(2), bleed=Length(1, "px"))
