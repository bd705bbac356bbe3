"""`liif-viewer bench --batch`: a batch with the model loaded once, against the same photos exported one by one.

Makes a few photos from the bundled sample (different sizes and orientations, in a temporary folder),
then alternates, round after round (the order flips each round so a machine that slows down during the
run weighs on both alike):
- singles: each photo as one `export` command does it, with a newly loaded engine each time; the photo's
  engine time is load + plan + lazy feature store + `run_export` (what `_render_and_write` times after the
  model has loaded), and the model load is timed apart;
- batch: `run_batch` over the folder into an empty output folder with one `LocalExecutor`, timed whole:
  the one model load, reading every header, the renders, the log.
It reports the batch's wall time over the sum of the singles' engine time (the goal: at most 1.10), the
same in CPU time of this process (steadier on a machine that other work shares), what the singles cost
with their model loads, and checks that both give the same pixels.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Source photos (w, h): landscape, portrait, square, panorama.
DEFAULT_SIZES = "240x180,180x240,200x200,280x160"


def make_photos(folder: Path, sizes: list[tuple[int, int]]) -> list[Path]:
    """The sample resized to each size (as JPEGs of quality 92), into `folder`."""
    from PIL import Image

    from viewer import paths

    out = []
    with Image.open(paths.sample_photo()) as src:
        rgb = src.convert("RGB")
        for i, (w, h) in enumerate(sizes):
            p = folder / f"photo{i + 1}.jpg"
            rgb.resize((w, h), Image.Resampling.BICUBIC).save(p, quality=92)
            out.append(p)
    return out


def _sizes(text: str) -> list[tuple[int, int]]:
    from viewer.engine.printsize import parse_pixel_size

    return [tuple(parse_pixel_size(s.strip())) for s in text.split(",") if s.strip()]  # type: ignore[misc]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from viewer.engine.batch import BatchOptions, LocalExecutor, Scale, find_jobs, render_photo, run_batch
    from viewer.engine.render import Engine

    options = BatchOptions(Scale(float(args.scale)))
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="liif-bench-batch-") as tmp:
        src = Path(tmp) / "photos"
        src.mkdir()
        photos = make_photos(src, _sizes(args.sizes))
        for r in range(args.rounds):
            singles_dir = Path(tmp) / f"singles{r}"
            singles_dir.mkdir()
            batch_dir = Path(tmp) / f"batch{r}"

            def singles(out_dir: Path = singles_dir) -> dict[str, Any]:
                loads, engine_times, cpu = [], [], []
                for p in photos:
                    t0 = time.perf_counter()
                    engine = Engine.from_name(args.model, device=args.device, precision=args.precision)
                    t1, c1 = time.perf_counter(), time.process_time()
                    render_photo(engine, p, out_dir / p.name, options)
                    t2, c2 = time.perf_counter(), time.process_time()
                    loads.append(t1 - t0)
                    engine_times.append(t2 - t1)
                    cpu.append(c2 - c1)
                    del engine
                return {"loads": loads, "engine": engine_times, "cpu": cpu}

            def batch(out_dir: Path = batch_dir) -> dict[str, Any]:
                t0, c0 = time.perf_counter(), time.process_time()
                jobs = find_jobs([src], out_dir)
                out_dir.mkdir()

                def load() -> Engine:
                    return Engine.from_name(args.model, device=args.device, precision=args.precision)

                executor = LocalExecutor(load, args.model)
                summary = run_batch(jobs, options, out_dir, executor)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if summary.failed or summary.count("ok") != len(photos):
                    raise RuntimeError(f"the batch did not export every photo: {summary.line()}")
                return {"wall": wall, "cpu": cpu, "load": executor.load_seconds}

            if r % 2 == 0:
                one, many = singles(), batch()
            else:
                many, one = batch(), singles()
            same = all(_same(singles_dir / p.name, batch_dir / p.name) for p in photos)
            rounds.append(
                {
                    "single_engine_s": sum(one["engine"]),
                    "single_loads_s": sum(one["loads"]),
                    "batch_wall_s": many["wall"],
                    "batch_load_s": many["load"],
                    "ratio": many["wall"] / sum(one["engine"]),
                    "single_engine_cpu_s": sum(one["cpu"]),
                    "batch_cpu_s": many["cpu"],
                    "cpu_ratio": many["cpu"] / sum(one["cpu"]),
                    "same_pixels": same,
                }
            )
            if not args.json:
                _print_round(r + 1, rounds[-1], len(photos))
    ratios = [x["ratio"] for x in rounds]
    cpu_ratios = [x["cpu_ratio"] for x in rounds]
    return {
        "model": args.model,
        "photos": len(photos),
        "sizes": args.sizes,
        "scale": args.scale,
        "threads": args.threads or "torch default",
        "rounds": rounds,
        "ratio_median": statistics.median(ratios),
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "goal_met": statistics.median(ratios) <= 1.10,
    }


def _same(a: Path, b: Path) -> bool:
    from PIL import Image

    with Image.open(a) as x, Image.open(b) as y:
        return bool(np.array_equal(np.asarray(x), np.asarray(y)))


def _print_round(n: int, r: dict[str, Any], photos: int) -> None:
    print(
        f"round {n}: {photos} single exports: engine {r['single_engine_s']:.2f} s (+ {r['single_loads_s']:.2f} s "
        f"loading the model {photos} times); batch: {r['batch_wall_s']:.2f} s in all, model loaded once "
        f"in {r['batch_load_s']:.2f} s; batch / singles' engine time = {r['ratio']:.3f} "
        f"(CPU time: {r['batch_cpu_s']:.2f} / {r['single_engine_cpu_s']:.2f} s = {r['cpu_ratio']:.3f}); "
        f"same pixels: {'yes' if r['same_pixels'] else 'NO'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="liif-viewer bench --batch", description=__doc__.splitlines()[0])
    p.add_argument("--batch", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="liif-lm", help="registry name or weights file (default: liif-lm)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"source photos, WxH,... (default {DEFAULT_SIZES})")
    p.add_argument("--scale", default="2", help="magnification of each photo (default 2)")
    p.add_argument(
        "--rounds", type=int, default=2, help="rounds of singles and batch, alternating (default 2)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default: torch's own); 1 makes CPU time a steadier measure on a shared machine, "
        "where waiting threads spin",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        verdict = "met" if result["goal_met"] else "NOT met"
        print(
            f"median over {len(result['rounds'])} rounds: batch / singles' engine time = "
            f"{result['ratio_median']:.3f} (goal: at most 1.10, {verdict}); in CPU time "
            f"{result['cpu_ratio_median']:.3f}"
        )
    return 0
