"""Background workers: the render worker that owns the engine, and a bicubic worker for compare mode.

No Qt here: a worker reports by calling `emit(event)` from its own thread with a value from
`viewer.app.messages`; the Qt bridge turns that into a queued signal. Torch is imported only inside the
render worker's thread (through the engine factory), so the window can appear before torch has loaded.

Scheduling is "latest wins": a new tile request replaces the queue of the previous one (level 1 of
cancellation) and sets the cancellation token of the tile in progress, which the engine checks between
chunks (level 2) - unless the new request wants that very tile too, in which case it is adopted and
delivered under the new generation instead of being thrown away.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from viewer.app.messages import (
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
    RequestDone,
    RequestProgress,
    TileKind,
    TileRequest,
    TileResult,
    WorkerError,
)
from viewer.app.planning import TileKey, TileSpec
from viewer.engine.cancel import CancelToken
from viewer.errors import Cancelled, ViewerError, WeightsMissingError

if TYPE_CHECKING:
    from viewer.engine.diskcache import TileDiskCache
    from viewer.engine.imageio import LoadedImage
    from viewer.engine.render import Engine, Latents

log = logging.getLogger(__name__)

Emit = Callable[[object], None]
"""Called from a worker thread with one event value."""

EngineFactory = Callable[[EngineConfig], "Engine"]
"""Builds an engine for a config; runs in the render worker thread (may import torch)."""

_PROGRESS_INTERVAL_S = 0.05
_MIN_ENCODE_BUDGET = 64 << 20


@dataclass(frozen=True)
class StoreOptions:
    """How the render worker keeps encoded tiles: the memory budget (None: sized from the machine's
    memory), and the disk cache's size cap (0: no disk cache) and folder (None: the user cache folder)."""

    memory_bytes: int | None = None
    disk_bytes: int = 4 << 30
    disk_dir: str | None = None


@dataclass(frozen=True)
class WorkerContext:
    """What an extension's job gets in the render worker's thread: the engine, the encoded photo, the
    photo's content id and pixels, and `emit` to send plain events to the GUI."""

    engine: Engine
    feature_map: Latents
    content: int
    loaded: LoadedImage
    emit: Emit


class WorkerExtension(Protocol):
    """Extra work for the render worker (e.g. inspection), scheduled between exports and tiles.

    Both methods are called in the worker thread with the worker's lock held: keep them quick.
    """

    def has_work(self, fm_content: int, tiles_pending: bool) -> bool: ...

    def take(self, fm_content: int, tiles_pending: bool) -> Callable[[WorkerContext], None] | None: ...


def default_engine_factory(config: EngineConfig) -> Engine:
    """Load a catalog model (or weights file) with the engine; runs in the worker thread."""
    from viewer.engine.render import Engine

    return Engine.from_name(config.model, config.device, config.precision)


def to_bgra(rgb: np.ndarray) -> np.ndarray:
    """float [0, 1] (rows, cols, 3) -> uint8 (rows, cols, 4) laid out as QImage.Format_RGB32 expects."""
    rows, cols = rgb.shape[:2]
    out = np.empty((rows, cols, 4), dtype=np.uint8)
    q = np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)
    out[..., 0] = q[..., 2]
    out[..., 1] = q[..., 1]
    out[..., 2] = q[..., 0]
    out[..., 3] = 255
    return out


WORKER_NICENESS = 5
"""How much lower than the GUI thread the workers run (Linux), so a paint never waits for a render."""


def lower_thread_priority(by: int = WORKER_NICENESS) -> None:
    """Calling thread: run at a lower CPU priority than the GUI thread (Linux: per-thread nice value).

    Threads this thread starts later (torch's OpenMP team, export threads) inherit it. Renders still use
    every core when nothing else wants them; when the GUI thread paints, it wins. Elsewhere: no-op.
    """
    if not sys.platform.startswith("linux") or by <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
    except (OSError, AttributeError):  # not permitted, or not supported: priority is an optimisation
        pass


def _is_oom(exc: BaseException) -> bool:
    """Out of device memory, on CUDA (torch.OutOfMemoryError) or MPS (a RuntimeError saying so)."""
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class _Throttle:
    """Lets a progress report through at most every `interval` seconds, and always the last one."""

    def __init__(self, interval: float = _PROGRESS_INTERVAL_S) -> None:
        self._interval = interval
        self._last = 0.0

    def ready(self, done: int, total: int) -> bool:
        now = time.perf_counter()
        if done >= total or now - self._last >= self._interval:
            self._last = now
            return True
        return False


@dataclass
class _Running:
    spec: TileSpec
    generation: int
    content: int
    token: CancelToken


@dataclass
class _TileQueue:
    """The current request, its pending tiles, and the tile in progress. The owner holds the lock."""

    request: TileRequest | None = None
    pending: deque[TileSpec] = field(default_factory=deque)
    running: _Running | None = None
    outstanding: set[tuple[TileKey, tuple[int, int, int, int]]] = field(default_factory=set)
    """(key, window) of the visible tiles of the current request not delivered yet; when it empties, the
    request is done."""
    delivered: int = 0

    def replace(self, req: TileRequest) -> None:
        """Make `req` current: drop the old queue; cancel or adopt the running tile."""
        self.request = req
        tiles = list(req.tiles)
        run = self.running
        if run is not None:
            same = [t for t in tiles if (t.key, t.window) == (run.spec.key, run.spec.window)]
            if run.content == req.content and same:
                tiles.remove(same[0])
            else:
                run.token.cancel()
        self.pending = deque(tiles)
        self.outstanding = {(t.key, t.window) for t in req.tiles if t.visible}
        self.delivered = 0

    def clear(self) -> None:
        self.request = None
        self.pending.clear()
        self.outstanding.clear()
        if self.running is not None:
            self.running.token.cancel()

    def take(self) -> _Running | None:
        """Pop the next tile and mark it running."""
        if self.request is None or not self.pending:
            return None
        spec = self.pending.popleft()
        self.running = _Running(spec, self.request.generation, self.request.content, CancelToken())
        return self.running

    def finish(
        self, run: _Running, ok: bool
    ) -> tuple[int | None, RequestDone | None, RequestProgress | None]:
        """Close the running tile. Returns the generation to deliver it under (None: drop it), the
        request-done event if this was the last visible tile, and a progress event."""
        self.running = None
        req = self.request
        if not ok or req is None or req.content != run.content:
            return None, None, None
        if req.generation != run.generation and run.spec.key not in req.key_set:
            return None, None, None
        self.delivered += 1
        done_event = None
        if (run.spec.key, run.spec.window) in self.outstanding:
            self.outstanding.discard((run.spec.key, run.spec.window))
            if not self.outstanding:
                done_event = RequestDone(
                    req.generation, req.kind, time.perf_counter() - req.submitted, len(req.tiles)
                )
        progress = RequestProgress(req.generation, req.kind, self.delivered, len(req.tiles))
        return req.generation, done_event, progress


class _TileThread:
    """A thread that renders the newest tile request, tile by tile, centre first."""

    kind: TileKind = "liif"

    def __init__(self, emit: Emit, name: str) -> None:
        self._emit = emit
        self._cond = threading.Condition()
        self._stop = False
        self._tiles = _TileQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    # -- any thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, request: TileRequest) -> None:
        """Make `request` the one to work on (called from the GUI thread)."""
        with self._cond:
            self._tiles.replace(request)
            self._cond.notify_all()

    def cancel_tiles(self) -> None:
        """Drop the queued tiles and stop the one in progress (called from the GUI thread)."""
        with self._cond:
            self._tiles.clear()
            self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread and wait for it; True if it ended (called from the GUI thread)."""
        with self._cond:
            self._stop = True
            self._tiles.clear()
            self._on_close_locked()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- worker thread ---------------------------------------------------------------------------------
    def _main(self) -> None:
        """Runs in the worker thread: wait for work, do it, report every failure as an event."""
        lower_thread_priority()
        while True:
            try:
                with self._cond:
                    while not self._stop and not self._has_work_locked():
                        self._cond.wait()
                    if self._stop:
                        return
                    action = self._take_work_locked()
                action()
            except Exception as exc:  # a bug: report it, keep the thread alive for the next request
                log.exception("worker failure")
                self._emit(
                    WorkerError(
                        "Internal error",
                        f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=6)}",
                        internal=True,
                    )
                )

    def _has_work_locked(self) -> bool:
        return self._tiles_ready_locked() and bool(self._tiles.pending)

    def _take_work_locked(self) -> Callable[[], None]:
        run = self._tiles.take()
        assert run is not None
        return lambda: self._do_tile(run)

    def _tiles_ready_locked(self) -> bool:
        return True

    def _on_close_locked(self) -> None:
        pass

    def _render(self, run: _Running) -> np.ndarray:
        raise NotImplementedError

    def _do_tile(self, run: _Running) -> None:
        """Render one tile (worker thread) and deliver it if it is still wanted."""
        t0 = time.perf_counter()
        pixels: np.ndarray | None = None
        try:
            pixels = self._render(run)
        except Cancelled:
            pass
        except Exception as exc:
            # Do not retry the rest of this request tile after tile: one message, then wait for the next.
            with self._cond:
                self._tiles.finish(run, False)
                self._tiles.clear()
            if isinstance(exc, ViewerError):
                self._emit(WorkerError("Cannot render the view", str(exc)))
                return
            raise
        with self._cond:
            generation, done, progress = self._tiles.finish(run, pixels is not None)
        if generation is None or pixels is None:
            return
        self._emit(
            TileResult(
                generation, run.content, self.kind, run.spec.key, pixels, time.perf_counter() - t0, run.spec
            )
        )
        if progress is not None:
            self._emit(progress)
        if done is not None:
            self._emit(done)


class BicubicWorker(_TileThread):
    """Bicubic tiles of the same grid as LIIF's, for the compare view (Pillow; no torch, fast)."""

    kind: TileKind = "bicubic"
    _PAD = 2

    def __init__(self, emit: Emit) -> None:
        super().__init__(emit, "liif-bicubic")
        self._source: Any = None
        self._rgb8: np.ndarray | None = None
        self._content = -1

    def set_source(self, content: int, rgb8: np.ndarray) -> None:
        """Use `rgb8` (uint8 H x W x 3) for photo `content` (called from the GUI thread; cheap: the padded
        copy is made in the worker thread when compare mode first asks for a tile)."""
        with self._cond:
            self._rgb8 = rgb8
            self._source = None
            self._content = content
            self._cond.notify_all()

    def _padded(self) -> Any:
        """Worker thread: the photo with an edge-replicated border, as a PIL image (built once per photo)."""
        from PIL import Image

        with self._cond:
            source, rgb8, content = self._source, self._rgb8, self._content
        if source is None and rgb8 is not None:
            p = self._PAD
            padded = np.pad(rgb8, ((p, p), (p, p), (0, 0)), mode="edge")
            source = Image.fromarray(padded, "RGB")
            del padded
            with self._cond:
                if self._content == content:
                    self._source = source
        return source

    def retag(self, content: int) -> None:
        """The same photo under a new content id (the model changed; bicubic pixels did not)."""
        with self._cond:
            self._content = content
            self._cond.notify_all()

    def _tiles_ready_locked(self) -> bool:
        req = self._tiles.request
        return self._rgb8 is not None and req is not None and req.content == self._content

    def _render(self, run: _Running) -> np.ndarray:
        """Worker thread: PIL's bicubic resize of the tile's source box (same pixel-centre convention)."""
        from PIL import Image

        source = self._padded()
        if source is None or run.token.cancelled:
            raise Cancelled()
        spec = run.spec
        x, y, w, h = spec.rect
        r0, c0, r1, c1 = spec.window
        sx, sy = w / spec.out_w, h / spec.out_h
        p = self._PAD
        box = (x + c0 * sx + p, y + r0 * sy + p, x + c1 * sx + p, y + r1 * sy + p)
        box = (
            max(0.0, box[0]),
            max(0.0, box[1]),
            min(float(source.width), box[2]),
            min(float(source.height), box[3]),
        )
        out = source.resize((c1 - c0, r1 - r0), Image.Resampling.BICUBIC, box=box)
        rgb = np.asarray(out, dtype=np.uint8)
        bgra = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
        bgra[..., 0] = rgb[..., 2]
        bgra[..., 1] = rgb[..., 1]
        bgra[..., 2] = rgb[..., 0]
        bgra[..., 3] = 255
        return bgra


class RenderWorker(_TileThread):
    """The one thread that owns the engine and the encoded photo (its feature map).

    Control work (load a model, encode a photo, start an export) goes before tiles. Encoding is cancelled
    when a newer photo or model arrives. Exports run in their own thread, sharing the engine (which is
    safe to share) so the viewport keeps refining.
    """

    kind: TileKind = "liif"

    def __init__(self, emit: Emit, engine_factory: EngineFactory | None = None) -> None:
        super().__init__(emit, "liif-render")
        self._factory: EngineFactory = engine_factory or default_engine_factory
        # Pending control, guarded by the condition's lock.
        self._pending_config: tuple[EngineConfig, int] | None = None
        self._pending_image: tuple[LoadedImage, int] | None = None
        self._pending_exports: deque[ExportJob] = deque()
        self._encode_token: CancelToken | None = None
        self._export_tokens: dict[int, CancelToken] = {}
        self._export_threads: list[threading.Thread] = []
        self._extensions: list[WorkerExtension] = []
        self._fm_content = -1
        """Content id the feature map answers (read under the lock to decide if tiles can run)."""
        # Worker-thread state.
        self._engine: Engine | None = None
        self._config: EngineConfig | None = None
        self._loaded: LoadedImage | None = None
        self._fm: Latents | None = None
        self._content = -1
        self._store_options = StoreOptions()
        self._disk: TileDiskCache | None = None
        self._disk_for: StoreOptions | None = None
        self._photo_key: tuple[LoadedImage, str] | None = None
        self._view_prefetched = -1
        """Generation of the request whose whole visible area was last encoded in one pass."""

    # -- GUI thread API --------------------------------------------------------------------------------
    def configure(self, config: EngineConfig, content: int) -> None:
        """Load `config` (then re-encode the photo as `content`); cancels an encode in progress."""
        with self._cond:
            self._pending_config = (config, content)
            self._cancel_encode_locked()
            self._cond.notify_all()

    def open_image(self, loaded: LoadedImage, content: int) -> None:
        """Encode `loaded` as photo `content`; cancels an encode in progress and drops queued tiles."""
        with self._cond:
            self._pending_image = (loaded, content)
            self._cancel_encode_locked()
            self._tiles.clear()
            self._cond.notify_all()

    def set_store_options(self, options: StoreOptions) -> None:
        """Use `options` for the next photo opened (any thread)."""
        with self._cond:
            self._store_options = options

    def export(self, job: ExportJob) -> None:
        """Queue an export; it starts once the photo `job.content` is ready (its store is open)."""
        with self._cond:
            self._export_tokens[job.export_id] = CancelToken()
            self._pending_exports.append(job)
            self._cond.notify_all()

    def cancel_export(self, export_id: int) -> None:
        """Stop an export, queued or running; it reports ExportCancelled and leaves no file."""
        with self._cond:
            token = self._export_tokens.get(export_id)
            if token is not None:
                token.cancel()
            self._cond.notify_all()

    def add_extension(self, ext: WorkerExtension) -> None:
        """Let `ext` schedule jobs in this thread (they run with the engine and the encoded photo)."""
        with self._cond:
            self._extensions.append(ext)
            self._cond.notify_all()

    def wake(self) -> None:
        """An extension has new work: make the worker look (any thread)."""
        with self._cond:
            self._cond.notify_all()

    def wait_exports(self, timeout: float = 10.0) -> bool:
        """Join finished or cancelled export threads (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        for t in list(self._export_threads):
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._export_threads)

    def close(self, timeout: float = 10.0) -> bool:
        ok = super().close(timeout)
        return self.wait_exports(timeout) and ok

    # -- locked helpers ------------------------------------------------------------------------------
    def _cancel_encode_locked(self) -> None:
        if self._encode_token is not None:
            self._encode_token.cancel()

    def _on_close_locked(self) -> None:
        self._cancel_encode_locked()
        for token in self._export_tokens.values():
            token.cancel()

    def _export_startable_locked(self) -> bool:
        if not self._pending_exports:
            return False
        job = self._pending_exports[0]
        token = self._export_tokens.get(job.export_id)
        return (
            (token is not None and token.cancelled)
            or job.content < self._fm_content
            or (job.content == self._fm_content and self._fm is not None)
        )

    def _tiles_ready_locked(self) -> bool:
        req = self._tiles.request
        return req is not None and self._fm is not None and req.content == self._fm_content

    def _has_work_locked(self) -> bool:
        if self._pending_config is not None or self._pending_image is not None:
            return True
        if self._export_startable_locked():
            return True
        if self._extension_ready_locked() is not None:
            return True
        return super()._has_work_locked()

    def _extension_ready_locked(self) -> WorkerExtension | None:
        if self._fm is None or self._engine is None or self._loaded is None:
            return None
        pending = bool(self._tiles.pending) and self._tiles_ready_locked()
        for ext in self._extensions:
            if ext.has_work(self._fm_content, pending):
                return ext
        return None

    def _take_work_locked(self) -> Callable[[], None]:
        if self._pending_config is not None or self._pending_image is not None:
            cfg, img = self._pending_config, self._pending_image
            self._pending_config = self._pending_image = None
            token = CancelToken()
            self._encode_token = token
            return lambda: self._do_control(cfg, img, token)
        if self._export_startable_locked():
            job = self._pending_exports.popleft()
            return lambda: self._start_export(job)
        ext = self._extension_ready_locked()
        if ext is not None:
            pending = bool(self._tiles.pending) and self._tiles_ready_locked()
            run = ext.take(self._fm_content, pending)
            if run is not None:
                assert self._engine is not None and self._fm is not None and self._loaded is not None
                ctx = WorkerContext(self._engine, self._fm, self._fm_content, self._loaded, self._emit)
                return lambda: run(ctx)
        if not super()._has_work_locked():
            return lambda: None
        return super()._take_work_locked()

    # -- worker thread: engine and encoding ----------------------------------------------------------
    def _do_control(
        self, cfg: tuple[EngineConfig, int] | None, img: tuple[LoadedImage, int] | None, token: CancelToken
    ) -> None:
        """Worker thread: apply a new model and/or photo, then encode the photo."""
        if img is not None:
            self._loaded, content = img
            self._content = max(self._content, content)
            self._set_fm(None, -1)
        if cfg is not None:
            config, content = cfg
            self._content = max(self._content, content)
            if self._load_engine(config):
                self._set_fm(None, -1)
        if self._engine is None or self._loaded is None:
            return
        if self._fm is not None:
            # The model did not change (its load failed): the encoded photo stays valid under the new id.
            self._set_fm(self._fm, self._content)
            self._emit(EncodeDone(self._content, 0.0))
            return
        self._encode(token)

    def _set_fm(self, fm: Latents | None, content: int) -> None:
        with self._cond:
            self._fm = fm
            self._fm_content = content
            self._cond.notify_all()

    def _load_engine(self, config: EngineConfig) -> bool:
        """Worker thread: build the engine for `config`; on failure keep the old one and say why."""
        t0 = time.perf_counter()
        try:
            engine = self._factory(config)
        except WeightsMissingError as exc:
            self._emit(EngineFailed(config, str(exc), missing_weights=True))
            return False
        except ViewerError as exc:
            self._emit(EngineFailed(config, str(exc), missing_weights=False))
            return False
        except Exception as exc:  # e.g. a CUDA initialisation error: still a message, not a crash
            log.exception("engine load failed")
            self._emit(EngineFailed(config, f"{type(exc).__name__}: {exc}", missing_weights=False))
            return False
        self._engine, self._config = engine, config
        self._emit(self._loaded_event(engine, config, time.perf_counter() - t0))
        return True

    @staticmethod
    def _loaded_event(
        engine: Engine, config: EngineConfig, seconds: float, fallback: bool = False
    ) -> EngineLoaded:
        from viewer.engine.device import available_devices

        dev = engine.device
        return EngineLoaded(
            config,
            engine.model_name,
            str(dev),
            dev.type,
            engine.precision,
            seconds,
            fallback=fallback,
            available_devices=tuple(available_devices()),
        )

    def _disk_cache(self) -> TileDiskCache | None:
        """Worker thread: the disk cache for the current options (made once; None when switched off)."""
        with self._cond:
            opts = self._store_options
        if opts.disk_bytes <= 0:
            return None
        if self._disk is None or self._disk_for != opts:
            from viewer import paths
            from viewer.engine.diskcache import TileDiskCache

            root = opts.disk_dir or str(paths.feature_cache_dir())

            def problem(message: str) -> None:
                self._emit(Notice(f"Feature cache: {message}."))

            self._disk, self._disk_for = TileDiskCache(root, opts.disk_bytes, on_problem=problem), opts
        return self._disk

    def _content_key(self, loaded: LoadedImage) -> str:
        """Worker thread: the digest of the photo's pixels (computed once per decoded photo)."""
        from viewer.engine.features import photo_key

        if self._photo_key is None or self._photo_key[0] is not loaded:
            self._photo_key = (loaded, photo_key(loaded.pixels))
        return self._photo_key[1]

    def _open_store(self, engine: Engine, loaded: LoadedImage) -> Latents:
        """Worker thread: a lazy feature store of `loaded` for `engine` (nothing is encoded yet)."""
        with self._cond:
            opts = self._store_options
        disk = self._disk_cache()
        key = self._content_key(loaded) if disk is not None and disk.enabled else None
        return engine.open_store(loaded.pixels, budget_bytes=opts.memory_bytes, disk=disk, content_key=key)

    def _encode(self, token: CancelToken) -> None:
        """Worker thread: make the current photo ready to render by opening its lazy feature store.

        Nothing is encoded here: each render encodes the tiles of latents its window needs, so the view's
        tiles are encoded first, centre out, and the rest of the photo only if it is ever looked at.
        """
        assert self._engine is not None and self._loaded is not None
        content = self._content
        t0 = time.perf_counter()
        self._emit(EncodeProgress(content, 0, 1))
        if token.cancelled:
            return
        store = self._open_store(self._engine, self._loaded)
        self._set_fm(store, content)
        self._emit(EncodeDone(content, time.perf_counter() - t0))

    def _release_device_memory(self) -> None:
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover - best effort
            pass

    def _fall_back_to_cpu(self, doing: str) -> bool:
        """Worker thread: replace the engine with the same model on the CPU and move the encoded photo."""
        assert self._engine is not None and self._config is not None
        old = self._engine
        cfg = replace(self._config, device="cpu", precision="auto")
        try:
            engine = self._factory(cfg)
        except Exception as exc:
            self._emit(
                WorkerError(
                    "Out of GPU memory", f"The GPU ran out of memory and the CPU fallback failed: {exc}"
                )
            )
            return False
        self._engine = engine
        if self._fm is not None and self._loaded is not None:
            # The tiles on the GPU go with it; the disk cache (same model, same photo) brings them back.
            self._set_fm(self._open_store(engine, self._loaded), self._fm_content)
        del old
        self._release_device_memory()
        self._emit(self._loaded_event(engine, self._config, 0.0, fallback=True))
        self._emit(
            Notice(
                f"The GPU ran out of memory while {doing}, even in small chunks. "
                "Rendering continues on the CPU, which is slower. Choose the device again in the Device "
                "menu to retry the GPU.",
                dialog=True,
            )
        )
        return True

    # -- worker thread: tiles -----------------------------------------------------------------------
    def _prefetch_view(self, run: _Running, engine: Engine, fm: Latents) -> None:
        """Worker thread: once the first tile of a request is on screen, encode the latents of all its
        visible tiles in one pass (fewer halos than tile by tile), nearest the centre first."""
        from viewer.engine.features import clip_box
        from viewer.engine.render import SourceRect, window_latents

        with self._cond:
            req = self._tiles.request
            if (
                req is None
                or req.generation != run.generation
                or self._view_prefetched == req.generation
                or self._tiles.delivered == 0
                or not run.spec.visible
            ):
                return
            self._view_prefetched = req.generation
            specs = [t for t in req.tiles if t.visible]
        boxes = [window_latents(SourceRect(*t.rect), t.out_w, t.out_h, t.window) for t in specs]
        union = (
            min(b[0] for b in boxes),
            max(b[1] for b in boxes),
            min(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        box = clip_box(union, fm.height, fm.width)
        if box is not None:
            fm.prefetch(box, run.token)

    def _render(self, run: _Running) -> np.ndarray:
        """Worker thread: one LIIF tile (encoding the latents it needs first); on out of memory, retried
        with smaller encode pieces, then on the CPU."""
        from viewer.engine.render import SourceRect

        spec = run.spec
        while True:
            engine, fm = self._engine, self._fm
            if engine is None or fm is None:
                raise Cancelled()
            chunk_before = engine.chunk
            try:
                self._prefetch_view(run, engine, fm)
                rgb = engine.render(
                    fm, SourceRect(*spec.rect), spec.out_w, spec.out_h, window=spec.window, cancel=run.token
                )
            except Cancelled:
                raise
            except Exception as exc:
                if not _is_oom(exc) or engine.device.type == "cpu":
                    if _is_oom(exc):
                        raise ViewerError(
                            f"not enough memory to encode this part of the photo ({exc})"
                        ) from None
                    raise
                self._release_device_memory()
                if engine.encode_budget_bytes // 2 >= _MIN_ENCODE_BUDGET:
                    engine.encode_budget_bytes //= 2
                    self._emit(
                        Notice(
                            f"The GPU ran out of memory while encoding; retrying in smaller pieces "
                            f"({engine.encode_budget_bytes >> 20} MiB)."
                        )
                    )
                    continue
                if not self._fall_back_to_cpu("rendering the view"):
                    raise Cancelled() from None
                continue
            if engine.chunk < chunk_before:
                self._emit(
                    Notice(
                        f"GPU memory is short: rendering in smaller chunks ({engine.chunk} points at a time)."
                    )
                )
            return to_bgra(rgb)

    # -- worker thread: export ----------------------------------------------------------------------
    def _start_export(self, job: ExportJob) -> None:
        """Worker thread: hand the export its engine and feature map and run it in its own thread."""
        with self._cond:
            token = self._export_tokens.get(job.export_id) or CancelToken()
        if token.cancelled:
            self._finish_export(job.export_id)
            self._emit(ExportCancelled(job.export_id))
            return
        if (
            job.content != self._fm_content
            or self._engine is None
            or self._fm is None
            or self._loaded is None
        ):
            self._finish_export(job.export_id)
            self._emit(ExportFailed(job.export_id, "the photo changed before the export could start"))
            return
        thread = threading.Thread(
            target=self._run_export,
            args=(job, self._engine, self._fm, self._loaded, token),
            name=f"liif-export-{job.export_id}",
            daemon=True,
        )
        self._export_threads = [t for t in self._export_threads if t.is_alive()] + [thread]
        thread.start()

    def _finish_export(self, export_id: int) -> None:
        with self._cond:
            self._export_tokens.pop(export_id, None)

    def _run_export(
        self, job: ExportJob, engine: Engine, fm: Latents, loaded: LoadedImage, token: CancelToken
    ) -> None:
        """Export thread: the engine's export (the command line's code path), atomic."""
        from viewer.engine.export import run_export

        throttle = _Throttle(0.1)

        def progress(done: int, total: int) -> None:
            if throttle.ready(done, total):
                self._emit(ExportProgress(job.export_id, done, total))

        t0 = time.perf_counter()
        try:
            run_export(
                engine, fm, loaded, job.plan, job.out_path, jpeg_quality=job.jpeg_quality, cancel=token,
                progress=progress,
            )  # fmt: skip
        except Cancelled:
            self._emit(ExportCancelled(job.export_id))
        except ViewerError as exc:
            self._emit(ExportFailed(job.export_id, str(exc)))
        except Exception as exc:
            log.exception("export failed")
            if _is_oom(exc):
                msg = f"the device ran out of memory during the export ({exc}); try the CPU device"
            else:
                msg = f"{type(exc).__name__}: {exc}"
            self._emit(ExportFailed(job.export_id, msg))
        else:
            self._emit(ExportFinished(job.export_id, job.out_path, time.perf_counter() - t0))
        finally:
            self._finish_export(job.export_id)
