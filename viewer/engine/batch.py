"""Batch export: many photos to print-ready files with the model loaded once, resumable and fault-tolerant.

Shared by `liif-viewer batch` and the viewer's File ▸ Export Folder…. The work has three steps:

1. `find_jobs` turns the sources (photos and folders) into jobs, one per photo, each with the output it
   gets: OUTDIR plus the photo's path relative to the folder that holds all the sources, same stem, the
   source's format (PNG for formats that cannot be written) unless a format is given. An output folder
   inside a source folder is never walked, so a batch never reads its own outputs back as photos.
2. `prepare` reads each photo's header and plans its export exactly as `export` does (a print size takes
   the photo's orientation; print sharpening, border or bleed as `export --sharpen/--border/--bleed`; DPI,
   ICC and EXIF as in `run_export`). A photo whose output exists and is
   complete is skipped: the log's last line for it says ok with the output's size and modification time,
   or, without such a line, the file decodes fully at the planned size.
3. An executor renders the rest: `LocalExecutor` with one `Engine` in this process (each photo through
   the lazy feature store and `run_export`, written atomically), or `viewer.engine.cluster`'s on Ray.

Every photo gets one JSON line in OUTDIR/liif-batch.jsonl (source, output, model, size, seconds, status,
error). A bad photo fails alone and the batch goes on; Ctrl-C or a cancel token stops it between or
inside photos, leaving no partial file. This module does not import torch at load time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from viewer.engine.cancel import CancelToken, ProgressCallback, check
from viewer.engine.export import DEFAULT_MAX_OUTPUT_MP, ExportPlan, plan_export
from viewer.engine.imageio import (
    SAVE_FORMATS,
    check_format_limits,
    load_image,
    output_format,
    probe_image,
    refuse_source_as_output,
)
from viewer.engine.printsize import DEFAULT_DPI, Length, PixelSize, PrintSize, scaled_size
from viewer.engine.sharpen import Sharpen
from viewer.errors import ArgumentError, Cancelled, ViewerError

if TYPE_CHECKING:
    from viewer.engine.render import Engine

#: Photo files a folder source contributes (what the viewer's File ▸ Open offers).
PHOTO_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pbm", ".tga"}
)
#: `--format` values and the suffix each writes.
FORMAT_SUFFIXES = {"png": ".png", "jpg": ".jpg", "tif": ".tif"}
#: The log, one JSON object per line, in the output folder.
LOG_NAME = "liif-batch.jsonl"

OK, SKIPPED, FAILED = "ok", "skipped", "failed"


@dataclass(frozen=True)
class Scale:
    """A magnification of the whole photo, as `render --scale` (the output is round(W*S) x round(H*S))."""

    factor: float


SizeSpec = PrintSize | PixelSize | Scale


@dataclass(frozen=True)
class BatchOptions:
    """What every photo of a batch gets: the size, DPI, fit, output format, limits and print finish.

    A `PrintSize` is printed at `dpi` (default 300) in the photo's orientation, cropped to fill unless
    `fit` says otherwise; a `PixelSize` is exactly that many pixels (300 DPI recorded unless `dpi`, as
    `export`); a `Scale` enlarges the whole photo with no DPI unless `dpi` (as `render`). `fmt` is png,
    jpg or tif, or None for the source's own format.

    `sharpen`, `border` and `bleed` are `export`'s print options (`plan_export`): print sharpening after
    resampling, white paper inside the page, or photo beyond it. A border or bleed needs a page, so it is
    refused with a `Scale` (as `render` has none); a border and a bleed together, or a border that leaves
    no room for the photo, are refused here, once, rather than failing every photo.
    """

    size: SizeSpec
    dpi: float | None = None
    fit: str = "crop"
    fmt: str | None = None
    jpeg_quality: int = 92
    max_input_mp: float = 200.0
    max_output_mp: float = DEFAULT_MAX_OUTPUT_MP
    sharpen: Sharpen | None = None
    border: Length | None = None
    bleed: Length | None = None

    def __post_init__(self) -> None:
        if self.fmt is not None and self.fmt not in FORMAT_SUFFIXES:
            raise ArgumentError(f"invalid format '{self.fmt}': use png, jpg or tif")
        if self.border is None and self.bleed is None:
            return
        if isinstance(self.size, Scale):
            raise ArgumentError("a border or bleed needs a page: use --print or --size, not --scale")
        # The page in pixels depends on the photo only through its orientation, and a border is the same
        # on every side, so planning a square photo (no output limit) finds these errors for all photos.
        dpi = DEFAULT_DPI if self.dpi is None else self.dpi
        plan_export(
            1,
            1,
            None,
            self.size,
            dpi,
            self.fit,
            max_output_megapixels=1e12,
            border=self.border,
            bleed=self.bleed,
        )

    def plan(self, w: int, h: int) -> ExportPlan:
        """The export plan for a w x h photo (raises ArgumentError or LimitError as `plan_export`)."""
        if isinstance(self.size, Scale):
            size: PrintSize | PixelSize = scaled_size(w, h, self.size.factor)
            return plan_export(
                w,
                h,
                None,
                size,
                self.dpi,
                "stretch",
                max_output_megapixels=self.max_output_mp,
                sharpen=self.sharpen,
            )
        dpi = DEFAULT_DPI if self.dpi is None else self.dpi
        return plan_export(
            w,
            h,
            None,
            self.size,
            dpi,
            self.fit,
            max_output_megapixels=self.max_output_mp,
            sharpen=self.sharpen,
            border=self.border,
            bleed=self.bleed,
        )

    def describe(self) -> str:
        """The request in a few words; the log keeps it so a rerun with other settings redoes the photo.
        The print options are named only when set, so logs of batches without them stay valid."""
        s = self.size
        if isinstance(s, Scale):
            what = f"scale {s.factor:g}" + (f" at {self.dpi:g} DPI" if self.dpi is not None else "")
        elif isinstance(s, PrintSize):
            what = f"print {s.label()} at {DEFAULT_DPI if self.dpi is None else self.dpi:g} DPI, {self.fit}"
        else:
            what = f"size {s.w}x{s.h} at {DEFAULT_DPI if self.dpi is None else self.dpi:g} DPI, {self.fit}"
        finish = ""
        if self.sharpen is not None:
            finish += f"; sharpen {self.sharpen.label()}"
        if self.border is not None:
            finish += f"; border {self.border.label()}"
        if self.bleed is not None:
            finish += f"; bleed {self.bleed.label()}"
        return f"{what}; format {self.fmt or 'source'}; quality {self.jpeg_quality}{finish}"


@dataclass(frozen=True)
class BatchJob:
    """One photo: where it is, the output it gets, and its path relative to the sources' common folder.
    `conflict` names the earlier photo that already has this output (then this one fails)."""

    source: Path
    output: Path
    rel: str
    conflict: str | None = None


# ------------------------------------------------------------------------------------------------------
# Finding the photos
# ------------------------------------------------------------------------------------------------------


def output_suffix(source_suffix: str, fmt: str | None) -> str:
    """The output's suffix: the `fmt` asked for, else the source's own when it can be written, else .png."""
    if fmt is not None:
        return FORMAT_SUFFIXES[fmt]
    return source_suffix if source_suffix.lower() in SAVE_FORMATS else ".png"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _walk(
    folder: Path, recursive: bool, skip: Path, on_problem: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Photo files in `folder` (and its subfolders when `recursive`), never entering `skip` (the output
    folder) nor hidden folders; hidden files (our own temporary files among them) are left out. A
    subfolder that cannot be read is told to `on_problem`; `folder` itself, as an ArgumentError."""
    if recursive:

        def unreadable(exc: OSError) -> None:
            where = exc.filename if exc.filename is not None else folder
            text = f"cannot read the folder {where}: {exc.strerror or exc}"
            if Path(where) == folder:
                raise ArgumentError(text)
            if on_problem is not None:
                on_problem(f"{text}; the photos in it are left out")

        for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d for d in dirnames if not d.startswith(".") and not _inside((here / d).resolve(), skip)
            )
            for name in sorted(filenames):
                if not name.startswith(".") and Path(name).suffix.lower() in PHOTO_SUFFIXES:
                    yield here / name
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise ArgumentError(f"cannot read the folder {folder}: {exc.strerror or exc}") from None
    for p in entries:
        if not p.name.startswith(".") and p.suffix.lower() in PHOTO_SUFFIXES and p.is_file():
            yield p


def find_jobs(
    sources: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    recursive: bool = False,
    fmt: str | None = None,
    on_problem: Callable[[str], None] | None = None,
) -> list[BatchJob]:
    """One job per photo of `sources` (files, and the photos in folders), sorted by relative path.
    `on_problem` hears of subfolders that cannot be read (their photos are left out).

    Raises ArgumentError for a source that does not exist, an output folder that is a source folder,
    and when no photo is found.
    """
    if not sources:
        raise ArgumentError("no sources given")
    out_abs = Path(os.path.abspath(outdir))
    out_real = out_abs.resolve()
    found: list[Path] = []
    roots: list[Path] = []
    subfolders = False
    for raw in sources:
        src = Path(raw)
        if not src.exists():
            raise ArgumentError(f"{src}: no such file or folder")
        if src.is_dir():
            if src.resolve() == out_real:
                raise ArgumentError(
                    f"the output folder {outdir} is the source folder {src}; choose another output folder"
                )
            roots.append(Path(os.path.abspath(src)))
            found.extend(_walk(src, recursive, out_real, on_problem))
            subfolders = subfolders or (not recursive and any(p.is_dir() for p in src.iterdir()))
        else:
            roots.append(Path(os.path.abspath(src)).parent)
            found.append(src)
    if not found:
        hint = " (add --recursive to include subfolders)" if subfolders else ""
        shown = ", ".join(str(s) for s in sources)
        raise ArgumentError(f"no photos found in {shown}{hint}")
    try:
        common = Path(os.path.commonpath([str(r) for r in roots]))
    except ValueError:
        raise ArgumentError("the sources are on different drives; run one batch per drive") from None

    jobs: list[BatchJob] = []
    seen_sources: set[Path] = set()
    outputs: dict[str, str] = {}
    for src in found:
        real = src.resolve()
        if real in seen_sources:
            continue
        seen_sources.add(real)
        rel = Path(os.path.abspath(src)).relative_to(common)
        out = out_abs / rel.with_suffix(output_suffix(rel.suffix, fmt))
        key = os.path.normcase(str(out)).lower()  # case-insensitive file systems too
        jobs.append(BatchJob(src, out, rel.as_posix(), outputs.get(key)))
        outputs.setdefault(key, rel.as_posix())
    jobs.sort(key=lambda j: j.rel)
    return jobs


def prepare_outdir(outdir: str | os.PathLike[str]) -> Path:
    """Create the output folder if needed and check that a file can be written in it (ViewerError if not)."""
    p = Path(outdir)
    if p.exists() and not p.is_dir():
        raise ViewerError(f"cannot use {p} as the output folder: it is a file")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ViewerError(f"cannot create the output folder {p}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".liif-batch-", suffix=".probe", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ViewerError(f"cannot write to the output folder {p}: {exc.strerror or exc}") from None
    return p


# ------------------------------------------------------------------------------------------------------
# The log
# ------------------------------------------------------------------------------------------------------


class BatchLog:
    """OUTDIR/liif-batch.jsonl: one JSON object per photo and run, appended and flushed line by line."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.path = outdir / LOG_NAME
        self._fh: IO[str] | None = None

    def last_records(self) -> dict[str, dict[str, Any]]:
        """The latest record for each output (by its path relative to OUTDIR); unreadable lines (a line cut
        short when a run was killed) are ignored."""
        records: dict[str, dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    with contextlib.suppress(ValueError):
                        rec = json.loads(line)
                        if isinstance(rec, dict) and isinstance(rec.get("output"), str):
                            records[rec["output"]] = rec
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ViewerError(f"cannot read the batch log {self.path}: {exc.strerror or exc}") from None
        return records

    def key(self, output: Path) -> str:
        """How the log names an output: relative to OUTDIR when inside it."""
        try:
            return output.relative_to(Path(os.path.abspath(self.outdir))).as_posix()
        except ValueError:
            return str(output)

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            try:
                self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the batch
            except OSError as exc:
                raise ViewerError(f"cannot write the batch log {self.path}: {exc.strerror or exc}") from None
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# ------------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoResult:
    """What became of one photo: status ok, skipped (already done) or failed, with the error's line."""

    job: BatchJob
    status: str
    seconds: float = 0.0
    size: tuple[int, int] | None = None
    error: str | None = None


@dataclass(frozen=True)
class BatchSummary:
    """The whole batch: every photo's result, the wall time, and whether it was interrupted (`stop`: the
    Cancelled or KeyboardInterrupt that ended it, whose type says by what)."""

    results: tuple[PhotoResult, ...]
    seconds: float
    interrupted: bool = False
    log_path: Path | None = None
    stop: BaseException | None = None

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[PhotoResult]:
        return [r for r in self.results if r.status == FAILED]

    def line(self) -> str:
        """One line for a person: how many written, skipped and failed, and how long it took."""
        parts = [f"{self.count(OK)} written", f"{self.count(SKIPPED)} skipped (already done)"]
        parts.append(f"{self.count(FAILED)} failed")
        return ", ".join(parts) + f", in {self.seconds:.1f} s"


@dataclass(frozen=True)
class PendingPhoto:
    """A photo to render: its job and plan (from the header), and the output's pixel count for progress."""

    job: BatchJob
    plan: ExportPlan

    @property
    def pixels(self) -> int:
        return self.plan.out_w * self.plan.out_h


@dataclass(frozen=True)
class Rendered:
    """An executor's outcome for one photo: the error's line when it failed, and the engine seconds."""

    pending: PendingPhoto
    seconds: float
    error: str | None = None


def describe_error(exc: BaseException, source: Path) -> str:
    """One line for a failed photo that names it (loader messages already start with its path)."""
    if isinstance(exc, MemoryError):
        text = "out of memory"
    elif isinstance(exc, ViewerError):
        text = " ".join(str(exc).split())
    else:
        detail = " ".join(str(exc).split())
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return text if str(source) in text else f"{source}: {text}"


# ------------------------------------------------------------------------------------------------------
# Preparing: plan each photo, skip what is done
# ------------------------------------------------------------------------------------------------------


def _decodes_at(path: Path, w: int, h: int) -> bool:
    """Whether the file at `path` decodes fully to a w x h image (an output written by an earlier run; the
    size is the file's, border or bleed included)."""
    try:
        im = load_image(path, max_megapixels=max(1.0, w * h / 1_000_000 * 1.01))
    except ViewerError:
        return False
    return (im.width, im.height) == (w, h)


def is_complete(job: BatchJob, plan: ExportPlan, record: dict[str, Any] | None, settings: str) -> bool:
    """Whether the output of `job` exists and is complete for this request.

    Complete means: the log's last line for it says ok (or skipped) for the same settings, with the file's
    size and modification time as they are now; or, with no such line (the run stopped between the write
    and the log line, or the log was removed), the file decodes fully at the planned size. Outputs are
    written atomically, so a file that is there was written whole; the checks tell ours from another one.
    """
    try:
        st = job.output.stat()
    except OSError:
        return False
    if record is not None and record.get("status") in (OK, SKIPPED):
        same_file = record.get("bytes") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns
        if same_file:
            return bool(record.get("settings") == settings)
    return _decodes_at(job.output, plan.file_w, plan.file_h)


def prepare(
    jobs: Sequence[BatchJob],
    options: BatchOptions,
    records: dict[str, dict[str, Any]],
    log: BatchLog,
    settings: str,
    cancel: CancelToken | None = None,
) -> tuple[list[PhotoResult], list[PendingPhoto]]:
    """Plan every photo from its header: (results for photos that failed or are already done, the rest)."""
    done: list[PhotoResult] = []
    pending: list[PendingPhoto] = []
    for job in jobs:
        check(cancel)
        try:
            if job.conflict is not None:
                raise ArgumentError(
                    f"{job.source}: has the same output as {job.conflict}; rename one of them"
                )
            refuse_source_as_output(job.source, job.output)
            info = probe_image(job.source, max_megapixels=options.max_input_mp)
            plan = options.plan(info.width, info.height)
            check_format_limits(output_format(job.output), plan.file_w, plan.file_h)
        except Exception as exc:
            done.append(PhotoResult(job, FAILED, error=describe_error(exc, job.source)))
            continue
        if is_complete(job, plan, records.get(log.key(job.output)), settings):
            done.append(PhotoResult(job, SKIPPED, size=(plan.file_w, plan.file_h)))
        else:
            pending.append(PendingPhoto(job, plan))
    return done, pending


# ------------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------------


def render_photo(
    engine: Engine,
    source: Path,
    output: Path,
    options: BatchOptions,
    *,
    budget_bytes: int | None = None,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
) -> ExportPlan:
    """Export one photo as `export` does: load it, plan it, encode only what the plan needs through the
    lazy feature store, render in bands and write `output` atomically. Returns the plan."""
    from viewer.engine.export import run_export

    loaded = load_image(source, max_megapixels=options.max_input_mp)
    plan = options.plan(loaded.width, loaded.height)
    store = engine.open_store(loaded.pixels, budget_bytes=budget_bytes)
    run_export(
        engine,
        store,
        loaded,
        plan,
        output,
        jpeg_quality=options.jpeg_quality,
        cancel=cancel,
        progress=progress,
    )
    return plan


class Executor(Protocol):
    """Renders pending photos and yields each outcome as it finishes (in any order). Errors of one photo
    are outcomes; `Cancelled` and KeyboardInterrupt stop it with no partial file left."""

    model_label: str

    def run(
        self,
        pending: Sequence[PendingPhoto],
        options: BatchOptions,
        cancel: CancelToken | None,
        progress: Callable[[int], None],
    ) -> Iterator[Rendered]: ...


class LocalExecutor:
    """Renders in this process with one engine, loaded on first use (not at all when nothing is pending)."""

    def __init__(
        self,
        engine: Engine | Callable[[], Engine],
        model_label: str | None = None,
        *,
        budget_bytes: int | None = None,
    ) -> None:
        self._engine = engine
        self.budget_bytes = budget_bytes
        self.model_label = model_label or str(getattr(engine, "model_name", "custom"))
        self.load_seconds = 0.0

    def engine(self) -> Engine:
        from viewer.engine.render import Engine

        if not isinstance(self._engine, Engine) and callable(self._engine):
            t0 = time.perf_counter()
            self._engine = self._engine()
            self.load_seconds = time.perf_counter() - t0
        return self._engine

    def run(
        self,
        pending: Sequence[PendingPhoto],
        options: BatchOptions,
        cancel: CancelToken | None,
        progress: Callable[[int], None],
    ) -> Iterator[Rendered]:
        if not pending:
            return
        engine = self.engine()
        for p in pending:
            check(cancel)
            t0 = time.perf_counter()
            try:
                p.job.output.parent.mkdir(parents=True, exist_ok=True)
                render_photo(
                    engine,
                    p.job.source,
                    p.job.output,
                    options,
                    budget_bytes=self.budget_bytes,
                    cancel=cancel,
                    progress=lambda done, total: progress(done),
                )
            except Cancelled:
                raise
            except Exception as exc:
                yield Rendered(p, time.perf_counter() - t0, describe_error(exc, p.job.source))
                continue
            yield Rendered(p, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------------
# The batch
# ------------------------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """Output pixels done over the photos to render, for one progress callback."""

    total: int
    callback: Callable[[int, int], None] | None
    done: int = 0
    _shown: int = field(default=-1, repr=False)

    def within(self, px: int) -> None:
        self._emit(self.done + px)

    def finish(self, px: int) -> None:
        self.done += px
        self._emit(self.done)

    def _emit(self, value: int) -> None:
        value = min(value, self.total)
        if self.callback is not None and self.total > 0 and value != self._shown:
            self._shown = value
            self.callback(value, self.total)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(log: BatchLog, model: str, settings: str, r: PhotoResult) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "time": _now(),
        "source": str(r.job.source),
        "output": log.key(r.job.output),
        "model": model,
        "settings": settings,
        "size": None if r.size is None else f"{r.size[0]}x{r.size[1]}",
        "seconds": round(r.seconds, 3),
        "status": r.status,
        "error": r.error,
    }
    if r.status in (OK, SKIPPED):
        with contextlib.suppress(OSError):
            st = r.job.output.stat()
            rec["bytes"], rec["mtime_ns"] = st.st_size, st.st_mtime_ns
    return rec


def run_batch(
    jobs: Sequence[BatchJob],
    options: BatchOptions,
    outdir: str | os.PathLike[str],
    executor: Executor,
    *,
    cancel: CancelToken | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[PhotoResult], None] | None = None,
    on_start: Callable[[int, int, int], None] | None = None,
) -> BatchSummary:
    """Run the batch: skip what is done, render the rest with `executor`, log every photo.

    Callbacks run on the calling thread: `on_start(photos to render, photos already done, photos in all)`
    once the photos are planned, `on_progress(output pixels done, total)` as rendering goes, `on_result` for each photo (the
    skipped and failed ones first). Cancellation (`cancel`) and Ctrl-C end the batch between or inside
    photos with no partial file; the summary then says `interrupted`. The output folder must be writable
    (`prepare_outdir`).
    """
    t0 = time.perf_counter()
    out = Path(outdir)
    log = BatchLog(out)
    settings = f"{options.describe()}; model {executor.model_label}"
    results: list[PhotoResult] = []

    def report(r: PhotoResult) -> None:
        results.append(r)
        log.write(_record(log, executor.model_label, settings, r))
        if on_result is not None:
            on_result(r)

    stop: BaseException | None = None
    try:
        done, pending = prepare(jobs, options, log.last_records(), log, settings, cancel)
        if on_start is not None:
            on_start(len(pending), sum(1 for r in done if r.status == SKIPPED), len(jobs))
        for r in done:
            report(r)
        prog = _Progress(sum(p.pixels for p in pending), on_progress)
        prog.within(0)
        for outcome in executor.run(pending, options, cancel, prog.within):
            p = outcome.pending
            prog.finish(p.pixels)
            if outcome.error is None:
                report(PhotoResult(p.job, OK, outcome.seconds, (p.plan.file_w, p.plan.file_h)))
            else:
                report(PhotoResult(p.job, FAILED, outcome.seconds, error=outcome.error))
    except (Cancelled, KeyboardInterrupt) as exc:
        stop = exc
    finally:
        log.close()
    return BatchSummary(tuple(results), time.perf_counter() - t0, stop is not None, log.path, stop)


def parse_format(value: str | None) -> str | None:
    """`--format`: png, jpg (or jpeg) or tif (or tiff); None keeps each source's format."""
    if value is None:
        return None
    v = value.strip().lower().lstrip(".")
    v = {"jpeg": "jpg", "tiff": "tif"}.get(v, v)
    if v not in FORMAT_SUFFIXES:
        raise ArgumentError(f"invalid --format '{value}': use png, jpg or tif")
    return v


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far (None before any progress)."""
    if done <= 0 or total <= 0 or not (math.isfinite(elapsed) and elapsed > 0):
        return None
    return max(0.0, elapsed * (total - done) / done)
