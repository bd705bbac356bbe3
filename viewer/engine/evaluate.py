"""PSNR evaluation with the LIIF paper's benchmark protocol.

PSNR on the Y channel (Y = (65.738 R + 129.057 G + 25.064 B) / 256, RGB in [0, 1]), `scale` pixels shaved at
each border, model input the MATLAB-bicubic `_LR.png`, output the size of `_HR.png`, no quantisation of the
prediction (as LIIF's `utils.calc_psnr`). For scales above 4 there are no published LR images: the x4 HR is
cropped to a multiple of the scale and downscaled with Pillow's bicubic, which is not MATLAB's `imresize`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from viewer.engine.cancel import CancelToken, check
from viewer.errors import ArgumentError

SETS = ("Set5", "Set14", "BSD100")
_Y = np.array([65.738, 129.057, 25.064], dtype=np.float64) / 256.0


def default_benchmark_root() -> Path:
    """`LIIF_VIEWER_BENCHMARK`, else `../shared/data/benchmark` beside the source checkout or the cwd."""
    env = os.environ.get("LIIF_VIEWER_BENCHMARK")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]
    for base in (here, Path.cwd()):
        cand = base.parent / "shared" / "data" / "benchmark"
        if cand.is_dir():
            return cand
    return here.parent / "shared" / "data" / "benchmark"


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int) -> float:
    """PSNR (dB) of the Y channel between two (H, W, 3) images in [0, 1], shaving `shave` border pixels."""
    diff = (sr.astype(np.float64) - hr.astype(np.float64)) @ _Y
    if shave > 0:
        diff = diff[shave:-shave, shave:-shave]
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Pair:
    """One benchmark image: the model input and the ground truth, both (H, W, 3) float32 in [0, 1]."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


def load_pairs(set_name: str, scale: int, root: Path | None = None) -> list[Pair]:
    """The (LR, HR) pairs of a benchmark set at an integer scale."""
    if set_name not in SETS:
        raise ArgumentError(f"unknown benchmark set '{set_name}'; use one of {', '.join(SETS)}")
    base = (root or default_benchmark_root()) / set_name
    if not base.is_dir():
        raise ArgumentError(f"benchmark set not found at {base} (set LIIF_VIEWER_BENCHMARK)")
    pairs = []
    if scale in (2, 3, 4):
        for hr_path in sorted((base / f"image_SRF_{scale}").glob("*_HR.png")):
            lr_path = hr_path.with_name(hr_path.name.replace("_HR.png", "_LR.png"))
            pairs.append(Pair(hr_path.stem[: -len("_HR")], _read(lr_path), _read(hr_path)))
    else:
        for hr_path in sorted((base / "image_SRF_4").glob("*_HR.png")):
            hr = _read(hr_path)
            h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
            hr = hr[:h, :w]
            img = Image.fromarray((hr * 255).round().astype(np.uint8))
            lr = np.asarray(img.resize((w // scale, h // scale), Image.Resampling.BICUBIC), np.float32) / 255
            pairs.append(Pair(hr_path.stem[: -len("_HR")], lr, hr))
    if not pairs:
        raise ArgumentError(f"no images for {set_name} x{scale} under {base}")
    return pairs


def bicubic_upscale(lr: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Pillow bicubic upscaling of a float image, per channel in float32 (no 8-bit rounding)."""
    chans = [
        np.asarray(
            Image.fromarray(lr[..., c].astype(np.float32), mode="F").resize(
                (out_w, out_h), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.clip(np.stack(chans, axis=-1), 0, 1)


def evaluate(
    engine: object,
    set_name: str,
    scale: int,
    *,
    root: Path | None = None,
    cancel: CancelToken | None = None,
    degraded: bool = False,
    features: str = "dense",
    blurred: bool = False,
) -> float:
    """Mean PSNR-Y of `engine` (an `Engine`, or None for bicubic) over a set at `scale`.

    With `degraded`, each input first goes through the fixed recipe `degrade.BENCHMARK_RECIPE`; with
    `blurred`, through `degrade.BLUR_RECIPE` (blur-v1).
    `features` says how the latents are held: "dense" (one whole fp32 map, the paper's way), or "fp16" /
    "fp32" (the viewer's lazy tiled store, tiles kept in that precision).
    """
    from viewer.engine.degrade import benchmark_blur, benchmark_degrade
    from viewer.engine.render import Engine, Latents

    vals = []
    for index, pair in enumerate(load_pairs(set_name, scale, root)):
        check(cancel)
        h, w = pair.hr.shape[:2]
        lr = benchmark_degrade(pair.lr, index) if degraded else pair.lr
        lr = benchmark_blur(lr, index) if blurred else lr
        if engine is None:
            sr = bicubic_upscale(lr, w, h)
        else:
            assert isinstance(engine, Engine)
            if features == "dense":
                fm: Latents = engine.encode(lr, cancel=cancel)
            else:
                import torch

                fm = engine.open_store(lr, dtype=torch.float16 if features == "fp16" else torch.float32)
            sr = engine.render_scale(fm, w, h, cancel=cancel)
        vals.append(psnr_y(sr, pair.hr, scale))
    return float(np.mean(vals))


def add_arguments(parser: object) -> None:
    """Options of `liif-viewer eval`."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    parser.add_argument(
        "--model", default="edsr-baseline-liif", help="registry names or weights files, comma-separated"
    )
    parser.add_argument("--set", default="Set5", help="comma-separated: Set5, Set14, BSD100")
    parser.add_argument("--scales", default="2,3,4", help="comma-separated integer scales, e.g. 2,3,4,6,8,12")
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32, bf16, fp16, auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default=None, help="benchmark folder (default: ../shared/data/benchmark)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the bicubic and official columns")
    parser.add_argument(
        "--degraded",
        action="store_true",
        help="damage each input with the fixed recipe degraded-v1 (noise sigma 5/255, then JPEG q60)",
    )
    parser.add_argument(
        "--blurred",
        action="store_true",
        help="blur each input with the fixed recipe blur-v1 (motion, defocus or Gaussian blur by image, "
        "then noise sigma 2/255 and JPEG q80)",
    )
    parser.add_argument(
        "--features",
        default="dense",
        help="comma-separated: dense (one fp32 feature map, as the paper), fp16 or fp32 (the viewer's lazy "
        "tiled store with tiles kept in that precision); default dense",
    )


def cmd_eval(args: object) -> int:
    """Print the PSNR table (paper protocol) of a model, with bicubic and the official model beside it."""
    import time

    from viewer.engine.render import Engine
    from viewer.engine.weights import DEFAULT_MODEL

    ns = vars(args)
    sets = [s.strip() for s in str(ns["set"]).split(",") if s.strip()]
    try:
        scales = [int(s) for s in str(ns["scales"]).split(",") if s.strip()]
    except ValueError:
        raise ArgumentError(f"--scales must be integers, got '{ns['scales']}'") from None
    if any(s < 1 for s in scales):
        raise ArgumentError("--scales must be positive integers")
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise ArgumentError(f"unknown benchmark set '{unknown[0]}'; use one of {', '.join(SETS)}")
    precisions = [p.strip() for p in str(ns["precision"]).split(",") if p.strip()]
    root = Path(ns["data"]) if ns.get("data") else None
    models = [m.strip() for m in str(ns["model"]).split(",") if m.strip()]
    features = [f.strip() for f in str(ns.get("features") or "dense").split(",") if f.strip()]
    bad = [f for f in features if f not in ("dense", "fp16", "fp32")]
    if bad:
        raise ArgumentError(f"unknown --features '{bad[0]}'; use dense, fp16 or fp32")
    engines = [
        (f"{m} {p}" + ("" if f == "dense" else f" {f} tiles"), Engine.from_name(m, str(ns["device"]), p), f)
        for m in models
        for p in precisions
        for f in features
    ]
    baselines = not ns.get("no_baselines")
    degraded = bool(ns.get("degraded"))
    blurred = bool(ns.get("blurred"))
    official = None
    if baselines and DEFAULT_MODEL not in models:
        official = Engine.from_name(DEFAULT_MODEL, str(ns["device"]), "fp32")
    cols = [label for label, _, _ in engines]
    if baselines:
        cols += ["bicubic"] + (["official fp32"] if official else [])
    inputs = "degraded-v1 (noise sigma 5/255, then JPEG q60)" if degraded else "clean"
    if blurred:
        inputs = ("degraded-v1, then " if degraded else "") + "blur-v1 (see degrade.BLUR_RECIPE)"
    print(f"PSNR-Y (dB), shave = scale; inputs {inputs}; device {engines[0][1].device}")
    width = max(22, *(len(c) for c in cols))
    print(f"{'set':<8}{'scale':>6}  " + "  ".join(f"{c:>{width}}" for c in cols))
    for set_name in sets:
        for scale in scales:
            t0 = time.perf_counter()
            vals = [
                evaluate(e, set_name, scale, root=root, degraded=degraded, features=f, blurred=blurred)
                for _, e, f in engines
            ]
            if baselines:
                vals.append(evaluate(None, set_name, scale, root=root, degraded=degraded, blurred=blurred))
                if official is not None:
                    vals.append(
                        evaluate(official, set_name, scale, root=root, degraded=degraded, blurred=blurred)
                    )
            cells = "  ".join(f"{v:>{width}.4f}" for v in vals)
            print(
                f"{set_name:<8}{'x' + str(scale):>6}  {cells}   ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return 0
