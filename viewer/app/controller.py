"""The application's logic: opening photos, the model and device, encoding, exports, and the workers.

The window is a thin shell around this: it forwards menu actions here and shows what the signals say.
Every worker event arrives through the bridge on the GUI thread and is dispatched by type; every failure
becomes an `error` (or `missing_weights`) signal, which the window shows as a dialog.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from viewer.app.bridge import WorkerBridge, run_in_thread
from viewer.app.display_colour import DisplayTarget, display_target
from viewer.app.display_profile import read_display_profile
from viewer.app.folder import list_photos, position, step_from
from viewer.app.messages import (
    CompareMethod,
    DisplayConverted,
    EncodeDone,
    EncodeProgress,
    EngineConfig,
    EngineFailed,
    EngineLoaded,
    ExportCancelled,
    ExportFailed,
    ExportFinished,
    ExportJob,
    ExportProgress,
    Notice,
    PhotoFailed,
    PhotoLoaded,
    RequestDone,
    RequestProgress,
    TileResult,
    WorkerError,
)
from viewer.app.photo import IMAGE_SUFFIXES, MAX_MEGAPIXELS, Photo, convert_for_display, load_photo
from viewer.app.planning import tile_size_for
from viewer.app.settings import AppSettings
from viewer.app.view_controller import DEFAULT_CACHE_BYTES, ViewController
from viewer.app.worker import BicubicWorker, EngineFactory, RenderWorker, StoreOptions
from viewer.heap import give_back

log = logging.getLogger(__name__)

PREFETCH_MEGAPIXELS = 40.0
"""The next photo of the folder is decoded ahead only up to this size (it costs memory while held)."""


@dataclass
class EncodeState:
    """Where the encoding of the open photo stands, for the status bar."""

    content: int = -1
    done: int = 0
    total: int = 0
    seconds: float | None = None
    running: bool = False


class AppController(QObject):
    """Owns the workers and the view controller; GUI thread only."""

    photo_changed = Signal()
    loading_changed = Signal(bool)
    error = Signal(str, str)
    """(title, message): show a dialog."""
    missing_weights = Signal(str)
    notice = Signal(str, bool)
    """(message, as a dialog too)."""
    folder_changed = Signal()
    """The open photo's place in its folder changed (`folder_position`)."""
    display_changed = Signal()
    """The open photo is shown in new colours (another display target): its transform and pyramid."""
    engine_changed = Signal()
    encode_changed = Signal()
    recent_changed = Signal()
    export_progress = Signal(int, int, int)
    export_finished = Signal(int, str, float)
    export_failed = Signal(int, str)
    export_cancelled = Signal(int)

    def __init__(
        self,
        settings: AppSettings,
        *,
        engine_factory: EngineFactory | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_megapixels: float = MAX_MEGAPIXELS,
        display_profile: Callable[[], bytes | None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self._read_display_profile = display_profile or _platform_display_profile
        """Reads the display's ICC profile (None: the platform does not say); tests pass their own."""
        self.display_target: DisplayTarget | None = None
        """What photos are converted to for the screen: the display's profile, or None for sRGB."""
        self._display_request = 0
        self.bridge = WorkerBridge(self)
        self.bridge.posted.connect(self._on_event)
        self.render_worker = RenderWorker(self.bridge.post, engine_factory)
        self.apply_store_settings()
        self.bicubic_worker = BicubicWorker(self.bridge.post)
        self.view = ViewController(
            self.render_worker, self.bicubic_worker, cache_bytes=cache_bytes, parent=self
        )
        self._ids = itertools.count(1)
        """One monotonic counter for content ids, load requests and export ids."""
        self._load_request = 0
        self._max_megapixels = max_megapixels
        self.config = EngineConfig(settings.model(), settings.device(), settings.precision())
        self.engine: EngineLoaded | None = None
        """The engine in use, as the worker last reported it (None until one has loaded)."""
        self.engine_error: str | None = None
        self.encode = EncodeState()
        self.loading: Path | None = None
        self._started = False
        self._closed = False
        self._handlers: list[Callable[[object], bool]] = []
        self._steps: dict[int, tuple[int, list[str]]] = {}
        """Load requests made by folder navigation: the step's direction and the names skipped so far."""
        self.folder_position: tuple[int, int] | None = None
        """(1-based index, count) of the open photo among the photos of its folder."""
        self._prefetch_request = 0
        self._prefetch_stamp: tuple[Path, int, int] | None = None
        self._prefetched: tuple[tuple[Path, int, int] | None, PhotoLoaded] | None = None
        """The next photo in the folder, decoded ahead, with the (path, size, mtime) it was read from."""

    def apply_store_settings(self) -> None:
        """Give the worker the feature-memory and disk-cache settings (used from the next photo on)."""
        mem = self.settings.feature_memory_mb()
        self.render_worker.set_store_options(
            StoreOptions(
                memory_bytes=mem << 20 if mem > 0 else None, disk_bytes=self.settings.disk_cache_mb() << 20
            )
        )

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers and load the model (in the background; torch is imported there)."""
        if self._started:
            return
        self._started = True
        self.apply_display_colour()  # before the first photo, which is converted for it
        self.render_worker.start()
        self.bicubic_worker.start()
        self.render_worker.configure(self.config, next(self._ids))

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the workers and exports; True when every thread has ended."""
        if self._closed:
            return True
        self._closed = True
        ok = self.render_worker.close(timeout) if self._started else True
        ok = (self.bicubic_worker.close(timeout) if self._started else True) and ok
        return ok

    @property
    def photo(self) -> Photo | None:
        return self.view.photo

    # -- photos ---------------------------------------------------------------------------------------------
    def open(self, path: Path | str, *, step: int = 0, skipped: tuple[str, ...] = ()) -> None:
        """Open a photo in the background; the current one stays until the new one has decoded.

        `step` marks an open made by folder navigation (its direction), `skipped` the names it passed over
        because they could not be opened: if this one cannot be opened either, navigation goes on."""
        p = Path(path).expanduser()
        req = next(self._ids)
        self._load_request = req
        self._steps.clear()  # only the newest open can still land
        if step:
            self._steps[req] = (step, list(skipped))
        self.loading = p
        self.loading_changed.emit(True)
        ready = self._take_prefetched(p)
        if ready is not None:
            # Decoded ahead: handled from the event loop, like a loader thread's result.
            QTimer.singleShot(0, lambda: self._on_event(replace(ready, request=req)))
            return
        limit = self._max_megapixels
        target = self.display_target
        run_in_thread("liif-load", lambda: load_photo(req, p, limit, target), self.bridge.post)

    def _on_photo_loaded(self, ev: PhotoLoaded) -> None:
        if ev.request == self._prefetch_request:
            self._keep_prefetched(ev)
            return
        if ev.request != self._load_request:
            return  # a newer open superseded it
        step, skipped = self._steps.pop(ev.request, (0, []))
        self._display_request = 0  # a conversion of the previous photo must not land on this one
        self.loading = None
        self.loading_changed.emit(False)
        content = next(self._ids)
        photo = Photo.from_event(ev, content)
        self.encode = EncodeState(content=content, running=self.engine is not None)
        self.render_worker.set_display(ev.display)
        self.bicubic_worker.set_display(ev.display)
        self.render_worker.open_image(ev.loaded, content)
        self.bicubic_worker.set_source(content, ev.rgb8)
        self.view.set_photo(photo)
        # The previous photo's pyramid and pixels are freed now: give their memory back, off this thread.
        threading.Thread(target=give_back, name="liif-give-back", daemon=True).start()
        self.settings.add_recent(ev.path)
        self.recent_changed.emit()
        self.photo_changed.emit()
        self.encode_changed.emit()
        photos = list_photos(ev.path.parent, IMAGE_SUFFIXES)
        here = position(ev.path, photos)
        self.folder_position = (here + 1, len(photos)) if here is not None else None
        self.folder_changed.emit()
        if ev.target != self.display_target:  # the target changed while it was loading
            self._convert_for_display()
        if ev.display_notice:
            self.notice.emit(f"{ev.path.name}: {ev.display_notice}", False)
        if skipped:
            self.notice.emit(_skipped_text(skipped), False)
        if here is not None:
            self._prefetch(photos, here + (-1 if step < 0 else 1))

    def _on_photo_failed(self, ev: PhotoFailed) -> None:
        if ev.request == self._prefetch_request:
            return  # the step itself will open it, and say why it cannot
        if ev.request != self._load_request:
            return
        self.loading = None
        self.loading_changed.emit(False)
        nav = self._steps.pop(ev.request, None)
        if nav is not None:  # folder navigation: skip the unreadable photo, go on in the same direction
            log.info("skipped %s", ev.message)
            step, skipped = nav
            self._step_from(ev.path, step, (*skipped, ev.path.name))
            return
        keep = " The previous photo stays open." if self.photo is not None else ""
        self.error.emit("Cannot open the photo", ev.message.rstrip(".") + "." + keep)

    # -- folder navigation ----------------------------------------------------------------------------------
    def step_photo(self, step: int) -> None:
        """PageDown (+1) / PageUp (-1): open the photo `step` places on in the open photo's folder, in
        natural order. From a photo still loading, the step counts from it, so quick presses add up."""
        base = self.loading if self.loading is not None else self.photo.path if self.photo else None
        if base is not None:
            self._step_from(base, step, ())

    def _step_from(self, base: Path, step: int, skipped: tuple[str, ...]) -> None:
        photos = list_photos(base.parent, IMAGE_SUFFIXES)
        nxt = step_from(base, photos, step)
        if nxt.target is not None:
            self.open(nxt.target, step=step, skipped=skipped)
            return
        where = f" ({nxt.index + 1} / {nxt.total})" if nxt.total else ""
        end = f"This is the {'last' if step > 0 else 'first'} photo in the folder{where}."
        self.notice.emit((_skipped_text(skipped) + " " if skipped else "") + end, False)

    def _prefetch(self, photos: list[Path], index: int) -> None:
        """Decode the photo at `index` in the background, so the next step shows it at once."""
        self._prefetched = None
        self._prefetch_request = 0
        if not 0 <= index < len(photos):
            return
        target = photos[index]
        stamp = _stamp(target)
        if stamp is None:
            return
        req = next(self._ids)
        self._prefetch_request = req
        self._prefetch_stamp = stamp
        limit = min(self._max_megapixels, PREFETCH_MEGAPIXELS)
        colours = self.display_target
        run_in_thread("liif-prefetch", lambda: load_photo(req, target, limit, colours), self.bridge.post)

    def _keep_prefetched(self, ev: PhotoLoaded) -> None:
        self._prefetched = (self._prefetch_stamp, ev)
        self._prefetch_request = 0

    def _take_prefetched(self, path: Path) -> PhotoLoaded | None:
        """The photo decoded ahead if it is `path` and the file has not changed since; used once."""
        held, self._prefetched = self._prefetched, None
        if held is None or held[1].path != path or _stamp(path) != held[0]:
            return None
        if held[1].target != self.display_target:
            return None  # converted for another display target
        return held[1]

    # -- display colour ---------------------------------------------------------------------------------
    def set_display_colour(self, mode: str) -> None:
        """View ▸ Display Colour: 'auto' (the display's profile where the system says it, else sRGB) or
        'srgb'; remembered, and the open photo is converted again (the model and the photo stay)."""
        self.settings.set_display_colour(mode)
        self.apply_display_colour()

    def apply_display_colour(self) -> None:
        """Read the display's profile (for 'auto') and make it the target; a damaged one gives one notice
        and sRGB. When the target changes, what is shown is converted again."""
        target, notice = None, None
        if self.settings.display_colour() == "auto":
            target, notice = display_target(self._read_display_profile())
        if notice:
            self.notice.emit(notice, False)
        if target == self.display_target:
            return
        self.display_target = target
        self._convert_for_display()

    def _convert_for_display(self) -> None:
        """Convert the open photo for the current target in the background (its pyramid is most of the
        work); the view switches over in one step when it is done (`_on_display_converted`)."""
        photo = self.photo
        if photo is None:
            return
        req = next(self._ids)
        self._display_request = req
        icc, rgb8, target = getattr(photo.loaded, "icc", None), photo.rgb8, self.display_target
        run_in_thread("liif-display", lambda: convert_for_display(req, icc, rgb8, target), self.bridge.post)

    def _on_display_converted(self, ev: DisplayConverted) -> None:
        """GUI thread: show the open photo in the new colours: the workers convert new tiles with the
        new transform before the view drops the old tiles and asks again, so no stale tile is painted."""
        if ev.request != self._display_request or self.photo is None or ev.target != self.display_target:
            return
        self._display_request = 0
        self.render_worker.set_display(ev.display)
        self.bicubic_worker.set_display(ev.display)
        self.view.set_display(ev.display, ev.levels)
        self.display_changed.emit()

    # -- model and device ---------------------------------------------------------------------------------
    def set_model(self, name: str) -> None:
        """Switch the model; the photo is encoded again with it."""
        self._reconfigure(replace(self.config, model=name))

    def set_device(self, device: str) -> None:
        """Switch the compute device (auto, cpu, cuda, cuda:N, mps)."""
        self._reconfigure(replace(self.config, device=device))

    def _reconfigure(self, config: EngineConfig) -> None:
        if config == self.config and self.engine is not None and not self.engine.fallback:
            return
        self.config = config
        content = next(self._ids)
        self.render_worker.configure(config, content)
        if self.photo is not None:
            self.bicubic_worker.retag(content)
            self.encode = EncodeState(content=content, running=True)
            self.view.set_content(content)
            self.encode_changed.emit()

    def _on_engine_loaded(self, ev: EngineLoaded) -> None:
        self.engine = ev
        self.engine_error = None
        self.view.set_tile_size(tile_size_for(ev.device_type))
        if not ev.fallback:
            self.config = ev.config
            self.settings.set_model(ev.config.model)
            self.settings.set_device(ev.config.device)
        if self.photo is not None and not self.encode.running and self.encode.seconds is None:
            self.encode = replace(self.encode, running=True)
        self.engine_changed.emit()
        self.encode_changed.emit()

    def _on_engine_failed(self, ev: EngineFailed) -> None:
        # Keep the engine that works (if any); the menus go back to it.
        if self.engine is not None:
            self.config = self.engine.config
        else:
            self.engine_error = ev.message
            self.encode = replace(self.encode, running=False)
        self.engine_changed.emit()
        self.encode_changed.emit()
        if ev.missing_weights:
            self.missing_weights.emit(ev.message)
        else:
            self.error.emit("Cannot load the model", ev.message)

    def set_compare_method(self, method: CompareMethod) -> None:
        """Compare mode's right side: bicubic or the source pixels (the worker first, then the view)."""
        self.bicubic_worker.set_method(method)
        self.view.set_compare_method(method)

    # -- export ----------------------------------------------------------------------------------------------
    def start_export(self, plan: object, out_path: Path, jpeg_quality: int = 92) -> int:
        """Export the open photo with an engine ExportPlan, in the background; returns the export id."""
        if self.photo is None:
            raise RuntimeError("no photo is open")
        export_id = next(self._ids)
        self.render_worker.export(
            ExportJob(export_id, self.photo.content, plan, Path(out_path), jpeg_quality)
        )
        return export_id

    def cancel_export(self, export_id: int) -> None:
        self.render_worker.cancel_export(export_id)

    # -- events from the workers (GUI thread) ------------------------------------------------------------
    def add_event_handler(self, handler: Callable[[object], bool]) -> None:
        """Offer every worker event to `handler` first (GUI thread); it returns True for those it took
        (e.g. the results of a worker extension)."""
        self._handlers.append(handler)

    def _on_event(self, ev: object) -> None:
        """GUI thread: dispatch one worker event."""
        if self._closed:
            return
        for handler in self._handlers:
            if handler(ev):
                return
        if isinstance(ev, TileResult):
            self.view.on_tile(ev)
        elif isinstance(ev, RequestProgress):
            self.view.on_progress(ev)
        elif isinstance(ev, RequestDone):
            self.view.on_request_done(ev)
        elif isinstance(ev, EncodeProgress):
            if self.photo is not None and ev.content == self.photo.content:
                self.encode = replace(self.encode, done=ev.done, total=ev.total, running=True)
                self.encode_changed.emit()
        elif isinstance(ev, EncodeDone):
            if self.photo is not None and ev.content == self.photo.content:
                self.encode = replace(self.encode, running=False, seconds=ev.seconds, done=1, total=1)
                self.encode_changed.emit()
                self.view.on_encoded()
        elif isinstance(ev, PhotoLoaded):
            self._on_photo_loaded(ev)
        elif isinstance(ev, PhotoFailed):
            self._on_photo_failed(ev)
        elif isinstance(ev, DisplayConverted):
            self._on_display_converted(ev)
        elif isinstance(ev, EngineLoaded):
            self._on_engine_loaded(ev)
        elif isinstance(ev, EngineFailed):
            self._on_engine_failed(ev)
        elif isinstance(ev, ExportProgress):
            self.export_progress.emit(ev.export_id, ev.done, ev.total)
        elif isinstance(ev, ExportFinished):
            self.export_finished.emit(ev.export_id, str(ev.path), ev.seconds)
        elif isinstance(ev, ExportFailed):
            self.export_failed.emit(ev.export_id, ev.message)
        elif isinstance(ev, ExportCancelled):
            self.export_cancelled.emit(ev.export_id)
        elif isinstance(ev, Notice):
            self.notice.emit(ev.message, ev.dialog)
        elif isinstance(ev, WorkerError):
            if self.encode.running:
                self.encode = replace(self.encode, running=False)
                self.encode_changed.emit()
            self.error.emit(ev.title, ev.message)
        else:  # pragma: no cover - a new event type without a handler is a bug
            log.error("unhandled worker event %r", ev)


def _platform_display_profile() -> bytes | None:
    """The display's profile where the platform (as Qt names it) says what it is."""
    return read_display_profile(QGuiApplication.platformName())


def _stamp(path: Path) -> tuple[Path, int, int] | None:
    """(path, size, modification time): a photo decoded ahead is used only if this is unchanged."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (path, st.st_size, st.st_mtime_ns)


def _skipped_text(names: list[str] | tuple[str, ...]) -> str:
    """'Skipped a.png and b.png: they cannot be opened.' (at most three names, then a count)."""
    shown = [*names[:3], f"{len(names) - 3} more"] if len(names) > 4 else list(names)
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    return f"Skipped {listed}: {'it cannot' if len(names) == 1 else 'they cannot'} be opened."
