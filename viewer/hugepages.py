"""Start `liif-viewer` with glibc's huge-page malloc on Linux, so large tensors cost far fewer page faults.

Every encoder activation is a fresh allocation of tens of megabytes (64 MB per layer for a 512 px tile).
glibc serves each with a new mmap, and the kernel then zeroes it one 4 KiB page at a time: on the 2-core
development machine those page faults took 9 of the 11 seconds of encoding the bundled sample. With the
glibc tunable `glibc.malloc.hugetlb=1` (glibc 2.35 and later), malloc asks for transparent huge pages
(2 MiB), which is where the kernel's `madvise` mode (the common default) gives them. Tunables are read
only when a process starts, so the command re-executes itself once, with the tunable added, before it
imports anything heavy. Set LIIF_VIEWER_NO_HUGEPAGES=1 to turn this off.

A small job does not restart (`small_job`): there huge pages cost more than they save. On the 2-core AMD
EPYC development machine (bf16), rendering a 128 px photo to 512 px took 0.05 to 0.15 s longer with them
(3 to 5 %; `liif-viewer bench --startup` and two runs of 12 and 16 alternating rounds), and a 256 px one
to 1024 px was slower with them too (medians of 6 rounds, under heavy load: 72 s against 59 s wall, 43
against 36 s CPU).

Nor does a render, export or batch with a small decoder (`light_decoder_job`: `liif-lm` and the
others of at most `LIGHT_DECODER_MACS` multiply-adds per output pixel, by name or as a weights file),
which allocates far less than the official one: on the same machine, a whole `render --scale 8` of a
320 px photo took 4.13 to 4.23 s with `liif-lm` without huge pages and 4.42 to 5.03 s with them (5
alternating rounds), and 6.02 / 6.66 s against
6.56 / 6.98 s with `liif-fast` (2 rounds); renders of 512, 1024 and 2048 px photos at x2 and x1.1 with
`liif-lm` took the same time either way (within 0.5 s of 4, 16 and 57 s), while the official model's x8
render still gained (32.8 s against 34.6 s, 1 round).

Nor does the viewer whose remembered model (Model menu) has such a decoder, `auto` on a CPU included
(`remembered_model`; a `bench --gui` of such a model likewise). There the restart only cost time, and it
left a big photo opened later from the File menu paying the compaction below: on the same machine
(2026-12-05, `xvfb-run -a liif-viewer bench --gui --zooms 8 --model liif-lm` with and without
LIIF_VIEWER_NO_HUGEPAGES=1, 3 alternating rounds), the sample was ready to refine in 0.97 / 1.05 / 1.11 s
without huge pages and 1.35 / 1.13 / 1.17 s with them, the 1280 x 800 view at x8 fully refined in
0.677 / 0.661 / 0.767 s against 1.019 / 0.901 / 0.640 s, peak memory 0.70 to 0.73 GiB either way.

Nor does a job on a big photo (`big_photo_job`: a render or export of a photo of more than 8 MP, or the
viewer started on one). There the photo's own buffers are hundreds of megabytes, and in `madvise` mode the
kernel may compact memory to find huge pages for them on the spot: on the same machine after 17 hours up,
converting 3,000 rows of a 100 MP photo to float took 2.5 to 4.2 s with the tunable and 0.26 s without,
the whole 12 MP photo 0.5 to 0.9 s against 0.04 s; a 100 MP photo opened in the viewer was ready in 5.2
to 5.3 s with it and 3.6 to 4.2 s without, and a 400 x 500 region export from it took 7.3 to 7.7 s
against 5.8 to 6.2 s (`bench --big --sizes 100mp`, 2 alternating rounds each). A batch whose first
files include such a photo (`big_batch_job`) does not restart either: see there.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

OPT_OUT = "LIIF_VIEWER_NO_HUGEPAGES"
"""Environment variable: any non-empty value keeps the process as it was started."""
TUNABLE = "glibc.malloc.hugetlb"
THP_MODE_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
SMALL_JOB_PIXELS = 256 * 256
"""A `render` or `export` of a photo of at most this many pixels runs without the restart."""
BIG_JOB_PIXELS = 8_000_000
"""Nor does a `render` or `export` of a photo of more than this many pixels, or the viewer started on one."""


def thp_mode(path: Path = THP_MODE_FILE) -> str:
    """The kernel's transparent-huge-page mode ('always', 'madvise', 'never'), or '' when unknown."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else ""


def _glibc_at_least(version: str, want: tuple[int, int] = (2, 35)) -> bool:
    try:
        got = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return False
    return len(got) == 2 and got >= want


def should_reexec(environ: Mapping[str, str], system: str, libc: tuple[str, str], mode: str) -> bool:
    """Whether re-executing with the tunable would change anything: Linux with glibc 2.35 or later, the
    kernel in `madvise` mode (`always` already gives huge pages, `never` none), and the tunable not set yet
    (which also stops a second re-execution) and not turned off."""
    if system != "Linux" or environ.get(OPT_OUT):
        return False
    name, version = libc
    if name != "glibc" or not _glibc_at_least(version):
        return False
    if mode != "madvise":
        return False
    return TUNABLE not in environ.get("GLIBC_TUNABLES", "")


def tuned_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with the tunable appended to any GLIBC_TUNABLES already there."""
    env = dict(environ)
    current = env.get("GLIBC_TUNABLES", "")
    env["GLIBC_TUNABLES"] = f"{current}:{TUNABLE}=1" if current else f"{TUNABLE}=1"
    return env


def command_line() -> list[str] | None:
    """The argv that starts this same command again, or None.

    Under Python, the interpreter's own argv (with its options). In a PyInstaller bundle `sys.executable`
    is the app itself, so it is that with this run's arguments.
    """
    if not sys.executable:
        return None
    if getattr(sys, "frozen", False):
        return [sys.executable, *sys.argv[1:]]
    orig = list(getattr(sys, "orig_argv", []))
    return orig or None


@functools.lru_cache(maxsize=4)
def _photo_pixels(path: str) -> int:
    """The pixel count in a photo's header, or 0 when it cannot be read (the command then reports it).
    Cached: `skips_restart` asks for one photo by two rules."""
    try:
        import warnings

        from PIL import Image

        with warnings.catch_warnings():  # a huge photo's bomb warning is the command's business
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                w, h = img.size
    except Exception:  # any failure only means "restart as usual"
        return 0
    return max(0, w * h)


def small_job(args: Sequence[str], limit: int = SMALL_JOB_PIXELS) -> bool:
    """Whether `args` (the command's arguments) render or export a photo of at most `limit` pixels.

    Reads only the photo's header; anything unexpected (no such file, not an image) counts as not small,
    and the command itself then reports it.
    """
    if len(args) < 2 or args[0] not in ("render", "export") or args[1].startswith("-"):
        return False
    return 0 < _photo_pixels(args[1]) <= limit


def big_photo_job(args: Sequence[str], limit: int = BIG_JOB_PIXELS) -> bool:
    """Whether `args` render or export a photo of more than `limit` pixels, or open one in the viewer
    (`liif-viewer PHOTO ...`). Reads only the photo's header; anything unexpected counts as not big."""
    if len(args) >= 2 and args[0] in ("render", "export") and not args[1].startswith("-"):
        photo = args[1]
    elif args and not args[0].startswith("-") and Path(args[0]).is_file():
        photo = args[0]
    else:
        return False
    return _photo_pixels(photo) > limit


BATCH_FILES_READ = 64
"""`big_batch_job` reads the headers of at most this many of a batch's files."""


def big_batch_job(args: Sequence[str], limit: int = BIG_JOB_PIXELS, most: int = BATCH_FILES_READ) -> bool:
    """Whether `args` run a batch with a photo of more than `limit` pixels among the first `most` files it
    names or finds at the top of the folders it names: an archive of scans, whose buffers pay the
    kernel's compaction as a big photo's export does. On the 2-core AMD EPYC a batch of two 100 MP and two
    12 MP JPEGs to 8x10 in at 300 DPI took 7.96 to 9.57 s with the restart and 6.77 to 7.34 s without (3
    alternating rounds; the first 100 MP photo 4.33 to 5.25 s against 2.90 to 3.19 s). Reads headers
    only (the command line through the real parser, quietly); any failure counts as not big."""
    if not args or args[0] != "batch":
        return False
    try:
        import contextlib
        import io

        from viewer.cli import build_parser

        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            ns, _ = build_parser().parse_known_args(list(args))
        files: list[Path] = []
        for source in getattr(ns, "sources", None) or []:
            p = Path(source)
            files.extend(sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else [p])
            if len(files) >= most:
                break
        return any(_photo_pixels(str(f)) > limit for f in files[:most])
    except (Exception, SystemExit):  # any failure only means "restart as usual"
        return False


LIGHT_DECODER_MACS = 200_000
"""A render, export or batch whose decoder needs at most this many multiply-adds per output pixel (at x4)
runs without the restart (the official decoder needs 1.38 M, `liif-lm` 31 to 36 k)."""


def _option(args: Sequence[str], name: str, default: str) -> str:
    """The last value of option `name` in `args` (`--name VALUE` or `--name=VALUE`), else `default`."""
    value = default
    for k, a in enumerate(args):
        if a == name and k + 1 < len(args):
            value = args[k + 1]
        elif a.startswith(name + "="):
            value = a[len(name) + 1 :]
    return value


SETTINGS_FILE = ("liif-viewer", "liif-viewer.conf")
"""Where Qt keeps the viewer's settings on Linux (QSettings' native INI file), under the config folder."""


def viewer_job(args: Sequence[str]) -> bool:
    """Whether `args` open the viewer's window: no arguments, its own options, or a photo that exists."""
    from viewer.display import GUI_OPTIONS

    if not args:
        return True
    first = args[0]
    if first.split("=")[0] in GUI_OPTIONS:
        return True
    return not first.startswith("-") and Path(first).is_file()


def remembered_model(environ: Mapping[str, str]) -> str | None:
    """The viewer's remembered model (`engine/model` in Qt's settings file under XDG_CONFIG_HOME or
    ~/.config), `auto` where none is remembered; None where the file cannot be read as plain INI (a value
    with Qt's escapes, say), so that the caller restarts as usual."""
    import configparser

    home = environ.get("HOME") or str(Path.home())
    path = Path(environ.get("XDG_CONFIG_HOME") or Path(home, ".config"), *SETTINGS_FILE)
    if not path.is_file():
        return "auto"
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    value = parser.get("engine", "model", fallback="").strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if "\\" in value or '"' in value:
        return None
    return value or "auto"


def light_decoder_job(
    args: Sequence[str], limit: int = LIGHT_DECODER_MACS, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether `args` render, export or batch with a model whose decoder costs at most `limit` multiply-adds
    per output pixel (without `--model`: their default, the official model), or open the viewer with such a
    remembered model, or benchmark the viewer (`bench --gui`, whose default is `auto`) with one: a registry
    name (`auto` counts as `liif-lm`, what it stands for on a CPU where that is installed; a retired name as
    its replacement) or a `.safetensors` weights file. Reads one file's
    header and the viewer's settings file (no torch, no Qt); an unknown name, a file without our header
    or any failure counts as not light."""
    try:
        from viewer.engine.weights import (
            AUTO_MODEL,
            DEFAULT_MODEL,
            FAST_MODEL,
            RETIRED_MODELS,
            WEIGHTS_SUFFIX,
            registry_cost,
            weights_file_cost,
        )

        if len(args) >= 2 and args[0] in ("render", "export", "batch"):
            model: str | None = _option(args, "--model", DEFAULT_MODEL)  # these commands' default
        elif args and args[0] == "bench" and "--gui" in args:
            model = _option(args, "--model", AUTO_MODEL)
        elif viewer_job(args):
            model = remembered_model(os.environ if environ is None else environ)
        else:
            return False
        if model is None:
            return False
        model = RETIRED_MODELS.get(model, model)
        if model.endswith(WEIGHTS_SUFFIX):
            cost = weights_file_cost(Path(model))
        else:
            cost = registry_cost(FAST_MODEL if model == AUTO_MODEL else model)
    except Exception:  # any failure only means "restart as usual"
        return False
    return cost is not None and cost.per_pixel_at(4) <= limit


def skips_restart(args: Sequence[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether the command `args` runs without the restart where it would otherwise apply: a small photo,
    a light decoder, a big photo or a batch of big photos."""
    return (
        small_job(args)
        or light_decoder_job(args, environ=environ)
        or big_photo_job(args)
        or big_batch_job(args)
    )


def untuned_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without the tunable (for a child process that should run as a fresh command would)."""
    env = dict(environ)
    kept = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith(TUNABLE + "=")]
    if kept:
        env["GLIBC_TUNABLES"] = ":".join(kept)
    else:
        env.pop("GLIBC_TUNABLES", None)
    return env


def reexec_with_hugepages() -> None:
    """Replace this process by itself with the tunable set, when that helps (see the module docstring).

    Returns normally (and changes nothing) when it does not apply or the re-execution fails.
    """
    if not should_reexec(os.environ, platform.system(), platform.libc_ver(), thp_mode()):
        return
    if skips_restart(sys.argv[1:]):
        return
    argv = command_line()
    if argv is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, tuned_environment(os.environ))
    except OSError:
        return
