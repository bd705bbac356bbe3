"""Where the program finds its data, independent of the working directory.

In a wheel, `models/` and `resources/` are installed inside the package as `viewer/_data/`; in a source
checkout (or an editable install) they sit beside the package. User-specific files (downloaded weights,
settings) live in the per-user data directory, and encoded tiles in the per-user cache directory;
platformdirs says where those are on each platform.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "liif-viewer"
_PKG = Path(__file__).resolve().parent


def _data_root(name: str) -> Path:
    installed = _PKG / "_data" / name
    if installed.is_dir():
        return installed
    return _PKG.parent / name


def models_dir() -> Path:
    """The folder of shipped model cards, trained weights and the download manifest."""
    return _data_root("models")


def resources_dir() -> Path:
    """The folder of the sample photo, icons and desktop entry."""
    return _data_root("resources")


def sample_photo() -> Path:
    """The bundled public-domain sample photo."""
    return resources_dir() / "sample.png"


def user_data_dir() -> Path:
    """Per-user data folder (downloaded weights), as platformdirs defines it for each platform.

    `LIIF_VIEWER_DATA` overrides it. On Windows it is the roaming profile's folder, where earlier
    versions kept fetched weights.
    """
    override = os.environ.get("LIIF_VIEWER_DATA")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=True))


def user_weights_dir() -> Path:
    """Where fetched weights are stored."""
    return user_data_dir() / "weights"


def user_cache_dir() -> Path:
    """Per-user cache folder (encoded feature tiles), as platformdirs defines it. `LIIF_VIEWER_CACHE`
    overrides it."""
    override = os.environ.get("LIIF_VIEWER_CACHE")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def feature_cache_dir() -> Path:
    """The on-disk cache of encoded feature tiles (see `viewer.engine.diskcache`)."""
    return user_cache_dir() / "features"
