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
        real = Engine.from_name(str(resolve_model_path("liif-lm")), "cpu", "fp32")
    except WeightsMissingError:
        pytest.skip("liif-lm is not installed")
    src = flat_png(tmp_path / "flat.png", 64, 64)
    got = np.asarray(Image.open(export_file(real, src, tmp_path / "o.png", (16, 160)))).astype(int)
    inner = got[8:-8, 2:-2]  # the model's zero-padded border is a few levels off, as at any scale
    # The model enlarges this flat colour within a few levels; queried below scale 1 it was 11 off.
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


# ------------------------------------------------------------------------------------- the command line

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "userdata"))


def cli_run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    from viewer import cli

    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_error_line(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liif-viewer: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def subprocess_cli(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "viewer.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )


def test_a_full_disk_fails_the_export_command_in_one_line(
    small_disk: Path, tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(60, 80)).save(src)
    out = small_disk / "x.jpg"
    out.write_bytes(b"the good old file")
    (small_disk / "more").write_bytes(b"\0" * 450_000)  # about 100 KB left
    args = ("--size", "600x450", "--quality", "100", "--model", model_file, "--disk-cache", "0")
    rc, stdout, err = cli_run(capsys, "export", src, "-o", out, *args)
    one_error_line(rc, err, "No space left on device")
    assert stdout == "" and out.read_bytes() == b"the good old file" and leftovers(small_disk) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_leave_no_partial_file(tmp_path: Path, model_file: Path, name: str) -> None:
    import signal
    import time

    src = tmp_path / "src.png"
    Image.fromarray(noise(60, 80)).save(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cmd = [sys.executable, "-m", "viewer.cli", "export", str(src), "-o", str(out_dir / "big.png")]
    # 12 MP: about 1.2 s of writing after the file appears on a 2-core EPYC (3 MP took 0.5 s there, and a
    # signal sent 0.3 s in once came as the process was exiting, past its handler)
    cmd += ["--size", "4000x3000", "--model", str(model_file), "--disk-cache", "0"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not leftovers(out_dir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert leftovers(out_dir), "the export never started writing"
        time.sleep(0.1)  # into the render
        sig = getattr(signal, name)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1] == f"liif-viewer: stopped by {name}; no output was written"
    assert sorted(p.name for p in out_dir.iterdir()) == []


def _official_checkpoint(path: Path, args: object) -> Path:
    state = make_liif().state_dict()
    torch.save({"model": {"name": "liif", "args": args, "sd": state}}, path)
    return path


def _good_args() -> dict[str, object]:
    import copy

    return copy.deepcopy(make_liif().spec["args"])


def crafted_checkpoints(folder: Path) -> dict[str, Path]:
    """The attacker's checkpoints of issue 26: each must give one line and exit 2."""
    made: dict[str, Path] = {}
    a = _good_args()
    a["encoder_spec"]["args"]["n_feats"] = -5  # type: ignore[index]
    made["negative n_feats"] = _official_checkpoint(folder / "neg_feats.pth", a)
    a = _good_args()
    a["imnet_spec"]["args"]["hidden_list"] = [-3]  # type: ignore[index]
    made["negative hidden width"] = _official_checkpoint(folder / "neg_hidden.pth", a)
    a = _good_args()
    a["encoder_spec"] = "edsr-baseline"
    made["encoder_spec as a string"] = _official_checkpoint(folder / "str_spec.pth", a)
    a = _good_args()
    a["imnet_spec"]["args"]["hidden_list"] = [200000, 200000]  # type: ignore[index]
    made["160 GB decoder"] = _official_checkpoint(folder / "huge.pth", a)
    nested: dict[str, object] = {"name": "cleaned", "args": {"n_feats": 4, "n_resblocks": 0}}
    for _ in range(100):  # about as deep as pickle itself can write
        nested = {"name": "cleaned", "args": {"encoder_spec": nested}}
    a = _good_args()
    a["encoder_spec"] = nested
    made["100-deep .pth"] = _official_checkpoint(folder / "deep.pth", a)
    from safetensors.torch import save_file

    deep = '{"name": "liif", "args": {"encoder_spec": ' + '{"a": ' * 200_000 + "1" + "}" * 200_000 + "}}"
    tensors = {k: v.contiguous() for k, v in make_liif().state_dict().items()}
    save_file(tensors, str(folder / "deep.safetensors"), metadata={"liif_spec": deep})
    made["200k-deep spec"] = folder / "deep.safetensors"
    return made


def test_crafted_checkpoints_give_one_line_and_build_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src)
    for what, path in crafted_checkpoints(tmp_path).items():
        rc, _, err = cli_run(capsys, "render", src, "-o", tmp_path / "o.png", "--scale", "2", "--model", path)
        one_error_line(rc, err, str(path), "invalid model spec")
        assert not (tmp_path / "o.png").exists(), what


def test_spec_checks_accept_every_shipped_and_test_architecture() -> None:
    from viewer import paths
    from viewer.liif.checkpoint import check_spec, read_safetensors

    for path in sorted(paths.models_dir().glob("*.safetensors")):
        check_spec(read_safetensors(path)[0], source=path.name)
    for encoder in ("edsr-baseline", "rdn"):
        check_spec(make_liif(encoder).spec)
    official = {"name": "edsr-baseline", "args": {"no_upsampling": True}}
    for enc in (official, {"name": "rdn", "args": {"no_upsampling": True}}):
        mlp = {"name": "mlp", "args": {"out_dim": 3, "hidden_list": [256] * 4}}
        check_spec({"name": "liif", "args": {"encoder_spec": enc, "imnet_spec": mlp}})


def test_a_pickle_with_no_suffix_prints_one_line_and_no_torch_warning(tmp_path: Path) -> None:
    import pickle

    weights = tmp_path / "weights"
    weights.write_bytes(pickle.dumps({"model": {"name": "liif"}}, protocol=4))
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src)
    done = subprocess_cli("render", src, "-o", tmp_path / "o.png", "--scale", "2", "--model", weights)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "\x1b" not in lines[0], done.stderr


def test_a_100_kb_exif_is_one_note_from_the_command(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src, exif=big_exif())
    rc, out, err = cli_run(
        capsys, "export", src, "-o", tmp_path / "o.jpg", "--size", "32x24", "--model", model_file
    )
    assert rc == 0, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("liif-viewer: note: the EXIF block")
    assert out.startswith("wrote ")


def test_no_display_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["XDG_SESSION_TYPE"] = "tty"
    env["LIIF_VIEWER_DATA"] = str(tmp_path / "userdata")
    if sys.platform in ("win32", "darwin"):
        pytest.skip("Windows and macOS always have a display")
    done = subprocess_cli(src, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "liif-viewer: error: no display found (DISPLAY and WAYLAND_DISPLAY are not set): open the viewer in "
        "a desktop session, or use the render, export or batch commands (liif-viewer --help)"
    )


def test_an_unknown_word_is_a_usage_error_not_a_window(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from viewer import cli

    opened: list[object] = []

    def fake_gui(*a: object, **k: object) -> int:
        opened.append(a)
        return 0

    monkeypatch.setattr(cli, "_run_gui", fake_gui)
    monkeypatch.chdir(tmp_path)
    for argv in (["frobnicate"], ["frobnicate", "--disk-cache", "0"]):
        rc, _, err = cli_run(capsys, *argv)
        assert rc == 2 and "invalid choice: 'frobnicate'" in err, err
    assert opened == []
    (tmp_path / "frobnicate").write_bytes(
        b""
    )  # an existing file is a photo to open (the viewer says why not)
    for argv in (["frobnicate"], ["photo.png"], ["old/photo"]):
        assert cli_run(capsys, *argv)[0] == 0
    assert len(opened) == 3


def test_jpeg_dpi_below_1_is_refused_before_work_and_png_records_it(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src)
    for cmd in (["export", "--size", "32x24"], ["render", "--scale", "2"]):
        rc, _, err = cli_run(
            capsys, cmd[0], src, "-o", tmp_path / "o.jpg", *cmd[1:], "--dpi", "0.5", "--model", model_file
        )
        one_error_line(rc, err, "whole number of DPI")
    rc, out, err = cli_run(
        capsys,
        "export",
        src,
        "-o",
        tmp_path / "o.png",
        "--size",
        "32x24",
        "--dpi",
        "0.5",
        "--model",
        model_file,
    )
    assert rc == 0 and "0.5 DPI" in out, err
    with Image.open(tmp_path / "o.png") as im:
        assert im.info["dpi"][0] == pytest.approx(0.5, abs=0.01)


def test_a_244_character_output_name_is_written_by_the_command(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src)
    out = tmp_path / ("a" * 240 + ".png")
    rc, _, err = cli_run(capsys, "render", src, "-o", out, "--scale", "2", "--model", model_file)
    assert rc == 0 and out.is_file(), err
    assert leftovers(tmp_path) == []


def test_missing_x11_libraries_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Where Qt would open an X11 window without a library its xcb platform links (it aborts the process
    there), the viewer refuses in one line that names the packages to install; a Wayland session, another
    platform or the libraries installed go on. The loader's lookup is replaced for two libraries: this
    machine may have them all."""
    import ctypes

    from viewer import cli, display

    if not sys.platform.startswith("linux"):
        pytest.skip("the X11 library check is Linux's")
    src = tmp_path / "src.png"
    Image.fromarray(noise(12, 16)).save(src)
    real = ctypes.CDLL
    looked: list[str] = []

    def loader(name: str, *args: object, **kwargs: object) -> object:
        looked.append(name)
        if name in ("libxcb-icccm.so.4", "libxcb-keysyms.so.1"):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ctypes, "CDLL", loader)
    for name in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    rc = cli.main([str(src)])
    err = capsys.readouterr().err
    assert rc == 2 and set(looked) >= {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"}
    assert err.strip().splitlines() == [err.strip()]
    assert "sudo apt install libxcb-icccm4 libxcb-keysyms1)" in err
    # Asked for X11 explicitly: the same refusal.
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    with pytest.raises(ViewerError, match="libxcb-icccm4 libxcb-keysyms1"):
        display.check_display()
    # A Wayland session (nothing asked) or a platform that is not X11 does not need them.
    looked.clear()
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    display.check_display()
    monkeypatch.setenv("QT_QPA_PLATFORM", "wayland;xcb")
    display.check_display()
    assert looked == []
    # All there: no refusal.
    monkeypatch.setattr(ctypes, "CDLL", lambda name, *a, **k: looked.append(name))
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    display.check_display()
    assert len(looked) == len(display._X11_LIBRARIES)
