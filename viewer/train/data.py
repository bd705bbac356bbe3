"""Training samples with LIIF's protocol: a 48x48 LR crop, a scale from U(1, 4), sampled HR pixels.

A sample is made from a clean photo: an HR crop of side round(48 * s) is cut (with a random flip and
transpose), shrunk to 48x48 for the model input, and `n_points` of its pixels become the targets, each with
its centre coordinate in [-1, 1] (row, col) and the cell of the HR grid. Randomness comes from one
`numpy.random.Generator`, so a (seed, step) pair always gives the same batch and training can resume.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from viewer.engine.degrade import downscale, random_degrade
from viewer.errors import ArgumentError
from viewer.train.graphics import synthetic_graphic, text_page

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def default_train_dirs() -> list[Path]:
    """`LIIF_VIEWER_TRAIN_DATA` (os.pathsep-separated), else the sets in ../shared/data/train."""
    env = os.environ.get("LIIF_VIEWER_TRAIN_DATA")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    here = Path(__file__).resolve().parents[2]
    for base in (here, Path.cwd()):
        root = base.parent / "shared" / "data" / "train"
        if root.is_dir():
            return sorted(p for p in root.iterdir() if p.is_dir())
    return []


def load_images(dirs: Sequence[Path], min_side: int = 48) -> list[np.ndarray]:
    """All images in `dirs` as uint8 (H, W, 3), sorted by path so the order is reproducible."""
    files = sorted(f for d in dirs for f in Path(d).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for f in files:
        with Image.open(f) as im:
            arr = np.asarray(im.convert("RGB"))
        if min(arr.shape[:2]) >= min_side:
            images.append(arr)
    if not images:
        raise ArgumentError(f"no training images found in {', '.join(str(d) for d in dirs) or '(none)'}")
    return images


def hr_coords(h: int, w: int) -> np.ndarray:
    """Pixel-centre coordinates of an (h, w) grid in [-1, 1], (h*w, 2) in (row, col) order."""
    rows = -1.0 + (2.0 * np.arange(h) + 1.0) / h
    cols = -1.0 + (2.0 * np.arange(w) + 1.0) / w
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return np.stack((rr.ravel(), cc.ravel()), axis=1).astype(np.float32)


@dataclass(frozen=True)
class Batch:
    """Model inputs and targets, as numpy arrays (the trainer moves them to torch).

    lr: (B, 3, 48, 48) in [0, 1]; coord, cell: (B, P, 2); rgb: (B, P, 3) in [0, 1].
    """

    lr: np.ndarray
    coord: np.ndarray
    cell: np.ndarray
    rgb: np.ndarray


@dataclass(frozen=True)
class CleanupBatch:
    """Recipe cleanup's inputs and targets: damaged and clean are (B, 3, S, S) in [0, 1]; was_damaged (B,)
    says which crops were damaged (the others' input is their target)."""

    damaged: np.ndarray
    clean: np.ndarray
    was_damaged: np.ndarray


Degrader = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def random_hr_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    lr_size: int,
    scale_max: float,
    *,
    vertical_flip: bool = True,
    scale_min: float = 1.0,
) -> np.ndarray:
    """A square HR crop of side round(lr_size * s), s from U(scale_min, scale_max) (as the photo allows: a
    photo too small for scale_min gives its largest), randomly flipped and transposed. `vertical_flip=False`
    skips that draw (the cleanup recipe's sequence)."""
    h, w = image.shape[:2]
    hi = max(1.0, min(scale_max, min(h, w) / lr_size))
    s = rng.uniform(min(scale_min, hi), hi)
    side = min(round(lr_size * s), h, w)
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = image[y : y + side, x : x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if vertical_flip and rng.random() < 0.5:
        crop = crop[::-1]
    if rng.random() < 0.5:
        crop = crop.transpose(1, 0, 2)
    return np.ascontiguousarray(crop)


def make_sample(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    lr_size: int = 48,
    scale_max: float = 4.0,
    n_points: int = 2304,
    kernels: Sequence[str] = ("bicubic",),
    degrade: Degrader | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One (lr, coord, cell, rgb) sample from a uint8 photo; see the module docstring."""
    crop = random_hr_crop(image, rng, lr_size, scale_max)
    side = crop.shape[0]
    kernel = kernels[int(rng.integers(0, len(kernels)))]
    lr = downscale(crop, (lr_size, lr_size), kernel).astype(np.float32) / 255.0
    if degrade is not None:
        lr = degrade(lr, rng)
    hr = crop.reshape(-1, 3).astype(np.float32) / 255.0
    pick = rng.choice(side * side, size=min(n_points, side * side), replace=side * side < n_points)
    coord = hr_coords(side, side)[pick]
    cell = np.full_like(coord, 2.0 / side)
    return lr.transpose(2, 0, 1), coord, cell, hr[pick]


SHRINK_MAX = 2.5
"""The largest factor `shrink_p` shrinks a photo by before a crop is cut from it."""


def shrink(image: np.ndarray, factor: float) -> np.ndarray:
    """A uint8 photo made `factor` times smaller (Lanczos, which averages): denser, sharper detail per pixel
    than the photo has, as in sharper originals. At least 48 pixels a side."""
    h, w = image.shape[:2]
    size = (max(48, round(w / factor)), max(48, round(h / factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def make_batch(
    images: Sequence[np.ndarray],
    rng: np.random.Generator,
    batch_size: int,
    *,
    n_points: int = 2304,
    kernels: Sequence[str] = ("bicubic",),
    degrade_p: float = 0.0,
    shrink_p: float = 0.0,
    graphics_p: float = 0.0,
    text_p: float = 0.0,
) -> Batch:
    """A batch of samples from random photos; with probability `degrade_p` a sample's input is damaged,
    with probability `shrink_p` its photo is first shrunk by a factor from U(1, SHRINK_MAX), and with
    probability `graphics_p` a sample is cut from a synthetic drawing of shapes and text instead of a photo
    (`graphics.synthetic_graphic`), and with probability `text_p` from a page of small print
    (`graphics.text_page`). Each option draws from `rng` only when it is on, so batches made without it
    stay what they were."""
    parts = []
    for _ in range(batch_size):
        img = images[int(rng.integers(0, len(images)))]
        if text_p > 0 and rng.random() < text_p:
            img = text_page(rng)
        elif graphics_p > 0 and rng.random() < graphics_p:
            img = synthetic_graphic(rng)
        elif shrink_p > 0 and rng.random() < shrink_p:
            img = shrink(img, float(rng.uniform(1.0, SHRINK_MAX)))
        damaged = degrade_p > 0 and rng.random() < degrade_p
        parts.append(
            make_sample(
                img, rng, n_points=n_points, kernels=kernels, degrade=random_degrade if damaged else None
            )
        )
    lr, coord, cell, rgb = (np.stack(p) for p in zip(*parts, strict=True))
    return Batch(lr, coord, cell, rgb)


def random_queries(
    rng: np.random.Generator,
    batch: int,
    n: int,
    lr_size: int = 48,
    scale_range: tuple[float, float] = (1, 30),
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random coordinates with cells of random scales (for distillation): (B, n, 2) each."""
    coord = rng.uniform(-1.0, 1.0, size=(batch, n, 2)).astype(np.float32)
    scales = rng.uniform(scale_range[0], scale_range[1], size=(batch, n, 1))
    cell = np.repeat(2.0 / (lr_size * scales), 2, axis=2).astype(np.float32)
    return coord, cell


def make_cleanup_batch(
    images: Sequence[np.ndarray],
    rng: np.random.Generator,
    batch_size: int,
    *,
    lr_size: int = 64,
    scale_max: float = 4.0,
    scale_min: float = 1.0,
    degrade_p: float = 0.5,
    kernels: Sequence[str] = ("bicubic", "bilinear", "area"),
    damage: Degrader = random_degrade,
) -> CleanupBatch:
    """Damaged and clean low-resolution inputs, each (B, 3, lr_size, lr_size) in [0, 1] (recipe cleanup).

    `clean` is the bicubic shrink of a random HR crop (scale from U(scale_min, scale_max)), the input the official
    model was trained on. With probability `degrade_p` the input is shrunk with a random one of `kernels`
    and damaged (`damage`, default `random_degrade`); otherwise it is `clean` itself, so the network also
    learns to leave clean photos be.
    """
    damaged, clean, was_damaged = [], [], []
    for _ in range(batch_size):
        image = images[int(rng.integers(0, len(images)))]
        crop = random_hr_crop(image, rng, lr_size, scale_max, vertical_flip=False, scale_min=scale_min)
        target = downscale(crop, (lr_size, lr_size)).astype(np.float32) / 255.0
        inp = target
        was_damaged.append(rng.random() < degrade_p)
        if was_damaged[-1]:
            kernel = kernels[int(rng.integers(0, len(kernels)))]
            inp = damage(downscale(crop, (lr_size, lr_size), kernel).astype(np.float32) / 255.0, rng)
        damaged.append(inp.transpose(2, 0, 1))
        clean.append(target.transpose(2, 0, 1))
    return CleanupBatch(np.stack(damaged), np.stack(clean), np.array(was_damaged, dtype=bool))
