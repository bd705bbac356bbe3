"""The `liif-viewer` command.

`liif-viewer [PHOTO]` opens the viewer; subcommands `render`, `export`, `batch` (many photos, see
`viewer.engine.batch`), `fetch-weights`, `models` and `bench` work in the terminal. Problems caused by
input, settings or environment (`ViewerError`) are printed as one line, `liif-viewer: error: ...`, with exit status 2 and no output file; Ctrl-C exits with
130, SIGTERM with 143 and SIGHUP with 129, each leaving no partial file. Cheap checks (arguments, output
path, image header, limits, device, model name) run before the image is decoded or the model loaded, and torch is imported only by the commands
that need it, so `--version` and argument errors are instant.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from viewer import __version__
from viewer.display import GUI_OPTIONS, check_display
from viewer.engine.export import DEFAULT_MAX_OUTPUT_MP, ExportPlan, plan_export
from viewer.engine.imageio import (
    BackgroundLoad,
    ImageTooLargeError,
    LoadedImage,
    OutputExistsError,
    check_format_dpi,
    check_format_limits,
    check_output_path,
    load_image,
    probe_image,
    refuse_source_as_output,
)
from viewer.engine.printsize import (
    DEFAULT_DPI,
    FIT_MODES,
    Length,
    PixelSize,
    PrintSize,
    Region,
    parse_anchor,
    parse_dpi,
    parse_length,
    parse_pixel_size,
    parse_print_size,
    parse_region,
    parse_scale,
    scaled_size,
)
from viewer.engine.sharpen import Sharpen, parse_sharpen
from viewer.errors import ArgumentError, Cancelled, LimitError, ViewerError

if TYPE_CHECKING:
    from viewer.engine.render import Engine

PROG = "liif-viewer"
DEFAULT_MAX_INPUT_MP = 200.0
ENV_MAX_INPUT_MP = "LIIF_VIEWER_MAX_INPUT_MP"
ENV_MAX_OUTPUT_MP = "LIIF_VIEWER_MAX_OUTPUT_MP"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMMANDS = ("render", "export", "batch", "fetch-weights", "models", "bench", "eval", "train")


# ------------------------------------------------------------------------------------------------------
# Terminal output
# ------------------------------------------------------------------------------------------------------


class ProgressBar:
    """A progress bar with rate and time left on stderr (tqdm), drawn only when stderr is a terminal
    (never in pipes or logs). Called as bar(done, total); `finish` ends its line."""

    def __init__(
        self, label: str, stream: TextIO | None = None, enabled: bool | None = None, unit: str = "px"
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self.unit = unit
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            # A fixed size from the terminal, its fallback (80x24) where it reports none: tqdm hides its bar
            # when a terminal says it has no rows.
            cols, rows = shutil.get_terminal_size()
            self._bar = tqdm(
                total=total,
                desc=f"{self.label:<10}",
                file=self.stream,
                unit=self.unit,
                unit_scale=True,
                mininterval=0.1,
                ncols=cols,
                nrows=rows,
                bar_format="{desc} [{bar:30}] {percentage:5.1f}% [{elapsed}<{remaining}, {rate_fmt}]{postfix}",
            )
        if total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def note(self, text: str) -> None:
        """Show `text` after the bar (e.g. which photo of how many)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def write(self, line: str) -> None:
        """Print a line on the stream above the bar, which is redrawn under it."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def finish(self) -> None:
        """End the bar's line so later output starts cleanly."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _error(message: str) -> int:
    text = " ".join(str(message).split()) or "unknown error"
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------------------------------
# Argument parsing
# ------------------------------------------------------------------------------------------------------


OUTPUT_HELP = (
    "output file (.png, .jpg, .tif); an existing file is replaced, atomically: only once the new one is "
    "complete (see --no-clobber); never the input photo"
)


def _add_no_clobber(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-clobber",
        action="store_true",
        help="keep an existing output file: exit with status 2 and write nothing instead of replacing it",
    )


def _add_sharpen(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sharpen",
        metavar="MEDIUM[:STRENGTH]",
        default=None,
        help="print sharpening of the output after resampling: screen, matte or glossy, optionally with "
        ":low, :standard (default) or :high, e.g. matte:high; an unsharp mask whose radius scales with the "
        "DPI (default: none)",
    )


def _sharpen(args: argparse.Namespace) -> Sharpen | None:
    value = getattr(args, "sharpen", None)
    return parse_sharpen(value) if value is not None else None


def _add_margins(p: argparse.ArgumentParser) -> None:
    """--border and --bleed, shared by `export` and `batch`."""
    p.add_argument(
        "--border",
        metavar="LEN",
        default=None,
        help="white paper on each side inside the page, e.g. 5mm, 0.25in, 40px; the photo is fitted to "
        "what is left (default: none)",
    )
    p.add_argument(
        "--bleed",
        metavar="LEN",
        default=None,
        help="extra photo on each side beyond the print size, trimmed after printing, e.g. 3mm "
        "(default: none)",
    )


def _margins(args: argparse.Namespace) -> dict[str, Length]:
    """--border and --bleed, parsed, as keyword arguments of `plan_export`."""
    out = {}
    for name in ("border", "bleed"):
        value = getattr(args, name, None)
        if value is not None:
            out[name] = parse_length(value, f"--{name}")
    return out


def _add_engine_options(p: argparse.ArgumentParser, disk_cache: bool = True) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="registry name, weights file, or auto (liif-lm on a CPU, the official model on a GPU); "
        "default: edsr-baseline-liif",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="decoder precision (default: auto, fastest exact enough)",
    )
    p.add_argument(
        "--max-input-mp",
        metavar="MP",
        default=None,
        help=f"refuse photos over this many megapixels (default {DEFAULT_MAX_INPUT_MP:g}, or ${ENV_MAX_INPUT_MP})",
    )
    p.add_argument(
        "--max-output-mp",
        metavar="MP",
        default=None,
        help=f"refuse outputs over this many megapixels (default {DEFAULT_MAX_OUTPUT_MP:g}, or ${ENV_MAX_OUTPUT_MP})",
    )
    p.add_argument("--quality", default="92", metavar="Q", help="JPEG quality 1-100 (default 92)")
    _add_store_options(p, disk_cache)


def _add_store_options(p: argparse.ArgumentParser, disk_cache: bool = True) -> None:
    """--feature-memory and --disk-cache: where encoded tiles of the photo are kept (CLI and viewer)."""
    p.add_argument(
        "--feature-memory",
        metavar="MB",
        default=None,
        help="memory for encoded feature tiles, in MB (default: 1/24 of this machine's memory, "
        "256 MB to 4 GB); least recently used tiles are dropped beyond it",
    )
    if not disk_cache:  # batch: each photo is encoded once, and thousands would flush the viewer's cache
        return
    p.add_argument(
        "--disk-cache",
        metavar="MB",
        default=None,
        help="cap of the on-disk cache of encoded tiles in the user cache folder, in MB "
        "(default 4096; 0 turns it off); a photo encoded before is then not encoded again",
    )


def store_options(args: argparse.Namespace) -> tuple[int | None, int]:
    """(memory budget in bytes or None for the default, disk cache cap in bytes) from the options."""
    from viewer.engine.diskcache import DEFAULT_DISK_CAP_BYTES

    def mb(value: str | None, name: str, minimum: float) -> float | None:
        if value is None:
            return None
        try:
            v = float(value)
        except ValueError:
            raise ArgumentError(f"invalid {name} {value!r}: give a number of megabytes") from None
        if not math.isfinite(v) or v < minimum:
            raise ArgumentError(f"invalid {name} {value!r}: must be at least {minimum:g} MB")
        return v

    memory = mb(getattr(args, "feature_memory", None), "--feature-memory", 16)
    disk = mb(getattr(args, "disk_cache", None), "--disk-cache", 0)
    return (
        None if memory is None else int(memory * (1 << 20)),
        DEFAULT_DISK_CAP_BYTES if disk is None else int(disk * (1 << 20)),
    )


def build_parser() -> argparse.ArgumentParser:
    """The full parser (the GUI form `liif-viewer [PHOTO]` and `bench` are dispatched before it)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Continuous neural zoom for old photos (LIIF), with print-size export. "
        "Run without a command (or with a photo) to open the viewer.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser(
        "render",
        help="render a whole photo at any scale",
        description="Render the whole photo at a real-valued scale (e.g. 3.7) or an exact pixel size.",
    )
    r.add_argument("input", metavar="IN", help="the photo")
    r.add_argument("-o", "--output", required=True, metavar="OUT", help=OUTPUT_HELP)
    _add_no_clobber(r)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--scale", metavar="S", help="magnification; the output is round(W*S) x round(H*S)")
    g.add_argument("--size", metavar="WxH", help="exact output size in pixels (the aspect may change)")
    r.add_argument("--dpi", default=None, help="DPI to record in the file (default: none)")
    _add_sharpen(r)
    _add_engine_options(r)
    r.set_defaults(func=cmd_render)

    e = sub.add_parser(
        "export",
        help="export a region at a print size and DPI",
        description="Export a region of the photo at a print size (rotated to the region's orientation) "
        "or a pixel size, tiled with bounded memory, with the DPI, ICC profile and EXIF recorded.",
    )
    e.add_argument("input", metavar="IN", help="the photo")
    e.add_argument("-o", "--output", required=True, metavar="OUT", help=OUTPUT_HELP)
    _add_no_clobber(e)
    e.add_argument("--region", metavar="X,Y,W,H", default=None, help="source pixels to export (default: all)")
    g = e.add_mutually_exclusive_group(required=True)
    g.add_argument("--print", dest="print_size", metavar="SIZE", help="e.g. 8x10in, 20x25cm, 210x297mm, A4")
    g.add_argument("--size", metavar="WxH", help="exact output size in pixels")
    e.add_argument("--dpi", default=None, help=f"dots per inch (default {DEFAULT_DPI:g})")
    e.add_argument(
        "--fit", default="crop", choices=FIT_MODES, help="crop to fill (default), fit inside, stretch"
    )
    e.add_argument(
        "--anchor",
        metavar="X,Y",
        default=None,
        help="with --fit crop, which part of the region is kept, each 0 to 1: 0,0 top-left, 0.5,0.5 centre "
        "(default), 0.5,0 top middle",
    )
    _add_margins(e)
    _add_sharpen(e)
    _add_engine_options(e)
    e.set_defaults(func=cmd_export)

    _add_batch_parser(sub)

    f = sub.add_parser("fetch-weights", help="download, verify and convert the official LIIF weights")
    from viewer.engine.weights import add_fetch_arguments

    add_fetch_arguments(f)
    f.set_defaults(func=_cmd_fetch_weights)

    m = sub.add_parser(
        "models",
        help="list the models available",
        description="The models, with their size, their decoder's multiply-adds per output pixel, their "
        "measured quality and whether they are installed.",
    )
    m.add_argument(
        "-l", "--long", action="store_true", help="also architecture, source, licence, decoder cost and file"
    )
    m.set_defaults(func=_cmd_models)

    v = sub.add_parser(
        "eval",
        help="PSNR table on Set5/Set14/BSD100 with the paper's protocol",
        description="PSNR-Y with border shave = scale on the MATLAB-bicubic benchmark images (the LIIF "
        "paper's protocol), beside bicubic and the official model.",
    )
    from viewer.engine.evaluate import add_arguments as add_eval_arguments

    add_eval_arguments(v)
    v.set_defaults(func=_cmd_eval)

    t = sub.add_parser(
        "train",
        help="train one of the project's models (see models/*.md for the commands used)",
        description="Train a LIIF model with LIIF's protocol; resumable (run the same command again).",
    )
    from viewer.train.options import build_parser as add_train_arguments

    add_train_arguments(t)
    t.set_defaults(func=_cmd_train)

    sub.add_parser(
        "bench",
        help="measure our query paths against the paper's reference; --gui: the real window (see --help)",
        add_help=False,
    )
    return parser


def _limit(flag_value: str | None, env_name: str, default: float, flag: str) -> float:
    """A megapixel limit from the flag, else the environment variable, else the default."""
    if flag_value is not None:
        raw, source = flag_value, flag
    elif os.environ.get(env_name):
        raw, source = os.environ[env_name], env_name
    else:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ArgumentError(f"invalid {source} '{raw}': expected a number of megapixels") from None
    if not (math.isfinite(value) and value > 0):
        raise ArgumentError(f"invalid {source} '{raw}': must be a positive number of megapixels")
    return value


def _quality(raw: str) -> int:
    try:
        q = int(raw)
    except ValueError:
        raise ArgumentError(f"invalid --quality '{raw}': expected a whole number from 1 to 100") from None
    if not 1 <= q <= 100:
        raise ArgumentError(f"invalid --quality '{raw}': must be from 1 to 100")
    return q


# ------------------------------------------------------------------------------------------------------
# render / export
# ------------------------------------------------------------------------------------------------------


def _probe(path: str, max_input_mp: float) -> tuple[int, int]:
    try:
        info = probe_image(path, max_megapixels=max_input_mp)
    except ImageTooLargeError as exc:
        raise ImageTooLargeError(f"{exc} (raise the limit with --max-input-mp)") from None
    return info.width, info.height


def _load(path: str, max_input_mp: float) -> LoadedImage:
    try:
        return load_image(path, max_megapixels=max_input_mp)
    except ImageTooLargeError as exc:
        raise ImageTooLargeError(f"{exc} (raise the limit with --max-input-mp)") from None


def _load_beside(path: str, max_input_mp: float) -> BackgroundLoad:
    """The photo decoded on a thread of its own while the main thread imports torch and checks the model.

    Importing torch keeps one core busy for about a second, and Pillow's decoders release the GIL, so the
    two overlap: on the 2-core AMD EPYC, importing torch and decoding a 100 MP JPEG took 2.86 to 3.06 s one
    after the other and 1.99 to 2.43 s side by side (`bench --big`'s region export of it is that much
    sooner). Errors come from `result()`, where `_load` would have raised them.
    """
    return BackgroundLoad(lambda: _load(path, max_input_mp))


def _plan(
    w: int,
    h: int,
    region: Region | None,
    size: PrintSize | PixelSize,
    dpi: float | None,
    fit: str,
    max_output_mp: float,
    anchor: tuple[float, float] = (0.5, 0.5),
    sharpen: Sharpen | None = None,
    margins: dict[str, Length] | None = None,
) -> ExportPlan:
    try:
        return plan_export(
            w,
            h,
            region,
            size,
            dpi,
            fit,
            max_output_megapixels=max_output_mp,
            anchor=anchor,
            sharpen=sharpen,
            border=(margins or {}).get("border"),
            bleed=(margins or {}).get("bleed"),
        )
    except LimitError as exc:
        raise LimitError(f"{exc} (raise the limit with --max-output-mp)") from None


def _refuse_existing(args: argparse.Namespace) -> None:
    """With --no-clobber, refuse before any work an output that exists (checked again at the rename)."""
    if args.no_clobber and os.path.lexists(args.output):
        raise OutputExistsError(
            f"{args.output} already exists and --no-clobber keeps it; nothing was written"
        )


def _note(message: str) -> None:
    """One line on stderr about something the output leaves out."""
    print(f"{PROG}: note: {message}", file=sys.stderr)


def _check_engine_options(args: argparse.Namespace) -> str:
    """Validate the device, precision and model before anything slow; returns the model name or path."""
    from viewer.startup import imports_without_gc

    with imports_without_gc():  # torch is imported here (viewer/startup.py: 0.2 s less start-up)
        from viewer.engine.device import resolve_device, resolve_precision
        from viewer.engine.weights import AUTO_MODEL, DEFAULT_MODEL, auto_model, resolve_model_path

    dev = resolve_device(args.device)
    resolve_precision(args.precision, dev)
    model = args.model or DEFAULT_MODEL
    resolve_model_path(auto_model(dev.type) if model == AUTO_MODEL else model)
    return str(model)


def _render_and_write(
    args: argparse.Namespace,
    model: str,
    size: PrintSize | PixelSize,
    region: Region | None,
    dpi: float | None,
    fit: str,
    max_in: float,
    max_out: float,
    quality: int,
    anchor: tuple[float, float] = (0.5, 0.5),
    photo: BackgroundLoad | None = None,
) -> int:
    """Load the photo (or take it from `photo`, started earlier) and the model, render in bands (encoding
    only the latents the plan's rectangle needs, through the lazy feature store), write atomically, print
    the summary."""
    from viewer import paths
    from viewer.engine.diskcache import TileDiskCache
    from viewer.engine.export import run_export
    from viewer.engine.render import Engine

    start = time.monotonic()
    memory, disk_cap = store_options(args)
    loaded = photo.result() if photo is not None else _load(args.input, max_in)
    plan = _plan(
        loaded.width, loaded.height, region, size, dpi, fit, max_out, anchor, _sharpen(args), _margins(args)
    )
    engine: Engine = Engine.from_name(model, device=args.device, precision=args.precision)
    disk = None
    if disk_cap > 0:
        disk = TileDiskCache(
            paths.feature_cache_dir(),
            disk_cap,
            on_problem=lambda m: print(f"{PROG}: note: {m}", file=sys.stderr),
        )
    store = engine.open_store(loaded.pixels, budget_bytes=memory, disk=disk)
    bar = ProgressBar("rendering")
    try:
        run_export(
            engine,
            store,
            loaded,
            plan,
            args.output,
            jpeg_quality=quality,
            progress=bar,
            replace=not args.no_clobber,
            on_note=_note,
        )
    finally:
        bar.finish()
    print(_summary(args.output, plan, engine, time.monotonic() - start))
    return 0


def _summary(out: str, plan: ExportPlan, engine: Engine, seconds: float) -> str:
    x, y, w, h = plan.rect
    parts = [f"wrote {out}: {plan.file_w}x{plan.file_h} px"]
    if plan.border:
        parts.append(f"{plan.border} px border (photo {plan.out_w}x{plan.out_h} px)")
    if plan.bleed:
        parts.append(f"{plan.bleed} px bleed")
    inches = plan.print_inches()
    if plan.dpi is not None and inches is not None:
        parts.append(f"{plan.dpi:g} DPI ({inches[0]:.2f}x{inches[1]:.2f} in)")
    parts.append(f"x{plan.magnification:.3g} of source {w:g}x{h:g} at {x:g},{y:g}")
    if plan.from_source:  # at or below x1 the source is resampled, as the viewer shows it
        parts.append("resampled from the source (no model)")
    else:
        parts.append(f"{engine.model_name} on {engine.device} ({engine.precision})")
    if plan.sharpen is not None:
        parts.append(f"sharpened for {plan.sharpen.label()}")
    parts.append(f"{seconds:.1f} s")
    return ", ".join(parts)


def _output_checks(args: argparse.Namespace) -> tuple[str, int, float, float]:
    """What `render` and `export` check before reading the photo, in this order: the output's format, that
    it is not the input and (with --no-clobber) not there yet, then the quality and the two megapixel
    limits. Returns (format, quality, input limit, output limit)."""
    fmt = check_output_path(args.output)
    refuse_source_as_output(args.input, args.output)
    _refuse_existing(args)
    quality = _quality(args.quality)
    max_in = _limit(args.max_input_mp, ENV_MAX_INPUT_MP, DEFAULT_MAX_INPUT_MP, "--max-input-mp")
    max_out = _limit(args.max_output_mp, ENV_MAX_OUTPUT_MP, DEFAULT_MAX_OUTPUT_MP, "--max-output-mp")
    return fmt, quality, max_in, max_out


def cmd_render(args: argparse.Namespace) -> int:
    """`render IN -o OUT (--scale S | --size WxH)`: the whole photo at any real scale."""
    fmt, quality, max_in, max_out = _output_checks(args)
    dpi = parse_dpi(args.dpi) if args.dpi is not None else None
    check_format_dpi(fmt, dpi)
    scale = parse_scale(args.scale) if args.scale is not None else None
    fixed = parse_pixel_size(args.size) if args.size is not None else None
    w, h = _probe(args.input, max_in)
    size = scaled_size(w, h, scale) if scale is not None else fixed
    assert size is not None  # argparse requires one of --scale and --size
    plan = _plan(w, h, None, size, dpi, "stretch", max_out, sharpen=_sharpen(args))
    check_format_limits(fmt, plan.out_w, plan.out_h)
    photo = _load_beside(args.input, max_in)  # decoded while torch is imported
    model = _check_engine_options(args)
    return _render_and_write(args, model, size, None, dpi, "stretch", max_in, max_out, quality, photo=photo)


def cmd_export(args: argparse.Namespace) -> int:
    """`export IN -o OUT [--region X,Y,W,H] (--print SIZE | --size WxH) [--dpi D] [--fit MODE] [--anchor X,Y]`."""
    fmt, quality, max_in, max_out = _output_checks(args)
    dpi = parse_dpi(args.dpi) if args.dpi is not None else DEFAULT_DPI
    check_format_dpi(fmt, dpi)
    size: PrintSize | PixelSize = (
        parse_print_size(args.print_size) if args.print_size is not None else parse_pixel_size(args.size)
    )
    region = parse_region(args.region) if args.region is not None else None
    anchor = parse_anchor(args.anchor) if args.anchor is not None else (0.5, 0.5)
    w, h = _probe(args.input, max_in)
    plan = _plan(w, h, region, size, dpi, args.fit, max_out, anchor, _sharpen(args), _margins(args))
    check_format_limits(fmt, plan.file_w, plan.file_h)
    photo = _load_beside(args.input, max_in)  # decoded while torch is imported
    model = _check_engine_options(args)
    return _render_and_write(
        args, model, size, region, dpi, args.fit, max_in, max_out, quality, anchor, photo=photo
    )


# ------------------------------------------------------------------------------------------------------
# batch
# ------------------------------------------------------------------------------------------------------


def _add_batch_parser(sub: Any) -> None:
    b = sub.add_parser(
        "batch",
        help="export many photos (files or folders) to print-ready files; resumable, on a Ray cluster too",
        description="Export every photo of the sources as `export` would, with the model loaded once. The "
        "outputs mirror the source folders in OUTDIR (same stem, the source's format unless --format); a "
        "photo whose output is complete is skipped, so a stopped batch resumes where it stopped. A bad photo "
        "is reported and the batch goes on; OUTDIR/liif-batch.jsonl logs every photo. Exit status: 0 all "
        "done, 1 some photos failed, 2 bad arguments or environment, 130 interrupted (143 SIGTERM).",
    )
    b.add_argument("sources", nargs="+", metavar="SRC", help="photos, and folders of photos")
    b.add_argument(
        "-o", "--output", required=True, metavar="OUTDIR", help="output folder (created if needed)"
    )
    b.add_argument(
        "-r", "--recursive", action="store_true", help="include the photos in subfolders of a folder SRC"
    )
    g = b.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--print",
        dest="print_size",
        metavar="SIZE",
        help="print size, in each photo's orientation (e.g. 8x10in, A4)",
    )
    g.add_argument("--scale", metavar="S", help="magnify each whole photo S times")
    g.add_argument("--size", metavar="WxH", help="exact output size in pixels")
    b.add_argument(
        "--dpi",
        default=None,
        help=f"dots per inch (default {DEFAULT_DPI:g}; with --scale, none unless given)",
    )
    b.add_argument(
        "--fit",
        default="crop",
        choices=FIT_MODES,
        help="with --print or --size: crop to fill (default), fit, stretch",
    )
    _add_margins(b)
    _add_sharpen(b)
    b.add_argument(
        "--format",
        default=None,
        metavar="FMT",
        help="jpg, png or tif (default: each source's own; PNG for one that cannot be written, such as BMP)",
    )
    b.add_argument(
        "--cluster",
        metavar="ADDRESS",
        default=None,
        help="run on a Ray cluster from a node of it: HOST:PORT of its head (`ray start --head`), or "
        "ray://HOST:PORT through Ray Client (pip install 'ray[client]'); needs pip install "
        "'liif-viewer[cluster]' on every node",
    )
    _add_engine_options(b, disk_cache=False)
    b.set_defaults(func=cmd_batch)


def _model_label(model: str, device: str) -> str:
    """The model a local batch will load, as the log names it (`auto` resolved for this device)."""
    from viewer.engine.device import resolve_device
    from viewer.engine.weights import AUTO_MODEL, auto_model, resolve_model_path

    name = auto_model(resolve_device(device).type) if model == AUTO_MODEL else model
    path = resolve_model_path(name)
    return name if path.name != name else path.stem


def cmd_batch(args: argparse.Namespace) -> int:
    """`batch SRC [SRC ...] -o OUTDIR [--recursive] (--print SIZE | --scale S | --size WxH) [--border L |
    --bleed L] [--sharpen M[:S]] [--cluster A]`: every photo exported as `export` would."""
    from viewer.engine.batch import (
        FAILED,
        BatchOptions,
        LocalExecutor,
        PhotoResult,
        Scale,
        find_jobs,
        parse_format,
        prepare_outdir,
        run_batch,
    )

    quality = _quality(args.quality)
    max_in = _limit(args.max_input_mp, ENV_MAX_INPUT_MP, DEFAULT_MAX_INPUT_MP, "--max-input-mp")
    max_out = _limit(args.max_output_mp, ENV_MAX_OUTPUT_MP, DEFAULT_MAX_OUTPUT_MP, "--max-output-mp")
    dpi = parse_dpi(args.dpi) if args.dpi is not None else None
    size: PrintSize | PixelSize | Scale
    if args.print_size is not None:
        size = parse_print_size(args.print_size)
    elif args.scale is not None:
        size = Scale(parse_scale(args.scale))
    else:
        size = parse_pixel_size(args.size)
    margins = _margins(args)
    options = BatchOptions(
        size,
        dpi,
        args.fit,
        parse_format(args.format),
        quality,
        max_in,
        max_out,
        sharpen=_sharpen(args),
        border=margins.get("border"),
        bleed=margins.get("bleed"),
    )
    memory, _ = store_options(args)
    jobs = find_jobs(
        args.sources,
        args.output,
        recursive=args.recursive,
        fmt=options.fmt,
        on_problem=lambda m: print(f"{PROG}: {m}", file=sys.stderr),
    )
    if args.cluster is not None:  # a bad or unreachable address is told before OUTDIR is created
        from viewer.engine.cluster import check_reachable

        check_reachable(args.cluster)
    outdir = prepare_outdir(args.output)
    bar = ProgressBar("batch")
    counts = {"done": 0, "todo": 0}

    def on_start(todo: int, skipped: int, total: int) -> None:
        counts["todo"] = todo
        if skipped:
            bar.write(f"{PROG}: {skipped} of {total} photos already done (skipped); {todo} to render")

    def on_result(r: PhotoResult) -> None:
        if r.status == FAILED:
            bar.write(f"{PROG}: failed: {r.error}")
        elif r.status == "ok":
            counts["done"] += 1
            bar.note(f"{counts['done']}/{counts['todo']} photos")

    def note(message: str) -> None:
        bar.write(f"{PROG}: note: {message}")

    if args.cluster is not None:
        from viewer.engine.cluster import ClusterExecutor
        from viewer.engine.weights import DEFAULT_MODEL

        cluster = ClusterExecutor(
            args.cluster,
            args.model or DEFAULT_MODEL,
            device=args.device,
            precision=args.precision,
            budget_bytes=memory,
            on_note=note,
        )
        cluster.start()
        n, hosts = len(cluster.workers), len({str(w["host"]) for w in cluster.workers})
        devices = ", ".join(sorted({str(w["device"]) for w in cluster.workers}))
        print(
            f"{PROG}: {n} Ray worker{'s' * (n != 1)} on {hosts} node{'s' * (hosts != 1)}: "
            f"{cluster.model_label} on {devices}",
            file=sys.stderr,
        )
        try:
            summary = run_batch(
                jobs, options, outdir, cluster, on_progress=bar, on_result=on_result, on_start=on_start
            )
        finally:
            bar.finish()
            cluster.close()
    else:
        model = _check_engine_options(args)
        label = _model_label(model, args.device)

        def load() -> Engine:
            from viewer.engine.render import Engine

            return Engine.from_name(model, device=args.device, precision=args.precision)

        local = LocalExecutor(load, label, budget_bytes=memory)
        try:
            summary = run_batch(
                jobs, options, outdir, local, on_progress=bar, on_result=on_result, on_start=on_start
            )
        finally:
            bar.finish()
    if summary.interrupted:
        signum = summary.stop.signum if isinstance(summary.stop, Terminated) else None
        how = "interrupted" if signum is None else f"stopped by {signal.Signals(signum).name}"
        print(
            f"\n{PROG}: {how}: {summary.line()}; no partial file was written; run the same command to go on",
            file=sys.stderr,
        )
        return 130 if signum is None else 128 + signum
    print(f"batch: {summary.line()}; log: {summary.log_path}")
    return 1 if summary.failed else 0


# ------------------------------------------------------------------------------------------------------
# Delegated commands
# ------------------------------------------------------------------------------------------------------


def _cmd_fetch_weights(args: argparse.Namespace) -> int:
    from viewer.engine.weights import cmd_fetch_weights

    return int(cmd_fetch_weights(args) or 0)


def _cmd_models(args: argparse.Namespace) -> int:
    from viewer.engine.weights import cmd_models

    return int(cmd_models(args) or 0)


def _cmd_eval(args: argparse.Namespace) -> int:
    from viewer.engine.evaluate import cmd_eval

    return int(cmd_eval(args) or 0)


def _cmd_train(args: argparse.Namespace) -> int:
    from viewer.train.trainer import cmd_train

    return int(cmd_train(args) or 0)


def _cmd_bench(argv: list[str]) -> int:
    if "--batch" in argv:  # many photos: one model load against single exports' engine time
        from viewer.engine.bench_batch import main as batch_main

        return int(batch_main(argv) or 0)
    if "--startup" in argv:  # a small render, whole process, against `import torch` in the same run
        from viewer.engine.bench_startup import main as startup_main

        return int(startup_main(argv) or 0)
    if "--decoders" in argv:  # decoder cost and speed against the official model in the same run
        from viewer.engine.bench_decoders import main as decoders_main

        return int(decoders_main(argv) or 0)
    if "--big" in argv:  # big scans: viewer and region export against same-run references
        from viewer.engine.bench_big import main as big_main

        return int(big_main(argv) or 0)
    if "--overlays" in argv:  # Inspect mode's overlay repaint against a plain frame, in the same run
        from viewer.app.bench_overlays import main as overlays_main

        return int(overlays_main(argv) or 0)
    if "--gui" in argv:  # the window, driven offscreen (viewer.app.bench_gui)
        from viewer.app.bench_gui import main as gui_bench_main

        return int(gui_bench_main(argv) or 0)
    from viewer.engine.bench import main as bench_main

    return int(bench_main(argv) or 0)


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, add_help=False)
    _add_store_options(p)
    return p


def _run_gui(photo: str | None, options: list[str] | None = None) -> int:
    """Open the window; `options` are --feature-memory and --disk-cache, for this run only."""
    overrides: dict[str, int] = {}
    if options:
        args = _gui_parser().parse_args(options)
        memory, disk = store_options(args)
        if args.feature_memory is not None and memory is not None:
            overrides["engine/feature_memory_mb"] = memory >> 20
        if args.disk_cache is not None:
            overrides["engine/disk_cache_mb"] = disk >> 20
    check_display()
    try:
        from viewer.app.main import run_gui
    except ModuleNotFoundError as exc:
        missing = exc.name or "a module"
        if missing.split(".")[0] in ("PySide6", "shiboken6", "qasync"):
            raise ViewerError(
                f"the viewer needs {missing}, which is not installed (pip install liif-viewer)"
            ) from None
        if missing.startswith("viewer.app"):
            raise ViewerError(
                "the viewer is not part of this installation; use the render or export commands"
            ) from None
        raise
    return int(run_gui(Path(photo) if photo is not None else None, overrides=overrides) or 0)


# ------------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that every clean-up
    an interrupt runs (the temporary file of an output above all) runs for them too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM and SIGHUP raise `Terminated` once (a second one while cleaning up
    is ignored). A signal the caller ignores (SIGHUP under nohup) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated(signum)

    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) == signal.SIG_IGN:
            continue
        with contextlib.suppress(ValueError, OSError):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _names_a_photo(word: str) -> bool:
    """Whether a first argument that is not a command names a photo to open: an existing path, or a file
    name (with an extension or a folder). A bare unknown word (`frobnicate`) is a mistyped command."""
    return os.path.lexists(word) or bool(Path(word).suffix) or "/" in word or os.sep in word


def _dispatch(argv: list[str]) -> int:
    if not argv:
        return _run_gui(None)
    if argv[0] == "bench":
        return _cmd_bench(argv[1:])
    photo_first = not argv[0].startswith("-") and argv[0] not in COMMANDS and _names_a_photo(argv[0])
    if len(argv) == 1 and photo_first:
        return _run_gui(argv[0])
    if photo_first or argv[0].split("=")[0] in GUI_OPTIONS:
        # The window with options: liif-viewer [PHOTO] [--feature-memory MB] [--disk-cache MB].
        photo = None if argv[0].startswith("-") else argv[0]
        return _run_gui(photo, argv[1:] if photo is not None else argv)
    args = build_parser().parse_args(argv)
    if getattr(args, "func", None) is None:
        return _run_gui(None)
    with _stop_signals_interrupt():
        return int(args.func(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or environment, 130 interrupted)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Our own megapixel limit replaces Pillow's bomb warning, and Pillow's remarks about damaged files
    # ("Corrupt EXIF data", ...) would break the one-line error: the loader reports what matters.
    warnings.filterwarnings("ignore", category=_bomb_warning())
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
    try:
        return _dispatch(args)
    except ViewerError as exc:
        return _error(str(exc))
    except Terminated as exc:
        print(f"{PROG}: stopped by {signal.Signals(exc.signum).name}; no output was written", file=sys.stderr)
        return 128 + exc.signum
    except (KeyboardInterrupt, Cancelled):
        print(f"\n{PROG}: interrupted; no output was written", file=sys.stderr)
        return 130
    except MemoryError:
        return _error("out of memory; try a smaller output size or region, or a lower --max-output-mp")
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)


def _bomb_warning() -> type[Warning]:
    from PIL import Image

    return Image.DecompressionBombWarning


if __name__ == "__main__":
    sys.exit(main())
