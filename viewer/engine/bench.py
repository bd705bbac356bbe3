"""`liif-viewer bench`: our query paths against the paper's reference formulation, measured in one run.

Every (case, path) runs in a fresh child process so that its peak memory is its own: the child loads the
model, encodes the photo, records its resident memory, then renders while a sampler thread tracks the
peak (on CUDA: `torch.cuda.max_memory_allocated`). The reference path is the official code's test-time
loop (whole-map unfold on every batch of 30,000 queries, four decoder calls); all paths render the same
output pixels with the same weights, so the printed ratios compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

CASES = {
    # name: (description, source crop side or None for the whole sample, output spec)
    "photo": "256x256 photo at x4 (1024x1024 output)",
    "viewport": "1280x800 viewport at 8x zoom",
    "viewport-hd": "1920x1080 viewport at 8x zoom",
}


@dataclass(frozen=True)
class Case:
    """What to render: a source image (a crop of the sample), a source rectangle and an output grid."""

    name: str
    crop: tuple[int, int, int, int]  # x, y, w, h of the sample used as the photo
    rect: tuple[float, float, float, float]
    out_w: int
    out_h: int
    rows: tuple[int, int]  # output rows actually rendered (all of them unless --quick)


def make_case(name: str, quick: bool, sample_w: int, sample_h: int) -> Case:
    if name == "photo":
        x0, y0 = (sample_w - 256) // 2, (sample_h - 256) // 2
        c = Case(name, (x0, y0, 256, 256), (0, 0, 256, 256), 1024, 1024, (0, 1024))
    elif name in ("viewport", "viewport-hd"):
        ow, oh = (1280, 800) if name == "viewport" else (1920, 1080)
        sw, sh = ow / 8, oh / 8
        rect = ((sample_w - sw) / 2, (sample_h - sh) / 2, sw, sh)
        c = Case(name, (0, 0, sample_w, sample_h), rect, ow, oh, (0, oh))
    else:
        raise ValueError(name)
    if quick:
        band = min(c.out_h, max(1, 120_000 // c.out_w))
        mid = (c.out_h - band) // 2
        c = Case(c.name, c.crop, c.rect, c.out_w, c.out_h, (mid, mid + band))
    return c


class _RssSampler:
    """Tracks the peak resident set size of this process in a background thread (Linux /proc)."""

    def __init__(self) -> None:
        self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(case_name: str, path: str, model_name: str, device: str, quick: bool) -> dict[str, Any]:
    """Run one measurement in this (fresh) process and return it."""
    import torch
    from PIL import Image

    from viewer.engine.render import Engine, SourceRect, pixel_grid
    from viewer.engine.weights import resolve_model_path
    from viewer.liif.checkpoint import load_model
    from viewer.liif.reference import query_rgb
    from viewer.paths import sample_photo

    with Image.open(sample_photo()) as im:
        sample = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if case_name == "encode":
        return _child_encode(sample, model_name, device, float(path))
    case = make_case(case_name, quick, sample.shape[1], sample.shape[0])
    x, y, w, h = case.crop
    photo = np.ascontiguousarray(sample[y : y + h, x : x + w])
    model = load_model(resolve_model_path(model_name))
    precision = "fp32" if path in ("reference", "fp32") else path
    engine = Engine(model, device, precision)
    fm = engine.encode(photo)
    rect = SourceRect(*case.rect)
    r0, r1 = case.rows
    window = (r0, 0, r1, case.out_w)
    dev = engine.device

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    if path == "reference":
        rows, cols, cell_np = pixel_grid(rect, case.out_w, case.out_h, fm.height, fm.width, window)
        grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(1, -1, 2)
        coord = torch.from_numpy(grid).to(dev)
        cell = torch.from_numpy(cell_np).to(dev).expand_as(coord).contiguous()
        feat = fm.feat.unsqueeze(0)

        def run() -> None:
            with torch.inference_mode():
                for s in range(0, coord.shape[1], 30000):
                    query_rgb(engine.model, feat, coord[:, s : s + 30000], cell[:, s : s + 30000]).cpu()

    else:

        def run() -> None:
            engine.render(fm, rect, case.out_w, case.out_h, window=window)

    if dev.type == "cuda":  # warm up kernels and the projection cache outside the timing
        run()
        sync()
        torch.cuda.reset_peak_memory_stats(dev)
    repeats = 10 if dev.type == "cuda" else 1
    base = _rss()
    times = []
    with _RssSampler() as sampler:
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            sync()
            times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    pixels = (r1 - r0) * case.out_w
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else max(0, sampler.peak - base)
    return {
        "case": case_name,
        "path": path,
        "precision": engine.precision if path != "reference" else "fp32",
        "device": str(dev),
        "seconds": seconds,
        "pixels": pixels,
        "mp_per_s": pixels / seconds / 1e6,
        "peak_bytes": int(peak),
        "threads": torch.get_num_threads(),
    }


def _child_encode(sample: np.ndarray, model_name: str, device: str, megapixels: float) -> dict[str, Any]:
    """Encode a photo of `megapixels` (the sample, resized up, 4:3) and report time and peak memory."""
    import torch
    from PIL import Image

    from viewer.engine.render import Engine
    from viewer.engine.weights import resolve_model_path
    from viewer.liif.checkpoint import load_model

    w = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = round(w * 3 / 4)
    big = Image.fromarray((sample * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    photo = np.asarray(big, dtype=np.float32) / 255.0
    del big
    engine = Engine(load_model(resolve_model_path(model_name)), device, "fp32")
    base = _rss()
    with _RssSampler() as sampler:
        t0 = time.perf_counter()
        fm = engine.encode(photo)
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        seconds = time.perf_counter() - t0
    return {
        "case": "encode",
        "pixels": w * h,
        "size": f"{w}x{h}",
        "tile": "{} x {}".format(*reversed(engine.encode_tiles(h, w, engine.blur_share(photo)))),
        "seconds": seconds,
        "peak_rss": sampler.peak,
        "rss_before": base,
        "feature_bytes": fm.feat.numel() * fm.feat.element_size(),
    }


def _run_child(case: str, path: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "viewer.engine.bench",
        "--child",
        case,
        path,
        "--model",
        args.model,
        "--device",
        args.device,
    ] + (["--quick"] if args.quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"benchmark child {case}/{path} failed: {tail[0]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _auto_path(device: str) -> str:
    from viewer.engine.device import dtype_name, resolve_device, resolve_precision

    dev = resolve_device(device)
    return dtype_name(resolve_precision("auto", dev))


def main(argv: list[str] | None = None) -> int:
    """Entry point for `liif-viewer bench` (and `python -m viewer.engine.bench`)."""
    parser = argparse.ArgumentParser(
        prog="liif-viewer bench",
        description=__doc__.splitlines()[0],
        epilog=OTHER_BENCHMARKS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.model, args.device, args.quick)))
        return 0
    return run(args)


OTHER_BENCHMARKS = """other benchmarks (each has its own --help):
  --gui         the real window, offscreen: first tile, full refine, repaints, event-loop latency
  --big         12 and 100 MP scans: the viewer and a region export, against the sample and a crop
  --decoders    decoder cost and speed, and the x8 CLI render, against the official model
  --startup     a small render's whole process, against `import torch`
  --batch       many photos in one run, against single exports' engine time
  --overlays    Inspect mode's overlays in one repaint, against a plain frame"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `bench`, shared with the CLI's subcommand."""
    from viewer.engine.weights import DEFAULT_MODEL

    parser.add_argument("--model", default=DEFAULT_MODEL, help="registry name or weights file")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--quick", action="store_true", help="render a central band of each output only")
    parser.add_argument("--cases", default=None, help="comma-separated subset of: " + ", ".join(CASES))
    parser.add_argument(
        "--encode-mp",
        type=float,
        default=None,
        metavar="MP",
        help="instead: encode a photo of MP megapixels and report the peak resident memory",
    )


def run(args: argparse.Namespace) -> int:
    """Measure every case and path, then print the table of throughput, peak memory and ratios."""
    from viewer.engine.device import resolve_device
    from viewer.engine.weights import resolve_model_path

    resolve_model_path(args.model)  # fail early with the catalog's message when weights are missing
    dev = resolve_device(args.device)
    if args.encode_mp:
        res = _run_child("encode", str(args.encode_mp), args)
        print(
            f"encode {res['size']} ({res['pixels'] / 1e6:.1f} MP) on {dev}, tiles of {res['tile']} px (w x h):"
        )
        print(
            f"  {res['seconds']:.1f} s; peak resident memory {res['peak_rss'] / 2**30:.2f} GiB "
            f"= {res['peak_rss'] / 1e9:.3f} GB "
            f"(process before encoding: {res['rss_before'] / 2**30:.2f} GiB, feature map "
            f"{res['feature_bytes'] / 2**30:.2f} GiB)"
        )
        return 0
    auto = _auto_path(args.device)
    paths = ["reference", "fp32"]
    reduced = ["bf16"] if dev.type == "cpu" else ["fp16", "bf16"]
    paths += [p for p in reduced if p not in paths]
    cases = (
        args.cases.split(",")
        if args.cases
        else (["photo", "viewport"] + (["viewport-hd"] if dev.type != "cpu" else []))
    )
    print(
        f"liif-viewer bench: model {args.model}, device {dev}, auto precision = {auto}"
        + (", quick (central band only)" if args.quick else "")
    )
    for case in cases:
        print(f"\n{case}: {CASES[case]}")
        print(f"  {'path':<12} {'pixels':>9} {'seconds':>9} {'MP/s':>8} {'peak MB':>8} {'x ref':>7}")
        ref_speed = None
        for path in paths:
            res = _run_child(case, path, args)
            speed, seconds = float(res["mp_per_s"]), float(res["seconds"])
            if path == "reference":
                ref_speed = speed
            ratio = f"{speed / ref_speed:6.2f}x" if ref_speed else "   -  "
            label = path + (" (auto)" if path == auto else "")
            peak_mb = float(res["peak_bytes"]) / 2**20
            print(
                f"  {label:<12} {res['pixels']:>9} {seconds:>9.3f} {speed:>8.4f} {peak_mb:>8.0f} {ratio:>7}",
                flush=True,
            )
            if dev.type != "cpu" and case == "viewport-hd" and path == auto:
                print(f"  -> 1920x1080 viewport with the {auto} path: {seconds * 1000:.1f} ms")
    print("\npeak MB: resident memory added during the render on CPU, or the peak CUDA allocation on a GPU.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
