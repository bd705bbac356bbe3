"""The launcher's restart with glibc's huge-page malloc: when it applies, and that it really takes effect."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from viewer import hugepages as H

LINUX = ("Linux", ("glibc", "2.36"), "madvise")


def test_it_applies_only_where_it_changes_something() -> None:
    system, libc, mode = LINUX
    assert H.should_reexec({}, system, libc, mode)
    assert not H.should_reexec({}, "Darwin", ("", ""), mode)
    assert not H.should_reexec({}, "Windows", ("", ""), mode)
    assert not H.should_reexec({}, system, ("glibc", "2.34"), mode)  # no such tunable before 2.35
    assert not H.should_reexec({}, system, ("musl", "1.2"), mode)
    assert not H.should_reexec({}, system, ("glibc", "bad"), mode)
    assert not H.should_reexec({}, system, libc, "always")  # huge pages already
    assert not H.should_reexec({}, system, libc, "never")
    assert not H.should_reexec({}, system, libc, "")
    assert not H.should_reexec({H.OPT_OUT: "1"}, system, libc, mode)
    # Already set (also what stops a second restart).
    assert not H.should_reexec({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}, system, libc, mode)


def test_the_tunable_is_added_to_those_already_set() -> None:
    assert H.tuned_environment({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    env = H.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/h"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert env["HOME"] == "/h"


def test_the_kernel_mode_is_read_from_its_bracket(tmp_path: Path) -> None:
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert H.thp_mode(f) == "madvise"
    f.write_text("[always] madvise never\n")
    assert H.thp_mode(f) == "always"
    f.write_text("garbage\n")
    assert H.thp_mode(f) == ""
    assert H.thp_mode(tmp_path / "missing") == ""


_SHOW = (
    "import os; from viewer.hugepages import reexec_with_hugepages as r; r(); "
    "print(os.getpid(), os.environ.get('GLIBC_TUNABLES', ''))"
)


def _run(env: dict[str, str]) -> tuple[str, int, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SHOW], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    pid, _, tunables = out.strip().partition(" ")
    return tunables, int(pid), proc.pid


def test_the_process_restarts_itself_once_with_the_tunable_where_it_applies(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", H.OPT_OUT)}
    # No arguments is the viewer: with the official model remembered it restarts where that applies.
    env.update(_settings(tmp_path, "edsr-baseline-liif"))
    tunables, pid, started = _run(env)
    applies = H.should_reexec(env, platform.system(), platform.libc_ver(), H.thp_mode())
    assert ("glibc.malloc.hugetlb=1" in tunables) == applies
    assert tunables.count("hugetlb") <= 1  # once, not in a loop
    assert pid == started  # exec replaces the process: same pid, so signals and exit codes still reach it


def test_the_opt_out_keeps_the_process_as_started() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env[H.OPT_OUT] = "1"
    tunables, _, _ = _run(env)
    assert "hugetlb" not in tunables


def test_the_console_command_restarts_before_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed `liif-viewer` script is `viewer.entry:main`, which restarts first, then runs the CLI."""
    from importlib.metadata import entry_points

    import viewer.cli
    import viewer.entry

    (script,) = entry_points(group="console_scripts", name="liif-viewer")
    assert script.value == "viewer.entry:main"
    calls: list[str] = []
    monkeypatch.setattr(viewer.entry, "reexec_with_hugepages", lambda: calls.append("restart"))
    monkeypatch.setattr(viewer.cli, "main", lambda: calls.append("cli") or 0)  # type: ignore[func-returns-value]
    with pytest.raises(SystemExit) as exit_:
        viewer.entry.main()
    assert exit_.value.code == 0 and calls == ["restart", "cli"]


def test_a_bundled_app_restarts_as_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a PyInstaller bundle the command to run again is the app with this run's arguments, not the
    interpreter's argv (there is no separate interpreter)."""
    monkeypatch.setattr(sys, "executable", "/opt/liif-viewer/liif-viewer")
    monkeypatch.setattr(sys, "argv", ["liif-viewer", "render", "a.jpg"])
    monkeypatch.setattr(sys, "orig_argv", ["/opt/liif-viewer/liif-viewer", "-X", "render", "a.jpg"])
    assert H.command_line() == ["/opt/liif-viewer/liif-viewer", "-X", "render", "a.jpg"]  # not frozen
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert H.command_line() == ["/opt/liif-viewer/liif-viewer", "render", "a.jpg"]
    monkeypatch.setattr(sys, "executable", "")
    assert H.command_line() is None


def _photo(path: Path, w: int, h: int) -> Path:
    from PIL import Image

    Image.new("RGB", (w, h), (90, 60, 30)).save(path)
    return path


def test_a_small_render_or_export_is_a_small_job(tmp_path: Path) -> None:
    small = _photo(tmp_path / "small.png", 256, 256)
    big = _photo(tmp_path / "big.png", 257, 256)
    assert H.small_job(["render", str(small), "-o", "x.png", "--scale", "4"])
    assert H.small_job(["export", str(small), "-o", "x.tif", "--print", "A4"])
    assert not H.small_job(["render", str(big), "-o", "x.png", "--scale", "4"])
    assert not H.small_job(["batch", str(small)])  # only render and export
    assert not H.small_job([str(small)])  # the viewer
    assert not H.small_job(["render", "--help"])
    assert not H.small_job(["render", str(tmp_path / "missing.png")])
    (tmp_path / "text.png").write_text("not an image")
    assert not H.small_job(["render", str(tmp_path / "text.png")])
    assert not H.small_job([])


def test_a_small_job_does_not_restart(tmp_path: Path) -> None:
    small = _photo(tmp_path / "small.png", 64, 48)
    big = _photo(tmp_path / "big.png", 640, 480)
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", H.OPT_OUT)}
    applies = H.should_reexec(env, platform.system(), platform.libc_ver(), H.thp_mode())
    official = ["--model", "edsr-baseline-liif"]
    cases = ((small, official, False), (big, official, applies), (big, ["--model", "liif-lm"], False))
    for photo, model, restarts in cases:
        argv = ["liif-viewer", "render", str(photo), *model]
        code = f"import sys; sys.argv = {argv!r}; {_SHOW}"
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert ("hugetlb" in proc.stdout) == restarts


def test_a_render_with_a_small_decoder_is_a_light_job(tmp_path: Path) -> None:
    """Renders and exports with a small decoder skip the restart (it made them slower; see the module);
    a weights file counts by the cost its header states; the official decoder, a missing file, an
    unknown name and other commands do not count."""
    from viewer.engine.weights import auto_model, list_models
    from viewer.paths import models_dir

    photo = str(_photo(tmp_path / "p.png", 640, 480))
    assert H.light_decoder_job(["render", photo, "-o", "x.png", "--model", "liif-lm"])
    assert H.light_decoder_job(["export", photo, "--model=liif-lm", "--print", "A4"])
    assert not H.light_decoder_job(["render", photo, "--model", "liif-lm"], limit=1000)  # 31,104 > 1,000
    assert not H.light_decoder_job(["render", photo, "--model", "edsr-baseline-liif"])
    assert not H.light_decoder_job(["render", photo, "--model", "liif-lm", "--model", "edsr-baseline-liif"])
    assert not H.light_decoder_job(["render", photo, "--model", str(tmp_path / "weights.safetensors")])
    lm_file = str(models_dir() / "liif-lm.safetensors")
    assert H.light_decoder_job(["render", photo, "--model", lm_file])
    assert not H.light_decoder_job(["render", photo, "--model", lm_file], limit=1000)
    (tmp_path / "junk.safetensors").write_bytes(b"not a weights file")
    assert not H.light_decoder_job(["render", photo, "--model", str(tmp_path / "junk.safetensors")])
    assert not H.light_decoder_job(["render", photo, "--model", "no-such-model"])
    assert H.light_decoder_job(["batch", photo, "-o", "out", "--model", "liif-lm"])
    assert not H.light_decoder_job(["batch", photo, "-o", "out", "--model", "edsr-baseline-liif"])
    assert not H.light_decoder_job(["models", "--model", "liif-lm"])
    # Without --model, render, export and batch use the official model, and `bench --gui` uses `auto`,
    # which is judged as the model it stands for on a CPU.
    for command in ("render", "export", "batch"):
        assert not H.light_decoder_job([command, photo])
    auto = next(m.cost for m in list_models() if m.name == auto_model("cpu"))
    light = auto is not None and auto.per_pixel_at(4) <= H.LIGHT_DECODER_MACS
    assert H.light_decoder_job(["render", photo, "--model", "auto"]) == light
    assert H.light_decoder_job(["bench", "--gui"]) == light


def test_a_batch_with_a_big_photo_among_its_first_files_is_a_big_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A batch skips the restart when a photo it names, or one at the top of a folder it names, is over the
    limit (the headers of its first files only); bad arguments count as not big, and print nothing."""
    small = _photo(tmp_path / "a.png", 40, 30)  # 1,200 pixels
    folder = tmp_path / "scans"
    folder.mkdir()
    _photo(folder / "b.png", 40, 30)
    _photo(folder / "c.png", 80, 60)  # 4,800 pixels
    (folder / "notes.txt").write_text("not a photo")
    deep = folder / "inner"
    deep.mkdir()
    _photo(deep / "d.png", 200, 200)  # below the top: not read
    out = ["-o", str(tmp_path / "out"), "--print", "4x6in"]
    assert H.big_batch_job(["batch", str(folder), *out], limit=4799)
    assert not H.big_batch_job(["batch", str(folder), *out], limit=4800)
    assert not H.big_batch_job(["batch", str(folder), *out, "-r"], limit=4800)  # the top only
    assert H.big_batch_job(["batch", str(small), str(folder), *out], limit=4799)
    assert not H.big_batch_job(["batch", str(small), str(folder), *out], limit=4799, most=2)  # a.png, b.png
    assert H.big_batch_job(["batch", str(small), *out], limit=1199)
    assert not H.big_batch_job(["batch", str(tmp_path / "missing"), *out], limit=1)
    assert not H.big_batch_job(["batch", str(folder), "--no-such-option"], limit=1)  # no -o: a usage error
    assert not H.big_batch_job(["export", str(small), *out], limit=1)
    assert capsys.readouterr() == ("", "")
    assert H.skips_restart(["batch", str(folder), *out, "--model", "edsr-baseline-liif"]) == (
        H.big_batch_job(["batch", str(folder), *out])
    )


def test_a_job_on_a_big_photo_is_a_big_job(tmp_path: Path) -> None:
    """Renders, exports and the viewer on a photo of more than the limit skip the restart (the kernel's
    compaction for huge pages made a big photo's buffers slower; see the module); the header decides."""
    photo = str(_photo(tmp_path / "p.png", 40, 30))  # 1,200 pixels
    assert H.big_photo_job(["render", photo, "-o", "x.png", "--scale", "2"], limit=1199)
    assert H.big_photo_job(["export", photo, "--print", "A4"], limit=1199)
    assert H.big_photo_job([photo, "--model", "liif-lm"], limit=1199)  # the viewer
    assert not H.big_photo_job(["render", photo], limit=1200)
    assert not H.big_photo_job([photo])  # the default limit, 8 MP
    assert not H.big_photo_job(["batch", photo], limit=10)
    assert not H.big_photo_job(["render", "--help"], limit=10)
    assert not H.big_photo_job([str(tmp_path / "missing.png")], limit=10)
    assert not H.big_photo_job([], limit=10)
    assert H.skips_restart(["render", photo, "--model", "edsr-baseline-liif"])  # small: 1,200 <= 65,536
    official = _settings(tmp_path / "official", "edsr-baseline-liif")
    assert not H.skips_restart([photo], environ=official)  # the viewer with the official model


def test_a_child_can_be_given_the_environment_without_the_tunable() -> None:
    tuned = H.tuned_environment({"GLIBC_TUNABLES": "glibc.malloc.check=0", "HOME": "/h"})
    assert H.untuned_environment(tuned) == {"GLIBC_TUNABLES": "glibc.malloc.check=0", "HOME": "/h"}
    assert H.untuned_environment(H.tuned_environment({"HOME": "/h"})) == {"HOME": "/h"}
    assert H.untuned_environment({"HOME": "/h"}) == {"HOME": "/h"}


def _settings(config: Path, model: str | None) -> dict[str, str]:
    """An environment whose XDG config folder holds the viewer's settings file remembering `model`
    (written as Qt writes it: quoted where Qt quotes); no file where `model` is None."""
    folder = config / H.SETTINGS_FILE[0]
    folder.mkdir(parents=True, exist_ok=True)
    if model is not None:
        value = f'"{model}"' if "," in model else model
        (folder / H.SETTINGS_FILE[1]).write_text(
            f"[engine]\ndevice=auto\nmodel={value}\n\n[files]\nrecent=\n"
        )
    return {"XDG_CONFIG_HOME": str(config), "HOME": str(config)}


def test_the_viewer_with_a_light_remembered_model_is_a_light_job(tmp_path: Path) -> None:
    """The viewer skips the restart when the model it will open with (its remembered Model-menu choice;
    `auto` when there is none) has a small decoder; `bench --gui` judges its --model the same way. A
    settings file that is not plain INI, or a heavy model, restarts as usual."""
    from viewer.engine.weights import auto_model, list_models
    from viewer.paths import models_dir

    photo = str(_photo(tmp_path / "p.png", 64, 48))
    auto = next(m.cost for m in list_models() if m.name == auto_model("cpu"))
    auto_light = auto is not None and auto.per_pixel_at(4) <= H.LIGHT_DECODER_MACS
    none = _settings(tmp_path / "none", None)
    assert H.remembered_model(none) == "auto"
    assert H.light_decoder_job([], environ=none) == auto_light
    assert H.light_decoder_job([photo], environ=none) == auto_light
    lm = _settings(tmp_path / "lm", "liif-lm")
    assert H.remembered_model(lm) == "liif-lm"
    for args in ([], [photo], ["--feature-memory", "500"], ["--disk-cache=0"], [photo, "--disk-cache", "0"]):
        assert H.light_decoder_job(args, environ=lm), args
    assert not H.light_decoder_job([photo], limit=1000, environ=lm)
    assert not H.light_decoder_job([str(tmp_path / "missing.png")], environ=lm)  # not a viewer job
    assert not H.light_decoder_job(["frobnicate"], environ=lm)
    official = _settings(tmp_path / "official", "edsr-baseline-liif")
    assert not H.light_decoder_job([photo], environ=official)
    retired = _settings(tmp_path / "retired", "liif-fast")  # read as its replacement, liif-lm
    assert H.light_decoder_job([photo], environ=retired)
    lm_file = str(models_dir() / "liif-lm.safetensors")
    quoted = _settings(tmp_path / "quoted", lm_file + ",")  # a comma: Qt quotes the value
    assert H.remembered_model(quoted) == lm_file + ","
    assert not H.light_decoder_job([photo], environ=quoted)  # no such file
    as_file = _settings(tmp_path / "file", lm_file)
    assert H.light_decoder_job([photo], environ=as_file)
    escaped = tmp_path / "escaped"
    _settings(escaped, "x")
    (escaped / H.SETTINGS_FILE[0] / H.SETTINGS_FILE[1]).write_text('[engine]\nmodel="/photos/\\x00e9t\xe9"\n')
    assert H.remembered_model({"XDG_CONFIG_HOME": str(escaped)}) is None
    assert not H.light_decoder_job([photo], environ={"XDG_CONFIG_HOME": str(escaped)})
    assert H.light_decoder_job(["bench", "--gui", "--model", "liif-lm"])
    assert not H.light_decoder_job(["bench", "--gui", "--model", "edsr-baseline-liif"])
    assert not H.light_decoder_job(["bench", "--decoders", "--model", "liif-lm"])


def test_the_viewer_restarts_only_with_a_heavy_remembered_model(tmp_path: Path) -> None:
    """The real launcher in a fresh process: the viewer's command line with the official model remembered
    restarts with the tunable (where it applies here), with `liif-lm` remembered it does not."""
    photo = _photo(tmp_path / "p.png", 640, 480)
    base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", H.OPT_OUT)}
    applies = H.should_reexec(base, platform.system(), platform.libc_ver(), H.thp_mode())
    for model, restarts in (("edsr-baseline-liif", applies), ("liif-lm", False)):
        env = {**base, **_settings(tmp_path / model, model)}
        argv = ["liif-viewer", str(photo)]
        code = f"import sys; sys.argv = {argv!r}; {_SHOW}"
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert ("hugetlb" in proc.stdout) == restarts, model


def test_a_finished_render_exits_at_once_with_its_handlers_run(tmp_path: Path) -> None:
    """A render that succeeded ends without the interpreter's teardown, but its exit handlers still run
    and everything it printed arrives; a failed one exits as usual, with its status."""
    import subprocess

    photo = _photo(tmp_path / "in.png", 24, 16)
    script = (
        "import atexit, sys; atexit.register(lambda: print('handler ran', flush=True)); "
        "from viewer.entry import main; main()"
    )
    env = {**os.environ, "LIIF_VIEWER_CACHE": str(tmp_path / "cache"), H.OPT_OUT: "1"}
    out = tmp_path / "out.png"
    argv = [sys.executable, "-c", script, "render", str(photo), "-o", str(out), "--scale", "2"]
    done = subprocess.run([*argv, "--model", "liif-lm"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and done.stdout.rstrip().endswith("handler ran")
    from PIL import Image

    with Image.open(out) as img:
        assert img.size == (48, 32)
    failed = subprocess.run([*argv, "--model", "no-such-model"], capture_output=True, text=True, env=env)
    assert failed.returncode == 2 and "handler ran" in failed.stdout and failed.stderr
