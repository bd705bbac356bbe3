"""User folders come from platformdirs, with the project's environment overrides first."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from viewer import paths


def test_overrides_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIIF_VIEWER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LIIF_VIEWER_CACHE", str(tmp_path / "cache"))
    assert paths.user_weights_dir() == tmp_path / "data" / "weights"
    assert paths.feature_cache_dir() == tmp_path / "cache" / "features"


def test_defaults_are_platformdirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LIIF_VIEWER_DATA", raising=False)
    monkeypatch.delenv("LIIF_VIEWER_CACHE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    data = Path(platformdirs.user_data_dir("liif-viewer", appauthor=False, roaming=True))
    cache = Path(platformdirs.user_cache_dir("liif-viewer", appauthor=False))
    assert paths.user_data_dir() == data
    assert paths.user_cache_dir() == cache
    if sys.platform.startswith("linux"):  # the XDG variables are honoured, as before platformdirs
        assert paths.user_data_dir() == tmp_path / "xdg-data" / "liif-viewer"
        assert paths.user_cache_dir() == tmp_path / "xdg-cache" / "liif-viewer"
