"""Fixtures for the GUI tests: a tiny random model on the CPU, throwaway settings, small test photos.

Every test must leave no worker thread running (napari's conftest does the same for QThreads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from viewer.app.messages import EngineConfig
from viewer.app.settings import AppSettings

from .helpers import make_tiny_engine, textured


@pytest.fixture
def tiny_factory() -> Callable[[EngineConfig], Any]:
    """An engine factory for the render worker that ignores the catalog and builds the tiny model."""
    return lambda config: make_tiny_engine()


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    """Settings in a temporary INI file, never the person's own."""
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def photo_path(tmp_path: Path) -> Path:
    p = tmp_path / "photo.png"
    Image.fromarray(textured(96, 80)).save(p)
    return p


@pytest.fixture
def big_photo_path(tmp_path: Path) -> Path:
    p = tmp_path / "big.png"
    Image.fromarray(textured(400, 300, seed=2)).save(p)
    return p


@pytest.fixture(autouse=True)
def no_worker_threads_left() -> Iterator[None]:
    """Fail a test that leaves one of the app's threads running after its window closed."""
    yield
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [t.name for t in threading.enumerate() if t.name.startswith("liif-") and t.is_alive()]
        if not alive:
            return
        time.sleep(0.05)
    pytest.fail(f"threads left running: {alive}")
