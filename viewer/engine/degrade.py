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


# ------------------------------------------------------------------------------------------------------
# blur-v1: soft and shaken photos (the liif-deblur model's recipe)
# ------------------------------------------------------------------------------------------------------


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A straight camera-shake path of `length` pixels at `angle` degrees, anti-aliased, summing to 1."""
    half = int(np.ceil(length / 2.0))
    size = 2 * half + 1
    k = np.zeros((size, size), dtype=np.float64)
    t = np.linspace(-length / 2.0, length / 2.0, max(32, int(8 * length)))
    rad = np.deg2rad(angle)
    xs, ys = half + t * np.cos(rad), half - t * np.sin(rad)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dy, dx, wgt in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = np.clip(y0 + dy, 0, size - 1), np.clip(x0 + dx, 0, size - 1)
        np.add.at(k, (yy, xx), wgt)
    return k / k.sum()


def disc_kernel(radius: float) -> np.ndarray:
    """Defocus: a uniform disc of `radius` pixels (each pixel weighted by the share of it inside)."""
    half = int(np.ceil(radius))
    sub = (np.arange(8) + 0.5) / 8.0 - 0.5
    c = np.arange(-half, half + 1, dtype=np.float64)
    yy = (c[:, None, None, None] + sub[None, None, :, None]) ** 2
    xx = (c[None, :, None, None] + sub[None, None, None, :]) ** 2
    k = ((yy + xx) <= radius * radius).mean(axis=(2, 3))
    return k / k.sum()


def gaussian_kernel(sigma: float) -> np.ndarray:
    """An isotropic Gaussian of standard deviation `sigma` pixels, cut at 3 sigma."""
    half = max(1, int(np.ceil(3.0 * sigma)))
    c = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(c**2) / (2.0 * sigma * sigma))
    k = np.outer(g, g)
    return k / k.sum()


def convolve(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur a float (H, W, 3) image with a 2-D kernel (odd sides), mirrored at the borders."""
    kh, kw = kernel.shape
    py, px = kh // 2, kw // 2
    src = np.pad(rgb.astype(np.float64), ((py, py), (px, px), (0, 0)), mode="reflect")
    h, w = rgb.shape[:2]
    out = np.zeros((h, w, rgb.shape[2]), dtype=np.float64)
    for y, x in zip(*np.nonzero(kernel), strict=True):
        # correlation with the flipped kernel is convolution
        out += kernel[kh - 1 - y, kw - 1 - x] * src[y : y + h, x : x + w]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


BLUR_KINDS = ("motion", "defocus", "gaussian")


def blur_kernel(kind: str, rng: np.random.Generator, *, fixed: bool = False) -> np.ndarray:
    """A kernel of `kind` with random strength: the training ranges, or the narrower benchmark ones."""
    if kind == "motion":
        lo, hi = (4.0, 8.0) if fixed else (2.0, 10.0)
        return motion_kernel(rng.uniform(lo, hi), rng.uniform(0.0, 180.0))
    if kind == "defocus":
        lo, hi = (1.5, 2.5) if fixed else (0.8, 3.0)
        return disc_kernel(rng.uniform(lo, hi))
    if kind == "gaussian":
        lo, hi = (1.0, 1.6) if fixed else (0.5, 2.0)
        return gaussian_kernel(rng.uniform(lo, hi))
    raise ValueError(f"unknown blur kind {kind!r}")


def random_blur(lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """blur-v1's training distribution on a float (H, W, 3) low-resolution image: one kernel (motion
    2-10 px at any angle, defocus disc radius 0.8-3 px or Gaussian sigma 0.5-2 px, a third each), then
    Gaussian noise sigma 0.5-4/255 (60%) and JPEG quality 60-95 (60%)."""
    return random_blur_kind(lr, rng)[0]


def random_blur_kind(lr: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """`random_blur` (the same draws), and which kind of kernel it drew (for the gates' calibration)."""
    kind = BLUR_KINDS[int(rng.integers(0, 3))]
    out = convolve(lr, blur_kernel(kind, rng))
    if rng.random() < 0.6:
        out = gaussian_noise(out, rng.uniform(0.5, 4.0) / 255.0, rng)
    if rng.random() < 0.6:
        out = jpeg(out, int(rng.integers(60, 96)))
    return out, str(kind)


BLUR_RECIPE = (
    "blur-v1: image i gets motion blur (length 4-8 px, any angle) if i % 3 == 0, a defocus disc (radius "
    "1.5-2.5 px) if 1, a Gaussian (sigma 1.0-1.6 px) if 2, strengths from numpy seed [2027, i], on the "
    "low-resolution input; then Gaussian noise sigma 2/255 and JPEG quality 80"
)
"""The fixed recipe for blurred benchmark inputs, as the model card states it."""


def benchmark_blur(lr: np.ndarray, index: int) -> np.ndarray:
    """The fixed, seeded blur of benchmark input `index` (see BLUR_RECIPE)."""
    rng = np.random.default_rng([2027, index])
    out = convolve(lr.astype(np.float32), blur_kernel(BLUR_KINDS[index % 3], rng, fixed=True))
    return jpeg(gaussian_noise(out, 2.0 / 255.0, rng), 80)
