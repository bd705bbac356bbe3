"""`liif-viewer batch`: outputs mirror the sources and equal single exports; a rerun skips what is done and
rewrites nothing; bad photos fail alone; Ctrl-C leaves no partial file; usage errors are one line."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from viewer import cli
from viewer.engine import batch as batch_mod
from viewer.engine.batch import LOG_NAME, BatchOptions, LocalExecutor, find_jobs, run_batch
from viewer.engine.cancel import CancelToken
from viewer.engine.printsize import PrintSize

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
SIZE = ["--print", "4x6in", "--dpi", "20"]  # 80x120 px, or 120x80 for a landscape photo


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))
    monkeypatch.delenv("LIIF_VIEWER_MAX_INPUT_MP", raising=False)
    monkeypatch.delenv("LIIF_VIEWER_MAX_OUTPUT_MP", raising=False)


def photo(path: Path, w: int, h: int, seed: int, **save: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, **save)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """src/ with a landscape JPEG (ICC, EXIF), a portrait PNG, and TIFF/BMP photos in subfolders."""
    src = tmp_path / "src"
    exif = Image.Exif()
    exif[0x010F] = "Test camera"  # Make
    photo(src / "a.jpg", 36, 24, 1, icc_profile=ICC, exif=exif.tobytes(), quality=95)
    photo(src / "b.png", 20, 30, 2)
    photo(src / "sub" / "c.tif", 30, 30, 3)
    photo(src / "sub" / "deeper" / "d.bmp", 24, 18, 4)
    (src / "notes.txt").write_text("not a photo, and not taken from a folder")
    return src


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def outputs(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def log_lines(outdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (outdir / LOG_NAME).read_text().splitlines()]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != LOG_NAME}


def test_batch_mirrors_the_tree_and_equals_single_exports(
    tmp_path: Path, tree: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "batch", tree, "-o", out, "-r", *SIZE, "--model", model_file)
    assert rc == 0, err
    assert outputs(out) == {"a.jpg", "b.png", "sub/c.tif", "sub/deeper/d.png", LOG_NAME}
    assert "4 written, 0 skipped (already done), 0 failed" in stdout
    with Image.open(out / "a.jpg") as im:  # landscape photo: the 4x6 in print turned to 6x4 in
        assert im.size == (120, 80)
        assert im.info.get("icc_profile") == ICC
        assert im.getexif().get(0x010F) == "Test camera"
        assert round(im.info["dpi"][0]) == 20
    with Image.open(out / "b.png") as im:
        assert im.size == (80, 120)
    for rel in ("a.jpg", "b.png", "sub/c.tif"):
        single = tmp_path / f"single{Path(rel).suffix}"
        rc, _, err = run(capsys, "export", tree / rel, "-o", single, *SIZE, "--model", model_file)
        assert rc == 0, err
        assert np.array_equal(pixels(out / rel), pixels(single)), rel
    records = log_lines(out)
    assert {r["status"] for r in records} == {"ok"} and len(records) == 4
    rec = next(r for r in records if r["output"] == "a.jpg")
    assert rec["source"] == str(tree / "a.jpg") and rec["size"] == "120x80" and rec["error"] is None
    assert rec["model"] and rec["seconds"] > 0


def test_without_recursive_only_the_folder_and_format_changes_the_suffix(
    tmp_path: Path, tree: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, _, err = run(
        capsys, "batch", tree, "-o", out, "--scale", "2", "--format", "png", "--model", model_file
    )
    assert rc == 0, err
    assert outputs(out) == {"a.png", "b.png", LOG_NAME}
    with Image.open(out / "a.png") as im:
        assert im.size == (72, 48) and "dpi" not in im.info  # --scale records no DPI unless asked


def test_a_rerun_skips_what_is_done_and_rewrites_nothing(
    tmp_path: Path, tree: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, _, err = run(capsys, "batch", tree, "-o", out, "-r", *SIZE, "--model", model_file)
    assert rc == 0, err
    before = mtimes(out)
    rc, stdout, err = run(capsys, "batch", tree, "-o", out, "-r", *SIZE, "--model", model_file)
    assert rc == 0, err
    assert "0 written, 4 skipped (already done)" in stdout
    assert mtimes(out) == before
    assert [r["status"] for r in log_lines(out)[4:]] == ["skipped"] * 4
    # Other settings are another request: the photos are done again.
    rc, stdout, err = run(
        capsys, "batch", tree, "-o", out, "-r", "--print", "4x6in", "--dpi", "25", "--model", model_file
    )
    assert rc == 0, err
    assert "4 written" in stdout
    with Image.open(out / "b.png") as im:
        assert im.size == (100, 150)


def test_without_the_log_a_complete_output_is_kept_and_a_damaged_one_redone(
    tmp_path: Path, tree: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc, _, err = run(capsys, "batch", tree, "-o", out, *SIZE, "--model", model_file)
    assert rc == 0, err
    (out / LOG_NAME).unlink()
    data = (out / "b.png").read_bytes()
    (out / "b.png").write_bytes(data[: len(data) // 2])  # as if another program had cut it short
    kept = (out / "a.jpg").stat().st_mtime_ns
    rc, stdout, err = run(capsys, "batch", tree, "-o", out, *SIZE, "--model", model_file)
    assert rc == 0, err
    assert "1 written, 1 skipped" in stdout
    assert (out / "a.jpg").stat().st_mtime_ns == kept
    assert pixels(out / "b.png").shape == (120, 80, 3)


def test_bad_photos_are_named_and_the_batch_goes_on(
    tmp_path: Path, tree: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(buf, "JPEG")
    (tree / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tree / "empty.png").write_bytes(b"")
    (tree / "text.tif").write_text("these are not pixels\n" * 10)
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "batch", tree, "-o", out, *SIZE, "--model", model_file)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("liif-viewer: failed: ") for line in lines), err
    for name, words in (("cut.jpg", "truncated"), ("empty.png", "empty file"), ("text.tif", "not an image")):
        line = next(line for line in lines if name in line)
        assert words in line
    assert "Traceback" not in err
    assert "2 written, 0 skipped (already done), 3 failed" in stdout
    assert outputs(out) == {"a.jpg", "b.png", LOG_NAME}
    failed = {Path(r["source"]).name: r for r in log_lines(out) if r["status"] == "failed"}
    assert set(failed) == {"cut.jpg", "empty.png", "text.tif"}
    assert "truncated" in failed["cut.jpg"]["error"]


def test_an_output_folder_inside_the_source_is_never_read_back(
    tree: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tree / "sub" / "out"
    for _ in range(2):
        rc, _, err = run(
            capsys, "batch", tree, "-o", out, "-r", *SIZE, "--format", "png", "--model", model_file
        )
        assert rc == 0, err
    assert outputs(out) == {"a.png", "b.png", "sub/c.png", "sub/deeper/d.png", LOG_NAME}
    assert {Path(r["source"]).name for r in log_lines(out)} == {"a.jpg", "b.png", "c.tif", "d.bmp"}
    jobs = find_jobs([tree], out, recursive=True)
    assert all(out not in j.source.parents for j in jobs)


def test_an_unreadable_subfolder_is_one_line_and_the_rest_goes_on(
    tmp_path: Path,
    tree: Path,
    model_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a folder without read permission is for a normal user (the tests may run as root)."""
    real = os.scandir
    locked = tree / "sub"

    def scandir(path: Any = ".") -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    def top_locked(path: Any = ".") -> Any:
        if Path(path) == tree:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "out"
    rc, stdout, err = run(capsys, "batch", tree, "-o", out, "-r", *SIZE, "--model", model_file)
    assert rc == 0, err
    assert (
        err.strip()
        == f"liif-viewer: cannot read the folder {locked}: Permission denied; the photos in it are left out"
    )
    assert "2 written" in stdout and outputs(out) == {"a.jpg", "b.png", LOG_NAME}
    monkeypatch.setattr(os, "scandir", top_locked)
    rc, _, err = run(capsys, "batch", tree, "-o", out, "-r", *SIZE, "--model", model_file)
    assert rc == 2 and err.strip() == f"liif-viewer: error: cannot read the folder {tree}: Permission denied"


def test_a_source_is_never_replaced(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    src = photo(out / "a.png", 20, 20, 5)  # a photo inside OUTDIR, named as a source: its output is itself
    before = src.read_bytes()
    rc, _, err = run(capsys, "batch", src, "-o", out, *SIZE, "--model", model_file)
    assert rc == 1
    assert "refusing to write" in err and "a.png" in err
    assert src.read_bytes() == before


def test_two_photos_with_one_output_name(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    photo(src / "a.png", 20, 20, 1)
    photo(src / "a.jpg", 20, 20, 2)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "batch", src, "-o", out, *SIZE, "--format", "png", "--model", model_file)
    assert rc == 1
    assert "a.png" in err and "same output as a.jpg" in err
    assert outputs(out) == {"a.png", LOG_NAME}


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing source", "no such file or folder"),
        ("output is the source", "is the source folder"),
        ("output under a file", "cannot create the output folder"),
        ("output is a file", "it is a file"),
        ("no photos", "no photos found"),
        ("bad format", "invalid --format 'gif'"),
        ("bad address", "invalid --cluster address"),
    ],
)
def test_usage_errors_are_one_line(
    tmp_path: Path, tree: Path, model_file: Path, capsys: pytest.CaptureFixture[str], case: str, words: str
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "inner").mkdir()
    cases: dict[str, list[str | Path]] = {
        "missing source": [tmp_path / "nowhere", "-o", tmp_path / "out"],
        "output is the source": [tree, "-o", tree],
        "output under a file": [tree, "-o", blocker / "out"],
        "output is a file": [tree, "-o", blocker],
        "no photos": [empty, "-o", tmp_path / "out"],
        "bad format": [tree, "-o", tmp_path / "out", "--format", "gif"],
        "bad address": [tree, "-o", tmp_path / "out", "--cluster", "nowhere"],
    }
    args = cases[case]
    rc, _, err = run(capsys, "batch", *args, *SIZE, "--model", model_file)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liif-viewer: error: "), err
    assert words in lines[0]
    assert not (tmp_path / "out").exists()
    if case == "no photos":
        assert "--recursive" in lines[0]


@pytest.mark.parametrize(
    ("stop", "status", "words"),
    [
        (KeyboardInterrupt, 130, "interrupted"),
        (lambda: cli.Terminated(signal.SIGTERM), 143, "stopped by SIGTERM"),
    ],
)
def test_ctrl_c_stops_cleanly_and_leaves_no_partial_file(
    tmp_path: Path,
    tree: Path,
    model_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stop: Callable[[], BaseException],
    status: int,
    words: str,
) -> None:
    """Ctrl-C (or SIGTERM) arrives halfway through the second photo's render: the first stays, the second
    is not there, no temporary file is left, and a rerun finishes the job."""
    from viewer.engine import export

    real = export.run_export
    calls: list[int] = []

    def interrupted(*a: Any, **k: Any) -> Path:
        calls.append(1)
        if len(calls) == 2:
            progress = k["progress"]

            def cut(done: int, total: int) -> None:
                progress(done, total)
                if done > 0:
                    raise stop()

            k = {**k, "progress": cut, "band_rows": 8}
        return real(*a, **k)

    monkeypatch.setattr(export, "run_export", interrupted)
    out = tmp_path / "out"
    rc, _, err = run(capsys, "batch", tree, "-o", out, *SIZE, "--format", "png", "--model", model_file)
    assert rc == status
    assert words in err and "1 written" in err and "no partial file" in err
    assert outputs(out) == {"a.png", LOG_NAME}  # no b.png, no hidden .part file
    monkeypatch.setattr(export, "run_export", real)
    rc, stdout, err = run(capsys, "batch", tree, "-o", out, *SIZE, "--format", "png", "--model", model_file)
    assert rc == 0, err
    assert "1 written, 1 skipped" in stdout


def test_cancel_token_and_callbacks(tmp_path: Path, tree: Path) -> None:
    """The engine API the GUI uses: progress in output pixels, a result per photo, cancel between photos."""
    from viewer.engine.render import Engine
    from viewer.liif.liif import make_liif

    jobs = find_jobs([tree], tmp_path / "out", recursive=True)
    options = BatchOptions(PrintSize(4, 6, "in"), 10.0)
    token = CancelToken()
    seen: list[tuple[int, int]] = []
    results: list[str] = []

    def on_result(r: batch_mod.PhotoResult) -> None:
        results.append(r.status)
        token.cancel()  # after the first photo

    (tmp_path / "out").mkdir()
    summary = run_batch(
        jobs,
        options,
        tmp_path / "out",
        LocalExecutor(Engine(make_liif(seed=2), "cpu", "fp32", model_name="tiny")),
        cancel=token,
        on_progress=lambda d, t: seen.append((d, t)),
        on_result=on_result,
    )
    assert summary.interrupted and results == ["ok"]
    total = sum(60 * 40 for _ in jobs)
    assert seen[0] == (0, total) and seen[-1] == (2400, total)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(seen))
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["a.jpg", LOG_NAME]


def test_progress_bar_has_rate_and_time_left() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = cli.ProgressBar("batch", stream=tty)
    bar(10, 40)
    bar.write("a line above the bar")
    bar(40, 40)
    bar.finish()
    text = tty.getvalue()
    assert "a line above the bar\n" in text and "100.0%" in text and "<" in text and "px/s" in text
    assert text.endswith("\n")


def test_log_lines_cut_short_are_ignored(tmp_path: Path) -> None:
    log = batch_mod.BatchLog(tmp_path)
    log.write({"output": "a.png", "status": "ok"})
    log.close()
    with open(tmp_path / LOG_NAME, "a") as fh:
        fh.write('{"output": "b.png", "sta')  # a run killed mid-line
    assert set(log.last_records()) == {"a.png"}
    assert os.path.getsize(tmp_path / LOG_NAME) > 0
