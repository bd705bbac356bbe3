"""Degradations typical of old prints and scans, applied to a low-resolution training input.

Everything is driven by a `numpy.random.Generator`, so a given seed gives the same degraded image. The
high-resolution target stays clean: the model learns to undo these while it upscales.

Two entry points:
- `random_degrade`: the training distribution (each effect with its own probability and strength);
- `benchmark_degrade`: the fixed recipe used to measure models on degraded benchmark images (documented in
  the model cards as "degraded-v1").
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

KERNELS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
}
"""Downscaling kernels the old-photo recipe draws from (Pillow's, all antialiased when shrinking)."""


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float (H, W, 3) in [0, 1] to uint8, rounded."""
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def downscale(hr: np.ndarray, size: tuple[int, int], kernel: str = "bicubic") -> np.ndarray:
    """Resize a uint8 (H, W, 3) image to `size` = (w, h) with a named kernel; uint8 out."""
    return np.asarray(Image.fromarray(hr).resize(size, KERNELS[kernel]))


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Slight optical blur (float in, float out)."""
    im = Image.fromarray(to_uint8(rgb))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(sigma)), dtype=np.float32) / 255.0


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at `quality` (4:2:0 chroma subsampling, as most cameras and scanners)."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(rgb)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def fade_and_cast(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slightly faded contrast towards a paper tone, plus a slight per-channel colour cast.

    Kept mild on purpose: a model that sees 48x48 crops cannot tell a faded print from a pale scene, so
    strong fades with clean targets teach it to shift every photo's colours (the first old-photo run lost
    3.7 dB on clean inputs that way). Mild ones teach it not to amplify the damage.
    """
    fade = rng.uniform(0.0, 0.1)
    paper = rng.uniform(0.55, 0.8)
    gain = 1.0 + rng.uniform(-0.04, 0.04, size=3)
    offset = rng.uniform(-0.015, 0.015, size=3)
    out = (rgb * (1.0 - fade) + fade * paper) * gain + offset
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def gaussian_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Additive white noise of standard deviation `sigma` (in [0, 1] units), per channel."""
    return np.clip(rgb + rng.normal(0.0, sigma, size=rgb.shape), 0.0, 1.0).astype(np.float32)


def poisson_noise(rgb: np.ndarray, peak: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: photon counts with `peak` photons at full white."""
    return np.clip(rng.poisson(np.clip(rgb, 0, 1) * peak) / peak, 0.0, 1.0).astype(np.float32)


def film_grain(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Monochrome, slightly clumped grain, strongest in the mid-tones (as silver grain looks)."""
    h, w = rgb.shape[:2]
    g: np.ndarray = rng.normal(0.0, 1.0, size=(h, w))
    for axis in (0, 1):  # binomial [1, 2, 1] / 4 blur along each axis: grains a little over a pixel wide
        p = np.pad(g, [(1, 1) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        g = (
            np.take(p, range(0, p.shape[axis] - 2), axis)
            + 2 * np.take(p, range(1, p.shape[axis] - 1), axis)
            + np.take(p, range(2, p.shape[axis]), axis)
        ) / 4
    g /= max(float(g.std()), 1e-6)
    luma = rgb.mean(axis=2, keepdims=True)
    weight = 4.0 * luma * (1.0 - luma)
    return np.clip(rgb + strength * weight * g[..., None], 0.0, 1.0).astype(np.float32)


def random_degrade(lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The training distribution of scan damage, applied to a float (H, W, 3) low-resolution image."""
    out = lr.astype(np.float32)
    if rng.random() < 0.3:
        out = gaussian_blur(out, rng.uniform(0.3, 0.8))
    if rng.random() < 0.15:
        out = fade_and_cast(out, rng)
    r = rng.random()
    if r < 0.5:
        out = gaussian_noise(out, rng.uniform(1.0, 15.0) / 255.0, rng)
    elif r < 0.75:
        out = poisson_noise(out, rng.uniform(30.0, 400.0), rng)
    if rng.random() < 0.3:
        out = film_grain(out, rng.uniform(0.01, 0.05), rng)
    if rng.random() < 0.8:
        out = jpeg(out, int(rng.integers(30, 91)))
    return out


BENCHMARK_RECIPE = (
    "degraded-v1: Gaussian noise sigma 5/255 (numpy seed [2026, image index]), then JPEG quality 60"
)
"""The fixed recipe for degraded benchmark inputs, as the model cards state it."""


def benchmark_degrade(lr: np.ndarray, index: int) -> np.ndarray:
    """The fixed, seeded degradation of benchmark input `index` (see BENCHMARK_RECIPE)."""
    rng = np.random.default_rng([2026, index])
    return jpeg(gaussian_noise(lr.astype(np.float32), 5.0 / 255.0, rng), 60)
