"""Never write over the user's original (issue 25): `render` and `export` refuse an output that is the input
photo (the same path, a symlink or a hard link to it), and `--no-clobber` keeps any existing output. Each
refusal is one line, exit 2, with the photo untouched and nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viewer import cli
from viewer.engine import imageio
from viewer.engine.imageio import OutputExistsError, atomic_output, is_same_file, load_image
from viewer.errors import ArgumentError

COMMANDS = {
    "render": ["--scale", "2"],
    "export": ["--size", "32x24"],
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))


def photo(tmp_path: Path) -> Path:
    p = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(p)
    return p


def aliases(src: Path) -> dict[str, Path]:
    """The photo's own path, a symlink to it (in another folder) and a hard link to it."""
    other = src.parent / "elsewhere"
    other.mkdir()
    link = other / "link.png"
    link.symlink_to(src)
    hard = src.parent / "hard.png"
    os.link(src, hard)
    return {"same path": src, "symlink": link, "hard link": hard}


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error_line(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liif-viewer: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("command", COMMANDS)
def test_the_input_photo_is_never_an_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_file: Path, command: str
) -> None:
    src = photo(tmp_path)
    original = src.read_bytes()
    names = aliases(src)
    before = files(tmp_path)
    for what, out in names.items():
        rc, stdout, err = run(capsys, command, src, "-o", out, *COMMANDS[command], "--model", model_file)
        one_error_line(rc, err, "refusing to write", "input photo")
        assert stdout == "", what
        assert src.read_bytes() == original and files(tmp_path) == before, what
    # Named through the link, the input is refused the same way.
    rc, _, err = run(capsys, command, names["symlink"], "-o", src, *COMMANDS[command], "--model", model_file)
    one_error_line(rc, err, "input photo")
    assert src.read_bytes() == original


def test_is_same_file_sees_every_alias(tmp_path: Path) -> None:
    src = photo(tmp_path)
    for what, other in aliases(src).items():
        assert is_same_file(src, other), what
    copy = tmp_path / "copy.png"
    copy.write_bytes(src.read_bytes())
    assert not is_same_file(src, copy)
    assert not is_same_file(src, tmp_path / "new.png")  # not there yet


@pytest.mark.parametrize("command", COMMANDS)
def test_no_clobber_keeps_an_existing_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_file: Path, command: str
) -> None:
    src = photo(tmp_path)
    out = tmp_path / "print.png"
    out.write_bytes(b"an earlier print")
    args: list[str | Path] = [command, src, "-o", out, *COMMANDS[command], "--model", model_file]
    rc, stdout, err = run(capsys, *args, "--no-clobber")
    one_error_line(rc, err, str(out), "--no-clobber")
    assert stdout == "" and out.read_bytes() == b"an earlier print"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    # Without it the existing file is replaced (atomically) by the new one, as --help says.
    rc, stdout, err = run(capsys, *args)
    assert rc == 0 and stdout.startswith(f"wrote {out}"), err
    assert load_image(out).width == 32
    # A new file is written with --no-clobber.
    rc, _, err = run(
        capsys,
        command,
        src,
        "-o",
        tmp_path / "new.png",
        *COMMANDS[command],
        "--model",
        model_file,
        "--no-clobber",
    )
    assert rc == 0 and (tmp_path / "new.png").is_file(), err


def test_help_says_what_happens_to_an_existing_file(capsys: pytest.CaptureFixture[str]) -> None:
    for command in COMMANDS:
        rc, out, _ = run(capsys, command, "--help")
        text = " ".join(out.split())
        assert rc == 0
        assert "an existing file is replaced, atomically: only once the new one is complete" in text
        assert "--no-clobber keep an existing output file" in text and "never the input photo" in text


def test_a_file_that_appears_while_rendering_is_kept(tmp_path: Path) -> None:
    """--no-clobber holds at the rename too: a file created meanwhile is not replaced."""
    out = tmp_path / "print.png"
    with pytest.raises(OutputExistsError), atomic_output(out, replace=False) as fh:
        fh.write(b"the new print")
        out.write_bytes(b"made meanwhile")
    assert out.read_bytes() == b"made meanwhile"
    assert files(tmp_path) == ["print.png"]
    with atomic_output(tmp_path / "fresh.png", replace=False) as fh:
        fh.write(b"new")
    assert (tmp_path / "fresh.png").read_bytes() == b"new" and len(files(tmp_path)) == 2


def test_no_clobber_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a filesystem without hard links (FAT, some network shares) the check is made before the rename."""

    def no_links(*a: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(imageio.os, "link", no_links)
    out = tmp_path / "print.png"
    out.write_bytes(b"an earlier print")
    with pytest.raises(OutputExistsError), atomic_output(out, replace=False) as fh:
        fh.write(b"the new print")
    assert out.read_bytes() == b"an earlier print" and files(tmp_path) == ["print.png"]
    with atomic_output(tmp_path / "fresh.png", replace=False) as fh:
        fh.write(b"new")
    assert (tmp_path / "fresh.png").read_bytes() == b"new"


def test_the_engine_export_refuses_the_photo_it_reads(tmp_path: Path) -> None:
    """The guard every caller shares (the GUI's worker and batch included), before any work."""
    torch = pytest.importorskip("torch")
    del torch
    from viewer.engine.export import plan_export, run_export
    from viewer.engine.printsize import PixelSize
    from viewer.engine.render import Engine
    from viewer.liif.liif import make_liif

    src = photo(tmp_path)
    original = src.read_bytes()
    loaded = load_image(src)
    engine = Engine(make_liif(seed=3), "cpu", "fp32")
    plan = plan_export(16, 12, None, PixelSize(32, 24), None, "stretch")
    for what, out in aliases(src).items():
        with pytest.raises(ArgumentError, match="input photo"):
            run_export(engine, engine.encode(loaded.rgb), loaded, plan, out)
        assert src.read_bytes() == original, what
    out = tmp_path / "print.png"
    out.write_bytes(b"kept")
    with pytest.raises(OutputExistsError):
        run_export(engine, engine.encode(loaded.rgb), loaded, plan, out, replace=False)
    assert out.read_bytes() == b"kept"
