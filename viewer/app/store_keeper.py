"""How the render worker keeps a photo's encoded tiles: the options, the disk cache and the store.

No Qt and no torch at import. The worker asks `StoreKeeper.open(engine, loaded)` for a lazy feature store
each time a photo or model changes; the keeper makes the disk cache once per set of options, reports its
problems once through `emit`, and digests a photo's pixels only once however often it is reopened.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from viewer.app.messages import Notice

if TYPE_CHECKING:
    from viewer.engine.diskcache import TileDiskCache
    from viewer.engine.imageio import LoadedImage
    from viewer.engine.render import Engine, Latents


@dataclass(frozen=True)
class StoreOptions:
    """How the render worker keeps encoded tiles: the memory budget (None: sized from the machine's
    memory), and the disk cache's size cap (0: no disk cache) and folder (None: the user cache folder)."""

    memory_bytes: int | None = None
    disk_bytes: int = 4 << 30
    disk_dir: str | None = None


class StoreKeeper:
    """Opens lazy feature stores for the render worker under the current `StoreOptions`.

    `set_options` may be called from any thread; the rest runs in the worker thread.
    """

    def __init__(self, emit: Callable[[object], None]) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self._options = StoreOptions()
        self._disk: TileDiskCache | None = None
        self._disk_for: StoreOptions | None = None
        self._photo_key: tuple[LoadedImage, str] | None = None

    def set_options(self, options: StoreOptions) -> None:
        """Use `options` for the next store opened (any thread)."""
        with self._lock:
            self._options = options

    @property
    def options(self) -> StoreOptions:
        with self._lock:
            return self._options

    def disk_cache(self) -> TileDiskCache | None:
        """Worker thread: the disk cache for the current options (made once; None when switched off)."""
        opts = self.options
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

    def content_key(self, loaded: LoadedImage) -> str:
        """Worker thread: the digest of the photo's pixels (computed once per decoded photo)."""
        from viewer.engine.features import photo_key

        if self._photo_key is None or self._photo_key[0] is not loaded:
            self._photo_key = (loaded, photo_key(loaded.pixels))
        return self._photo_key[1]

    def open(self, engine: Engine, loaded: LoadedImage) -> Latents:
        """Worker thread: a lazy feature store of `loaded` for `engine` (nothing is encoded yet)."""
        opts = self.options
        disk = self.disk_cache()
        key = self.content_key(loaded) if disk is not None and disk.enabled else None
        return engine.open_store(loaded.pixels, budget_bytes=opts.memory_bytes, disk=disk, content_key=key)


__all__ = ["StoreKeeper", "StoreOptions"]
