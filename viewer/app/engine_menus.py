"""The Model and Device menus' contents: the catalogue, the devices, Feature Memory and Disk Cache.

Plain builders that fill a `QMenu` and report choices through callbacks, so the main window stays a
composition root. All run on the GUI thread and call no model: the catalogue is read from its manifest,
and the devices are the ones the render worker reported when it loaded the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QMenu

from viewer import paths
from viewer.app.settings import AppSettings
from viewer.engine.weights import AUTO_MODEL, list_models

DEVICE_LABELS = {"auto": "Auto (best available)", "cpu": "CPU", "cuda": "CUDA GPU", "mps": "Apple GPU (MPS)"}


def fill_model_menu(m: QMenu, current: str, choose: Callable[[str], None]) -> None:
    """Fill `m` with Automatic, every catalogue model (checked: `current`) and a chosen weights file."""
    m.clear()
    group = QActionGroup(m)
    try:
        models = list_models()
    except Exception as exc:  # a broken manifest must not break the menu
        models = []
        m.addAction(f"(model catalog unreadable: {exc})").setEnabled(False)
    names = [AUTO_MODEL] + [mi.name for mi in models]
    auto = m.addAction("Automatic (Latent-modulated on a CPU, the official model on a GPU)")
    auto.setCheckable(True)
    auto.setChecked(current == AUTO_MODEL)
    group.addAction(auto)
    auto.triggered.connect(lambda _=False: choose(AUTO_MODEL))
    for mi in models:
        shown = f"{mi.label} ({mi.name})" if mi.display_name else mi.name
        label = shown if mi.available else f"{shown} (not downloaded)"
        a = m.addAction(label)
        a.setCheckable(True)
        a.setChecked(mi.name == current)
        a.setToolTip(f"{mi.architecture} · {mi.source}")
        group.addAction(a)
        a.triggered.connect(lambda _=False, n=mi.name: choose(n))
    if current not in names:
        a = m.addAction(Path(current).name)
        a.setCheckable(True)
        a.setChecked(True)
        group.addAction(a)


def fill_device_menu(
    m: QMenu, available: list[str] | None, current: str, choose: Callable[[str], None]
) -> None:
    """Fill `m` with Auto and the devices; `available` is None until the worker has reported them."""
    m.clear()
    group = QActionGroup(m)
    usable_now = available if available is not None else ["cpu"]
    choices = ["auto", *usable_now]
    for dev in ("cuda", "mps"):
        if not any(a.startswith(dev) for a in usable_now):
            choices.append(dev)
    for dev in choices:
        base = dev.split(":")[0]
        label = DEVICE_LABELS.get(dev, f"{DEVICE_LABELS.get(base, dev)} ({dev})")
        usable = dev == "auto" or dev in usable_now
        if not usable:
            label += " (not available)" if available is not None else " (checking…)"
        a = m.addAction(label)
        a.setCheckable(True)
        a.setChecked(dev == current)
        a.setEnabled(usable)
        group.addAction(a)
        a.triggered.connect(lambda _=False, d=dev: choose(d))


def fill_store_menus(
    m: QMenu, settings: AppSettings, choose: Callable[[str, int], None], clear: Callable[[], None]
) -> None:
    """Add Feature Memory and Disk Cache to `m`: where the photo's encoded tiles are kept.
    `choose("memory" | "disk", megabytes)` is called with a choice; `clear` empties the disk cache."""
    from viewer.engine.memory import default_memory_budget

    mem = m.addMenu("Feature &Memory")
    mem.setToolTip("Memory for the photo's encoded tiles; beyond it the least recently used are dropped")
    group = QActionGroup(mem)
    auto_mb = default_memory_budget() >> 20
    for mb in (0, 512, 1024, 2048, 4096, 8192):
        label = f"Automatic ({auto_mb} MB)" if mb == 0 else f"{mb} MB" if mb < 1024 else f"{mb >> 10} GB"
        a = mem.addAction(label)
        a.setCheckable(True)
        a.setChecked(settings.feature_memory_mb() == mb)
        group.addAction(a)
        a.triggered.connect(lambda _=False, v=mb: choose("memory", v))
    disk = m.addMenu("Disk &Cache")
    disk.setToolTip("Encoded tiles kept on disk, so a photo opened again needs no encoding")
    group = QActionGroup(disk)
    for mb in (0, 1024, 4096, 16384):
        a = disk.addAction("Off" if mb == 0 else f"Up to {mb >> 10} GB")
        a.setCheckable(True)
        a.setChecked(settings.disk_cache_mb() == mb)
        group.addAction(a)
        a.triggered.connect(lambda _=False, v=mb: choose("disk", v))
    disk.addSeparator()
    disk.addAction("Clear Disk Cache", clear)


def clear_disk_cache() -> tuple[int, Path]:
    """Delete the disk cache's tile files (cheap: no model call); returns how many, and the folder."""
    from viewer.engine.diskcache import SUFFIX

    folder = paths.feature_cache_dir()
    n = 0
    for f in folder.glob(f"*{SUFFIX}") if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            f.unlink()
            n += 1
    return n, folder
