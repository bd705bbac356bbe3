"""The plain, immutable values that cross between the GUI thread and the worker threads.

Requests go from the GUI to a worker; events come back. Nothing here holds a Qt or torch object: pixels are
numpy arrays, positions are floats, and every request carries a generation from one `itertools.count()`
so the GUI applies a result only if it answers the newest request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from viewer.app.planning import TileKey, TileSpec

TileKind = Literal["liif", "bicubic"]
"""LIIF tiles, and compare mode's right side (tiles of the `bicubic` worker, whatever its method)."""

CompareMethod = Literal["bicubic", "nearest"]
"""What compare mode's right side shows: bicubic interpolation, or the source pixels (nearest neighbour)."""

COMPARE_LABELS: dict[str, str] = {"bicubic": "Bicubic", "nearest": "Source pixels"}


@dataclass(frozen=True)
class EngineConfig:
    """Which model on which device: what the Model and Device menus choose."""

    model: str
    device: str = "auto"
    precision: str = "auto"


# -- requests (GUI -> worker) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class TileRequest:
    """Render these tiles of photo `content`, in this order; supersedes every earlier request of its kind."""

    generation: int
    content: int
    kind: TileKind
    tiles: tuple[TileSpec, ...]
    submitted: float
    """time.perf_counter() at submission, for reporting how long the refine took (never for ordering)."""

    @cached_property
    def key_set(self) -> frozenset[TileKey]:
        """The keys of all tiles asked for."""
        return frozenset(t.key for t in self.tiles)


@dataclass(frozen=True)
class ExportJob:
    """Export photo `content` with an engine export plan to `out_path` (atomic; nothing left on cancel)."""

    export_id: int
    content: int
    plan: Any
    """A `viewer.engine.export.ExportPlan` (plain data)."""
    out_path: Path
    jpeg_quality: int


# -- events (worker -> GUI) --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EngineLoaded:
    """A model is ready on a device. `fallback` says the device was changed by the app (out of memory)."""

    config: EngineConfig
    model_name: str
    device: str
    device_type: str
    precision: str
    seconds: float
    fallback: bool = False
    available_devices: tuple[str, ...] = ("cpu",)


@dataclass(frozen=True)
class EngineFailed:
    """Loading `config` failed; the previous engine (if any) stays in use."""

    config: EngineConfig
    message: str
    missing_weights: bool


@dataclass(frozen=True)
class EncodeProgress:
    content: int
    done: int
    total: int


@dataclass(frozen=True)
class EncodeDone:
    content: int
    seconds: float


@dataclass(frozen=True)
class TileResult:
    """One rendered tile: BGRA uint8 pixels (rows, cols, 4), ready for a QImage of Format_RGB32."""

    generation: int
    content: int
    kind: TileKind
    key: TileKey
    pixels: np.ndarray
    seconds: float
    spec: TileSpec | None = None
    """The spec it answers: which part of the tile `pixels` are (None: the whole tile)."""
    raw: np.ndarray | None = None
    """The tile in the photo's own colour values, when `pixels` were converted for display (a photo with
    a colour profile); None when they are the same."""


@dataclass(frozen=True)
class RequestProgress:
    generation: int
    kind: TileKind
    done: int
    total: int


@dataclass(frozen=True)
class RequestDone:
    """Every visible tile of request `generation` has been delivered."""

    generation: int
    kind: TileKind
    seconds: float
    tiles: int


@dataclass(frozen=True)
class Notice:
    """Something the person should know that is not an error (e.g. a fallback after out of memory)."""

    message: str
    dialog: bool = False


@dataclass(frozen=True)
class WorkerError:
    """A failure in a worker thread, to be shown as a message. `internal` marks a bug, not bad input."""

    title: str
    message: str
    internal: bool = False


@dataclass(frozen=True)
class ExportProgress:
    export_id: int
    done: int
    total: int


@dataclass(frozen=True)
class ExportFinished:
    export_id: int
    path: Path
    seconds: float


@dataclass(frozen=True)
class ExportFailed:
    export_id: int
    message: str


@dataclass(frozen=True)
class ExportCancelled:
    export_id: int


# -- photo loading (loader thread -> GUI) ------------------------------------------------------------------
@dataclass(frozen=True)
class PhotoLoaded:
    """A decoded photo with its preview pyramid (BGRA uint8, each level half the previous, already in
    the display's colours)."""

    request: int
    path: Path
    loaded: Any
    """The engine's `LoadedImage` (numpy pixels, ICC, EXIF)."""
    rgb8: np.ndarray
    """The photo's own values at 8 bits (what the model and the inspect numbers use)."""
    levels: tuple[np.ndarray, ...]
    seconds: float
    display: Any = None
    """The `DisplayTransform` to the display's colours, or None (shown as it is)."""
    display_notice: str | None = None
    """Why the photo's colour profile could not be used, if so (it is then shown as sRGB)."""
    target: Any = None
    """The `DisplayTarget` the levels were converted for (None: sRGB)."""


@dataclass(frozen=True)
class DisplayConverted:
    """The open photo converted again for another display target (View ▸ Display Colour): its new
    transform and preview pyramid (BGRA uint8, in the new target's colours)."""

    request: int
    target: Any
    display: Any
    levels: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class PhotoFailed:
    request: int
    path: Path
    message: str
