"""Typed access to the persistent settings, over a QSettings passed in (tests give a temporary file).

What is remembered: window geometry, recent files, the model and device, the last folders, view toggles,
the display colour target, the last session (photo, zoom, position) and the export dialog's choices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from viewer.engine.weights import RETIRED_MODELS, VIEWER_DEFAULT_MODEL

MAX_RECENT = 10
DISPLAY_COLOUR_MODES = ("auto", "srgb")
"""View ▸ Display Colour: the display's profile where the system says it (else sRGB), or always sRGB."""


def _as_list(value: Any) -> list[str]:
    """QSettings returns a str for a one-element list in some formats, None for none."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


class AppSettings:
    """Reads and writes the app's settings; beyond the QSettings it holds only this run's command-line
    overrides (`override`), which are read first and never saved."""

    def __init__(self, qsettings: QSettings) -> None:
        self._s = qsettings
        self._overrides: dict[str, object] = {}

    def override(self, key: str, value: object) -> None:
        """Use `value` for `key` in this run only (e.g. `--feature-memory` on the command line)."""
        self._overrides[key] = value

    def _value(self, key: str) -> object:
        return self._overrides[key] if key in self._overrides else self._s.value(key)

    @property
    def qsettings(self) -> QSettings:
        return self._s

    def sync(self) -> None:
        self._s.sync()

    # -- window ---------------------------------------------------------------------------------------
    def geometry(self) -> QByteArray | None:
        v = self._s.value("window/geometry")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def set_geometry(self, data: QByteArray) -> None:
        self._s.setValue("window/geometry", data)

    def window_state(self) -> QByteArray | None:
        v = self._s.value("window/state")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def set_window_state(self, data: QByteArray) -> None:
        self._s.setValue("window/state", data)

    # -- recent files ---------------------------------------------------------------------------------
    def recent_files(self) -> list[Path]:
        return [Path(p) for p in _as_list(self._s.value("files/recent"))][:MAX_RECENT]

    def add_recent(self, path: Path) -> None:
        """Put `path` first (absolute), dropping duplicates and keeping at most MAX_RECENT."""
        p = str(Path(path).resolve())
        items = [p] + [q for q in _as_list(self._s.value("files/recent")) if q != p]
        self._s.setValue("files/recent", items[:MAX_RECENT])

    def remove_recent(self, path: Path) -> None:
        p = str(Path(path).resolve())
        self._s.setValue("files/recent", [q for q in _as_list(self._s.value("files/recent")) if q != p])

    def clear_recent(self) -> None:
        self._s.setValue("files/recent", [])

    def last_dir(self, key: str = "open") -> str:
        return str(self._s.value(f"files/last_{key}_dir", "") or "")

    def set_last_dir(self, path: Path, key: str = "open") -> None:
        self._s.setValue(f"files/last_{key}_dir", str(path))

    # -- engine ---------------------------------------------------------------------------------------
    def model(self) -> str:
        """The chosen model; by default `auto` (the fast model on a CPU, the official one on a GPU). A model
        that is no longer shipped reads as the one that replaces it, so an upgrade keeps the person's choice
        in spirit instead of failing to load it."""
        name = str(self._s.value("engine/model", VIEWER_DEFAULT_MODEL) or VIEWER_DEFAULT_MODEL)
        return RETIRED_MODELS.get(name, name)

    def set_model(self, name: str) -> None:
        self._s.setValue("engine/model", name)

    def device(self) -> str:
        return str(self._s.value("engine/device", "auto") or "auto")

    def set_device(self, name: str) -> None:
        self._s.setValue("engine/device", name)

    def precision(self) -> str:
        return str(self._s.value("engine/precision", "auto") or "auto")

    def feature_memory_mb(self) -> int:
        """Memory for encoded feature tiles in MB; 0 means automatic (sized from the machine's memory)."""
        return _as_int(self._value("engine/feature_memory_mb"), 0, 0)

    def set_feature_memory_mb(self, mb: int) -> None:
        self._overrides.pop("engine/feature_memory_mb", None)
        self._s.setValue("engine/feature_memory_mb", int(mb))

    def disk_cache_mb(self) -> int:
        """Cap of the on-disk feature cache in MB; 0 turns it off."""
        return _as_int(self._value("engine/disk_cache_mb"), 4096, 0)

    def set_disk_cache_mb(self, mb: int) -> None:
        self._overrides.pop("engine/disk_cache_mb", None)
        self._s.setValue("engine/disk_cache_mb", int(mb))

    # -- view toggles ------------------------------------------------------------------------------------
    def flag(self, name: str, default: bool) -> bool:
        return _as_bool(self._s.value(f"view/{name}"), default)

    def set_flag(self, name: str, value: bool) -> None:
        self._s.setValue(f"view/{name}", bool(value))

    def compare_method(self) -> str:
        """Compare mode's right side: 'bicubic' or 'nearest' (the source pixels)."""
        v = str(self._s.value("view/compare_method", "bicubic") or "bicubic")
        return v if v in ("bicubic", "nearest") else "bicubic"

    def set_compare_method(self, method: str) -> None:
        self._s.setValue("view/compare_method", method)

    def display_colour(self) -> str:
        """What photos are converted to for the screen: 'auto' (the display's profile where the system
        says it, else sRGB; the default) or 'srgb'."""
        v = str(self._s.value("view/display_colour", "auto") or "auto")
        return v if v in DISPLAY_COLOUR_MODES else "auto"

    def set_display_colour(self, mode: str) -> None:
        self._s.setValue("view/display_colour", mode if mode in DISPLAY_COLOUR_MODES else "auto")

    # -- session ---------------------------------------------------------------------------------------
    def restore_session(self) -> bool:
        """Whether the app reopens the last photo at its zoom and position when it starts (default on)."""
        return _as_bool(self._s.value("session/restore"), True)

    def set_restore_session(self, on: bool) -> None:
        self._s.setValue("session/restore", bool(on))

    def session(self) -> tuple[Path, float, float, float, bool] | None:
        """The last photo and its view when the app closed: (path, zoom, centre x, centre y, fit)."""
        path = self._s.value("session/photo")
        if not path:
            return None
        try:
            zoom, cx, cy = (float(str(self._s.value(f"session/{k}"))) for k in ("zoom", "cx", "cy"))
        except ValueError:
            return None
        return Path(str(path)), zoom, cx, cy, _as_bool(self._s.value("session/fit"), True)

    def set_session(self, path: Path, zoom: float, cx: float, cy: float, fit: bool) -> None:
        self._s.setValue("session/photo", str(Path(path).resolve()))
        for key, value in (("zoom", zoom), ("cx", cx), ("cy", cy)):
            self._s.setValue(f"session/{key}", repr(float(value)))
        self._s.setValue("session/fit", bool(fit))

    def clear_session(self) -> None:
        for key in ("photo", "zoom", "cx", "cy", "fit"):
            self._s.remove(f"session/{key}")

    # -- export dialog -------------------------------------------------------------------------------------
    def export_value(self, name: str, default: str) -> str:
        v = self._s.value(f"export/{name}")
        return default if v is None else str(v)

    def set_export_value(self, name: str, value: object) -> None:
        self._s.setValue(f"export/{name}", str(value))


def _as_int(value: object, default: int, minimum: int) -> int:
    """A stored integer (QSettings may give a string), or `default` when missing or unreadable."""
    try:
        v = int(str(value)) if value is not None else default
    except ValueError:
        return default
    return v if v >= minimum else default
