"""The render worker: the one thread that owns the engine, the open photo's feature store and the device.

No Qt here: a worker reports by calling `emit(event)` from its own thread with a value from
`viewer.app.messages`; the Qt bridge turns that into a queued signal. Torch is imported only inside this
thread (through the engine factory), so the window can appear before torch has loaded.

The parts: `tile_thread` (the newest request wins, two levels of cancellation), `bicubic_worker` (the
compare view), `store_keeper` (feature memory, disk cache, the store of each photo), and here what needs
the engine: loading models, opening photos, LIIF tiles with their out-of-memory fallbacks, and exports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from viewer.app.bicubic_worker import BicubicWorker
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
    TileKind,
    WorkerError,
)
from viewer.app.store_keeper import StoreKeeper, StoreOptions
from viewer.app.tile_thread import Emit, Running, Throttle, TileThread, is_oom, lower_thread_priority, to_bgra
from viewer.engine.cancel import CancelToken
from viewer.errors import Cancelled, ViewerError, WeightsMissingError
from viewer.heap import give_back

if TYPE_CHECKING:
    from viewer.engine.imageio import LoadedImage
    from viewer.engine.render import Engine, Latents

log = logging.getLogger(__name__)

EngineFactory = Callable[[EngineConfig], "Engine"]
"""Builds an engine for a config; runs in the render worker thread (may import torch)."""

_MIN_ENCODE_BUDGET = 64 << 20


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


class RenderWorker(TileThread):
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
        self._stores = StoreKeeper(emit)
        self._view_prefetched = -1
        """Generation of the request whose whole visible area was last encoded in one pass."""
        self._new_photo = False
        """A photo was opened and its store not yet: the soft-photo hint is weighed only then, with the first
        model the photo is opened with, not again on every change of model (nor after a deblur model)."""

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
        self._stores.set_options(options)

    def forget_encoded(self) -> None:
        """Drop the open photo's encoded tiles and projections (any thread): the next request finds nothing
        encoded, as right after opening a big photo (`bench --gui --cold`)."""
        with self._cond:
            fm = self._fm
        if fm is not None:
            fm.forget()

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
            self._new_photo = True
            self._content = max(self._content, content)
            self._set_fm(None, -1)
            give_back()  # the previous photo's tiles and pixels were just freed (this thread holds no lock)
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
        store = self._stores.open(self._engine, self._loaded)
        self._set_fm(store, content)
        self._emit(EncodeDone(content, time.perf_counter() - t0))
        share = getattr(store, "blur_share", None)
        first_model, self._new_photo = self._new_photo, False
        if share is not None:  # a photo-gated deblur model: say what it does to this photo
            self._emit(Notice(self._engine.photo_gate_note(share)))
        elif first_model:
            self._suggest_deblur(self._engine, self._loaded.pixels)

    def _suggest_deblur(self, engine: Engine, pixels: np.ndarray) -> None:
        """Worker thread, when a photo is opened: with a model that does not deblur, say that an installed
        deblur model would sharpen the photo, where it reads soft enough for that model's photo gate to act
        (the estimate takes under 10 ms, a 100 MP scan included)."""
        from viewer.engine.weights import deblur_suggestion
        from viewer.liif.models import encoder_chain
        from viewer.liif.mssnet import DeblurredEncoder, photo_blur_share

        if any(isinstance(e, DeblurredEncoder) for e in encoder_chain(engine.model.encoder)):
            return
        found = deblur_suggestion(engine.device.type)
        if found is None:
            return
        share = photo_blur_share(pixels)
        if share >= found.opens_at:
            # Short: the status bar gives a transient message what its permanent fields leave.
            self._emit(Notice(f"Soft photo (blur {share:.2f}): try Model ▸ {found.label}"))

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
            self._set_fm(self._stores.open(engine, self._loaded), self._fm_content)
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
    def _prefetch_view(self, run: Running, engine: Engine, fm: Latents) -> None:
        """Worker thread: once the first tile of a request is on screen, encode the latents of all its
        visible tiles in one pass (fewer halos than tile by tile), nearest the centre first."""
        from viewer.engine.features import clip_box
        from viewer.engine.render import SourceRect, grid_rect, window_latents

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
        boxes = [
            window_latents(grid_rect(fm, SourceRect(*t.rect)), t.out_w, t.out_h, t.window) for t in specs
        ]
        union = (
            min(b[0] for b in boxes),
            max(b[1] for b in boxes),
            min(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )
        # What the tiles' renders will read: the projection cache's whole blocks and the unfold's neighbour
        # (`Engine.projection_box`). The union of their windows alone left a one-latent rim that each
        # edge tile then encoded alone, halo and all (25 extra passes for a 400% view of a blurred photo
        # with liif-deblur-lm).
        box = clip_box(engine.projection_box(union), fm.height, fm.width)
        if box is not None:
            fm.prefetch(box, run.token)

    def _render(self, run: Running) -> np.ndarray:
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
                if not is_oom(exc) or engine.device.type == "cpu":
                    if is_oom(exc):
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

        throttle = Throttle(0.1)

        def progress(done: int, total: int) -> None:
            if throttle.ready(done, total):
                self._emit(ExportProgress(job.export_id, done, total))

        t0 = time.perf_counter()
        try:
            run_export(
                engine, fm, loaded, job.plan, job.out_path, jpeg_quality=job.jpeg_quality, cancel=token,
                progress=progress, on_note=lambda note: self._emit(Notice(f"Export: {note}")),
            )  # fmt: skip
        except Cancelled:
            self._emit(ExportCancelled(job.export_id))
        except ViewerError as exc:
            self._emit(ExportFailed(job.export_id, str(exc)))
        except Exception as exc:
            log.exception("export failed")
            if is_oom(exc):
                msg = f"the device ran out of memory during the export ({exc}); try the CPU device"
            else:
                msg = f"{type(exc).__name__}: {exc}"
            self._emit(ExportFailed(job.export_id, msg))
        else:
            self._emit(ExportFinished(job.export_id, job.out_path, time.perf_counter() - t0))
        finally:
            self._finish_export(job.export_id)


__all__ = [
    "BicubicWorker",
    "Emit",
    "EngineFactory",
    "RenderWorker",
    "StoreOptions",
    "WorkerContext",
    "WorkerExtension",
    "default_engine_factory",
    "lower_thread_priority",
    "to_bgra",
]
