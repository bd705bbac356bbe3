"""An on-disk cache of encoded feature tiles, so that reopening a photo needs no encoding.

Each entry is one file: a magic line, a JSON header that names everything the entry depends on (the
photo's content key, the model's key, the storage dtype, the tile grid and the tile's index and shape,
and a digest of the payload), then the raw tile. A read checks every one of those; an entry that is
stale, foreign, truncated or corrupted is deleted and reported as a miss, so it is recomputed, never
trusted. Writes are atomic (temporary file, then rename). The folder's size is capped: when it grows past
the cap, the least recently used entries (by modification time, refreshed on each hit) are removed.

If the folder cannot be written (full disk, no permission), the cache switches itself off and says so
once through `on_problem`; the caller goes on without it. No torch here: tiles travel as numpy arrays.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"LIIF-TILE 1\n"
SUFFIX = ".tile"
_DTYPES = {"float16": np.float16, "float32": np.float32}

#: Default cap on the folder's size.
DEFAULT_DISK_CAP_BYTES = 4 << 30


def digest(data: bytes | memoryview) -> str:
    """A short content digest (BLAKE2b, 128 bits) as hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class TileNamespace:
    """What every tile of one encoded photo shares: photo content, model, storage dtype and tile grid."""

    photo: str
    model: str
    dtype: str
    tile: int

    def key(self) -> str:
        return digest(json.dumps([self.photo, self.model, self.dtype, self.tile]).encode())[:24]


class TileDiskCache:
    """A size-capped folder of tile files. Thread-safe; every failure is a miss, never an exception."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        cap_bytes: int = DEFAULT_DISK_CAP_BYTES,
        *,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.cap_bytes = int(cap_bytes)
        self._on_problem = on_problem
        self._lock = threading.Lock()
        self.enabled = self.cap_bytes > 0
        self.problem: str | None = None
        self.hits = self.misses = self.writes = self.rejected = 0
        self._total = 0
        if self.enabled:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self._total = sum(e.stat().st_size for e in os.scandir(self.root) if e.name.endswith(SUFFIX))
            except OSError as exc:
                self._disable(f"cannot use the feature cache folder {self.root}: {exc.strerror or exc}")

    def _disable(self, message: str) -> None:
        """Switch the cache off and say why, once."""
        if not self.enabled:
            return
        self.enabled = False
        self.problem = message
        if self._on_problem is not None:
            self._on_problem(message)

    def _path(self, ns: TileNamespace, index: tuple[int, int]) -> Path:
        return self.root / f"{ns.key()}-{index[0]}-{index[1]}{SUFFIX}"

    def _header(self, ns: TileNamespace, index: tuple[int, int], shape: tuple[int, ...], dig: str) -> dict:
        return {
            "photo": ns.photo,
            "model": ns.model,
            "dtype": ns.dtype,
            "tile": ns.tile,
            "index": list(index),
            "shape": list(shape),
            "digest": dig,
        }

    def get(self, ns: TileNamespace, index: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray | None:
        """The tile stored for (ns, index) if it is intact and of `shape`; None (and the file removed) if not."""
        if not self.enabled:
            return None
        path = self._path(ns, index)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError:
            self.misses += 1
            return None
        arr = self._parse(data, ns, index, shape)
        if arr is None:
            self.rejected += 1
            self.misses += 1
            self._remove(path, len(data))
            return None
        self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently *used* goes first when the cap is reached
        return arr

    def _parse(
        self, data: bytes, ns: TileNamespace, index: tuple[int, int], shape: tuple[int, ...]
    ) -> np.ndarray | None:
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            return None
        at = len(MAGIC)
        n = int.from_bytes(data[at : at + 4], "little")
        at += 4
        try:
            header = json.loads(data[at : at + n])
        except (ValueError, UnicodeDecodeError):
            return None
        payload = memoryview(data)[at + n :]
        dtype = _DTYPES.get(ns.dtype)
        if dtype is None or not isinstance(header, dict):
            return None
        want = self._header(ns, index, shape, header.get("digest", ""))
        if header != want:
            return None
        if (
            len(payload) != int(np.prod(shape)) * np.dtype(dtype).itemsize
            or digest(payload) != want["digest"]
        ):
            return None
        return np.frombuffer(payload, dtype=dtype).reshape(shape)

    def put(self, ns: TileNamespace, index: tuple[int, int], tile: np.ndarray) -> None:
        """Store a tile (atomically); on a write failure the cache switches itself off and says so once."""
        if not self.enabled:
            return
        arr = np.ascontiguousarray(tile, dtype=_DTYPES[ns.dtype])
        payload = arr.tobytes()
        header = json.dumps(self._header(ns, index, arr.shape, digest(payload))).encode()
        blob = MAGIC + len(header).to_bytes(4, "little") + header + payload
        path = self._path(ns, index)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            old = path.stat().st_size if path.exists() else 0
            with open(tmp, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self._disable(
                f"the feature cache in {self.root} cannot be written ({exc.strerror or exc}); "
                "going on without it (reopening photos will encode them again)"
            )
            return
        self.writes += 1
        with self._lock:
            self._total += len(blob) - old
            over = self._total > self.cap_bytes
        if over:
            self.prune()

    def _remove(self, path: Path, size: int) -> None:
        try:
            path.unlink()
        except OSError:
            return
        with self._lock:
            self._total = max(0, self._total - size)

    def prune(self, target: float = 0.9) -> None:
        """Remove the least recently used entries until the folder is under `target` of the cap."""
        try:
            entries = [e for e in os.scandir(self.root) if e.name.endswith(SUFFIX)]
            stats = sorted((e.stat().st_mtime, e.stat().st_size, e.path) for e in entries)
        except OSError:
            return
        total = sum(s for _, s, _ in stats)
        limit = self.cap_bytes * target
        for _, size, p in stats:
            if total <= limit:
                break
            try:
                os.unlink(p)
                total -= size
            except OSError:
                pass
        with self._lock:
            self._total = total

    @property
    def size_bytes(self) -> int:
        """Bytes the cache's files take (as tracked; rescanned at start and on each prune)."""
        return self._total
