"""`liif-viewer bench --decoders`: what each decoder costs, against the official model in the same run.

Three measurements, every one a ratio against the official model measured alongside it:
- **cost**: decoder multiply-adds per output pixel at x4, from each model's spec (`viewer.liif.cost`): the
  official model as its paper runs it, the others as this program runs them, the per-latent part shared by
  the 16 output pixels of a source pixel;
- **engine decode**: the 1280x800 view of the bundled sample at 8x zoom (160x100 source pixels), rendered
  from features encoded beforehand (all these models read the official encoder's features), so the time is
  the decoder's alone, per-latent work included. Each (model, precision) renders from a fresh feature map
  (empty caches), in an order that rotates every round; medians over the rounds;
- **CLI render** (`--cli`): `liif-viewer render --scale 8` of the sample resized to 320 px (320 -> 2560
  px), whole fresh processes with an empty feature cache each, as a person runs it; medians. Timed in the
  same rotation, a floor that the model's x8 render cannot go below: its render of the same photo at
  `--scale FLOOR_SCALE` (start-up, weights, the whole encoding and per-latent work, 2% of the x8 render's
  per-pixel decode, a small file). Beside
  it the report prints the time a render must take to be `GOAL_SOONER` times sooner than the official
  model's and what that leaves for the x8 decode and its 2560 px file (on an AMX CPU the official
  decoder's wide layers run fast, so that can be next to nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

VIEW = (1280, 800)
ZOOM = 8
CLI_EDGE = 320
CLI_SCALE = 8
FLOOR_SCALE = 1.1
"""The floor's scale: the model runs (at 1.0 or less `render` resamples the photo without it), on few pixels."""
GOAL_SOONER = 8
"""The x8 render's goal: this many times sooner than the official model's, whole process."""
REFERENCE = ("edsr-baseline-liif", "fp32")
"""The official model in fp32: what every ratio is against."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="liif-viewer bench --decoders", description="decoder cost and speed against the official model"
    )
    p.add_argument("--decoders", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--model",
        default="liif-lm",
        help="comma-separated registry names or weights files to compare (default: liif-lm)",
    )
    p.add_argument("--rounds", type=int, default=3, help="timed rounds of each (default 3)")
    p.add_argument("--cli", action="store_true", help="also time whole-process x8 CLI renders")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def _label(model: str) -> str:
    return Path(model).stem if model.endswith(".safetensors") else model


def _view_rect(h: int, w: int) -> Any:
    from viewer.engine.render import SourceRect

    sw, sh = VIEW[0] / ZOOM, VIEW[1] / ZOOM
    return SourceRect((w - sw) / 2, (h - sh) / 2, sw, sh)


def decode_times(models: Sequence[str], rounds: int) -> list[dict[str, Any]]:
    """Median seconds to render the 8x view from encoded features, per (model, precision)."""
    from viewer import paths
    from viewer.engine.features import FeatureMap
    from viewer.engine.imageio import load_image
    from viewer.engine.render import Engine
    from viewer.liif.cost import decoder_cost

    pixels = load_image(paths.sample_photo()).pixels
    h, w = pixels.shape[:2]
    rect = _view_rect(h, w)
    # Only the latents the view reads (plus the unfold's ring): the decoder's work, not the encoder's.
    y0, y1 = int(rect.y) - 2, int(rect.y + rect.h) + 3
    x0, x1 = int(rect.x) - 2, int(rect.x + rect.w) + 3
    variants: list[tuple[str, str, Engine]] = []
    for name in [REFERENCE[0], *models]:
        for precision in ("fp32", "auto"):
            engine = Engine.from_name(name, "cpu", precision)
            if name == REFERENCE[0] and precision == "auto" and engine.precision == "fp32":
                continue
            variants.append((name, precision, engine))
    encoded: dict[str, Any] = {}  # one encode per distinct encoder (all of these share the official one)
    for _, _, engine in variants:
        if engine.model_key not in encoded:
            encoded[engine.model_key] = engine.encode(pixels[max(0, y0) : y1, max(0, x0) : x1]).feat
    sub = type(rect)(rect.x - max(0, x0), rect.y - max(0, y0), rect.w, rect.h)
    times: dict[int, list[float]] = {i: [] for i in range(len(variants))}
    order = list(range(len(variants)))
    for i in order:  # one untimed warm-up each
        name, _, engine = variants[i]
        engine.render(FeatureMap(encoded[engine.model_key].clone()), sub, *VIEW)
    for r in range(rounds):
        for i in order[r % len(order) :] + order[: r % len(order)]:
            engine = variants[i][2]
            fm = FeatureMap(encoded[engine.model_key].clone())
            t0 = time.perf_counter()
            engine.render(fm, sub, *VIEW)
            times[i].append(time.perf_counter() - t0)
    out = []
    for i, (name, precision, engine) in enumerate(variants):
        cost = decoder_cost(engine.model.spec)
        out.append(
            {
                "model": _label(name),
                "precision": engine.precision,
                "asked": precision,
                "seconds": statistics.median(times[i]),
                "all_seconds": times[i],
                "macs_x4": cost.paper_per_pixel if name == REFERENCE[0] else cost.per_pixel_at(4),
            }
        )
    return out


def cli_times(models: Sequence[str], rounds: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Median whole-process seconds of `liif-viewer render --scale 8` of a 320 px photo, per model (the
    reference first), and of the floors (each model at `--scale FLOOR_SCALE`), all in one rotation."""
    from viewer.engine.bench_startup import Variant, make_photo, run_once

    with tempfile.TemporaryDirectory(prefix="liif-bench-decoders-") as d:
        tmp = Path(d)
        src = make_photo(tmp / "in.png", CLI_EDGE)
        renders: list[Any] = []
        floors: list[Any] = []
        for name in [REFERENCE[0], *models]:
            for scale, group in ((CLI_SCALE, renders), (FLOOR_SCALE, floors)):
                if group is floors and name == REFERENCE[0]:
                    continue
                label = _label(name) if group is renders else f"{_label(name)} at --scale {scale}"
                out = tmp / f"{_label(name)}-x{scale}.png"
                argv = [sys.executable, "-m", "viewer.entry", "render", str(src), "-o", str(out)]
                argv += ["--scale", str(scale), "--model", name]
                group.append(Variant(label, argv, output=out, key=f"{_label(name)}-x{scale}"))
        found = renders + floors
        for v in found:  # warm-up: files in the page cache
            run_once(v, Path.cwd(), tmp / f"cache-warm-{v.key}")
        for r in range(rounds):
            for k in range(len(found)):
                v = found[(k + r) % len(found)]
                wall, cpu = run_once(v, Path.cwd(), tmp / f"cache-{v.key}-{r}")
                v.walls.append(wall)
                v.cpus.append(cpu)
        return [v.summary() for v in renders], [v.summary() for v in floors]


def report(
    decode: list[dict[str, Any]], cli: list[dict[str, Any]] | None, floors: list[dict[str, Any]] | None = None
) -> str:
    """The printed table: every figure with its ratio against the official model in fp32."""
    ref = decode[0]
    lines = [
        f"engine decode: the {VIEW[0]}x{VIEW[1]} view of the sample at {ZOOM}x zoom, from encoded features "
        "(median of the rounds)",
        f"{'model':<28}{'precision':>10}{'seconds':>10}{'x official fp32':>17}{'MACs/px at x4':>16}{'x fewer':>9}",
    ]
    for row in decode:
        lines.append(
            f"{row['model']:<28}{row['precision']:>10}{row['seconds']:>10.3f}"
            f"{ref['seconds'] / row['seconds']:>16.1f}x{row['macs_x4']:>16,.0f}"
            f"{ref['macs_x4'] / row['macs_x4']:>8.1f}x"
        )
    if cli:
        base = cli[0]["wall_median_s"]
        lines.append("")
        lines.append(
            f"CLI render, whole process: {CLI_EDGE} px -> {CLI_EDGE * CLI_SCALE} px (--scale {CLI_SCALE}), "
            "precision auto, median wall time"
        )
        for row in cli:
            lines.append(
                f"{row['name']:<28}{row['wall_median_s']:>10.2f} s{base / row['wall_median_s']:>10.1f}x sooner"
                f"   (CPU {row['cpu_median_s']:.2f} s)"
            )
    if cli and floors:
        budget = cli[0]["wall_median_s"] / GOAL_SOONER
        lines.append(
            f"a render {GOAL_SOONER}x sooner than {cli[0]['name']} takes at most {budget:.2f} s; "
            f"the floor, in the same rotation, leaves for the x{CLI_SCALE} decode and its file:"
        )
        for row in floors:
            lines.append(
                f"{row['name']:<28}{row['wall_median_s']:>10.2f} s   leaves {budget - row['wall_median_s']:.2f} s"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the decoder benchmark and print its table."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    from viewer.errors import ArgumentError

    if args.rounds < 1:
        raise ArgumentError("--rounds must be at least 1")
    models = [m.strip() for m in args.model.split(",") if m.strip() and m.strip() != REFERENCE[0]]
    decode = decode_times(models, args.rounds)
    cli, floors = cli_times(models, args.rounds) if args.cli else (None, None)
    print(report(decode, cli, floors), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"decode": decode, "cli": cli, "floors": floors}, indent=1))
    return 0
