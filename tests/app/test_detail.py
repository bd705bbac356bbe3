"""With the official weights, the refined view adds detail that bicubic interpolation does not have."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from viewer import paths
from viewer.app.settings import AppSettings
from viewer.errors import WeightsMissingError

from .test_window import grab_rgb, make_window, open_and_encode

PATCH_CENTRE = (170.0, 385.0)
"""The embroidered mission patch of the sample photo: lettering and fine texture."""


def laplacian_energy(rgb: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of the luma: high-frequency energy."""
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(np.mean(lap**2))


@pytest.mark.weights
@pytest.mark.slow
def test_zoom_8x_into_texture_adds_detail_over_bicubic(qtbot: Any, settings: AppSettings) -> None:
    from viewer.engine.weights import DEFAULT_MODEL, resolve_model_path

    try:
        resolve_model_path(DEFAULT_MODEL)
    except WeightsMissingError as exc:
        pytest.skip(f"the official weights are not downloaded ({exc})")
    sample = paths.sample_photo()
    assert sample.is_file()

    settings.set_model(DEFAULT_MODEL)
    settings.set_device("cpu")
    w = make_window(qtbot, settings, None)  # the real engine factory: Engine.from_name
    w.canvas.setFixedSize(256, 256)
    open_and_encode(qtbot, w, sample)
    view = w.view
    view.zoom_to(8.0)
    view.centre_on(*PATCH_CENTRE)
    view.flush()
    qtbot.waitUntil(view.is_settled, timeout=300_000)
    got = grab_rgb(w.canvas)

    vp = view.viewport
    assert vp is not None
    x, y, sw, sh = vp.source_rect()
    src = Image.open(sample).convert("RGB")
    bicubic = np.asarray(src.resize(vp.device_size, Image.Resampling.BICUBIC, box=(x, y, x + sw, y + sh)))
    diff = np.abs(got.astype(float) - bicubic.astype(float)).mean()
    e_liif, e_bicubic = laplacian_energy(got), laplacian_energy(bicubic)
    print(
        f"mean |LIIF - bicubic| = {diff:.2f}; high-frequency energy LIIF {e_liif:.2f} vs bicubic {e_bicubic:.2f}"
    )
    assert diff > 1.0
    assert e_liif > e_bicubic
