"""Shared test setup: Qt runs headless (offscreen platform), set once before any Qt import."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The on-disk feature cache goes to a folder of this test run, never the person's own cache.
os.environ["LIIF_VIEWER_CACHE"] = tempfile.mkdtemp(prefix="liif-test-cache-")
atexit.register(shutil.rmtree, os.environ["LIIF_VIEWER_CACHE"], ignore_errors=True)

# Importing the app package first applies its guard against shiboken6 6.12's refcount bug on CPython
# < 3.12 (see viewer/app/__init__.py), so no test process aborts after many Qt calls.
import viewer.app  # noqa: F401, E402


@pytest.fixture(scope="session")
def benchmark_root() -> Path:
    """The benchmark folder (with Set5) for the tests that need it: skips without it, fails under CI."""
    from _data import require_benchmark

    return require_benchmark("Set5")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LIIF in our safetensors format, passed to commands with --model PATH (no download)."""
    from viewer.liif.checkpoint import save_safetensors
    from viewer.liif.liif import make_liif

    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_safetensors(make_liif(seed=1), path, {"name": "tiny-test"})
    return path


@pytest.fixture(scope="module")
def disc_photos() -> list[np.ndarray]:
    """Three 96 x 96 synthetic photos (gradients with hard-edged discs), for the deblur recipes' tests."""
    rng = np.random.default_rng(7)
    side = 96
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = []
    for _ in range(3):
        img = np.stack([yy * rng.uniform(0.3, 1) + xx * rng.uniform(0, 0.5) for _ in range(3)], axis=-1)
        for _ in range(6):
            cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, size=3)
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out
