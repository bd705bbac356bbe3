"""The command line's print options: --sharpen on render and export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer import cli


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))


def photo(tmp_path: Path) -> Path:
    y, x = np.mgrid[0:30, 0:40]
    arr = np.where((x // 5 + y // 5) % 2 == 0, 50, 200).astype(np.uint8)[..., None].repeat(3, axis=2)
    p = tmp_path / "src.png"
    Image.fromarray(arr).save(p)
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_export_sharpen_changes_the_pixels_and_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_file: Path
) -> None:
    src = photo(tmp_path)
    common = ("export", src, "--size", "60x45", "--dpi", "600", "--model", model_file, "--disk-cache", "0")
    rc, out, err = run(capsys, *common, "-o", tmp_path / "plain.png")
    assert rc == 0, err
    rc, out, err = run(capsys, *common, "-o", tmp_path / "sharp.png", "--sharpen", "matte:high")
    assert rc == 0, err
    assert "sharpened for matte:high" in out
    plain = np.asarray(Image.open(tmp_path / "plain.png")).astype(int)
    sharp = np.asarray(Image.open(tmp_path / "sharp.png")).astype(int)
    assert plain.shape == sharp.shape == (45, 60, 3)
    assert np.abs(sharp - plain).mean() > 1
    assert sharp.std() > plain.std()  # more contrast at the checker's edges


def test_render_takes_sharpen_and_a_bad_value_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_file: Path
) -> None:
    src = photo(tmp_path)
    rc, out, err = run(
        capsys, "render", src, "-o", tmp_path / "r.png", "--scale", "1.5", "--sharpen", "glossy",
        "--model", model_file, "--disk-cache", "0",
    )  # fmt: skip
    assert rc == 0, err
    assert "sharpened for glossy:standard" in out
    rc, out, err = run(
        capsys, "export", src, "-o", tmp_path / "bad.png", "--size", "60x45", "--sharpen", "canvas",
        "--model", model_file,
    )  # fmt: skip
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--sharpen" in err
    assert not (tmp_path / "bad.png").exists()
