"""`liif-viewer bench --big`: what a big scan costs, against references measured in the same run.

Generates a 12 MP and a 100 MP JPEG (the bundled sample enlarged, with grain so it compresses like a
scan; written to a temporary folder, or reused from --dir), then, each in a fresh child process so that
peak memory is its own:
- the viewer (`bench --gui`, offscreen, 1280x800): open, zoom to 400% at a seeded random spot, and time the
  first refined tile and the fully refined view; the bundled sample is the reference for the full view;
- a region export: 400x500 px at 4x5 in and 300 DPI from the big photo, against the same region saved as
  its own file with a 64 px margin (the reference), with the two outputs compared pixel by pixel;
- peak resident memory of each.
The disk cache is off throughout, so every tile is really encoded. `--blurred` makes the photos soft (a
Gaussian blur over the grain, as a blurry copy print), so a deblur model's photo gate runs its network on
them: the generated photos otherwise read sharp and measure the path that skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from viewer import hugepages

SIZES = {"12mp": (4000, 3000), "100mp": (11547, 8660)}
BLUR_RADIUS = 1.5
"""`--blurred`: the Gaussian blur's radius on the 12 MP photo, scaled with the width on the others (the same
softness of the same content). liif-deblur's photo gate reads the 12 MP one as 0.86 blurred (the sharp
one 0.14; the gate is fully open from 0.51)."""
REGION = (400, 500)
MARGIN = 64


def make_photo(path: Path, w: int, h: int, blur: float = 0.0) -> None:
    """The sample enlarged to w x h with seeded grain, then blurred by a Gaussian of radius `blur` (px) if
    given, saved as a quality-90 JPEG (never committed)."""
    from PIL import Image, ImageFilter

    from viewer import paths

    with Image.open(paths.sample_photo()) as src:
        big = np.asarray(src.convert("RGB").resize((w, h), Image.Resampling.BICUBIC)).copy()
    rng = np.random.default_rng(0)
    for y in range(0, h, 1000):
        band = big[y : y + 1000].astype(np.int16)
        band += rng.integers(-12, 13, band.shape, dtype=np.int16)
        big[y : y + 1000] = np.clip(band, 0, 255).astype(np.uint8)
    image = Image.fromarray(big)
    del big
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    image.save(path, quality=90)


def region_for(w: int, h: int) -> tuple[int, int, int, int]:
    """The 400x500 region: at 40% across and 27% down (1600,800 on a 4000x3000 photo)."""
    return int(w * 0.4), int(h * 0.2667), *REGION


def _child_export(photo: str, out: str, region: str, model: str) -> dict[str, Any]:
    """Child: the CLI's export of `region`, timed in-process; peak RSS of this process."""
    from viewer.cli import main as cli_main

    t0 = time.perf_counter()
    rc = cli_main(
        [
            "export",
            photo,
            "-o",
            out,
            "--region",
            region,
            "--print",
            "4x5in",
            "--dpi",
            "300",
            "--model",
            model,
            "--disk-cache",
            "0",
        ]
    )
    seconds = time.perf_counter() - t0
    return {
        "rc": rc,
        "seconds": seconds,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(cmd[:6])}… failed: {' / '.join(tail)}")
    return proc.stdout


def _export(photo: Path, out: Path, region: tuple[int, int, int, int], model: str) -> dict[str, Any]:
    # The child runs in the environment `liif-viewer export` would give itself: without glibc's huge pages
    # (inherited from this bench's own restart) where that command would not restart with them.
    cli = ["export", str(photo), "--model", model]
    env = hugepages.untuned_environment(os.environ) if hugepages.skips_restart(cli) else None
    text = _run(
        [
            sys.executable,
            "-m",
            "viewer.engine.bench_big",
            "--child-export",
            str(photo),
            str(out),
            ",".join(map(str, region)),
            model,
        ],
        env,
    )
    result: dict[str, Any] = json.loads(text.strip().splitlines()[-1])
    return result


def _gui(photo: Path, model: str, json_path: Path, cold: bool = True) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "viewer.app.bench_gui", "--photo", str(photo), "--zooms", "4"]
    cmd += ["--spot", "random:1", "--disk-cache", "0", "--json", str(json_path)]
    if cold:
        cmd.append("--cold")
    if model != "auto":
        cmd += ["--model", model]
    # As `liif-viewer PHOTO` would start with `model` remembered: without glibc's huge pages (inherited
    # from this bench's own restart) on a photo or with a model the viewer would not restart for.
    untuned = hugepages.big_photo_job([str(photo)]) or hugepages.light_decoder_job(
        ["bench", "--gui", "--model", model]
    )
    base = hugepages.untuned_environment(os.environ) if untuned else os.environ
    env = {**base, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the GUI benchmark failed on {photo.name}: {proc.stderr.strip()[-300:]}")
    result: dict[str, Any] = json.loads(json_path.read_text())
    return result


def _max_diff(a: Path, b: Path) -> int:
    from PIL import Image

    with Image.open(a) as x, Image.open(b) as y:
        return int(np.abs(np.asarray(x, np.int16) - np.asarray(y, np.int16)).max())


def run(args: argparse.Namespace) -> int:
    """Make (or reuse) the photos, measure, print the report."""
    from PIL import Image

    from viewer import paths

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="liif-bench-big-"))
    folder.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.sizes.split(",") if n.strip()]
    soft = " (blurred)" if args.blurred else ""
    print(
        f"liif-viewer bench --big: model {args.model} (the viewer's default when auto), photos{soft} in {folder}"
    )
    sample_view = _gui(paths.sample_photo(), args.model, folder / "gui-sample.json")
    ref_full = sample_view["zoom_steps"][0]["full_viewport_s"]
    warm_view = _gui(paths.sample_photo(), args.model, folder / "gui-sample-warm.json", cold=False)
    warm_full = warm_view["zoom_steps"][0]["full_viewport_s"]
    print(
        f"\nreference: the bundled sample (512x512), 1280x800 view at 400%, zoomed into with nothing "
        f"encoded (its tiles dropped after the view at fit was refined, as on a big photo): first tile "
        f"{sample_view['zoom_steps'][0]['first_tile_s']:.2f} s, full view {ref_full:.2f} s, "
        f"peak RSS {sample_view['peak_rss_bytes'] / 2**30:.2f} GiB; zoomed into after the view at fit "
        f"was refined (which encodes all of the sample): full view {warm_full:.2f} s"
    )
    for name in names:
        w, h = SIZES[name]
        photo = folder / (f"{name}-blurred.jpg" if args.blurred else f"{name}.jpg")
        if not photo.is_file():
            t0 = time.perf_counter()
            make_photo(photo, w, h, BLUR_RADIUS * w / SIZES["12mp"][0] if args.blurred else 0.0)
            print(
                f"\n{name}: made {photo.name} ({w}x{h}, {photo.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t0:.0f} s"
            )
        else:
            print(f"\n{name}: {photo.name} ({w}x{h})")
        view = _gui(photo, args.model, folder / f"gui-{photo.stem}.json")
        step = view["zoom_steps"][0]
        full = step["full_viewport_s"]
        print(
            f"  viewer, 400% at a random spot: open -> ready {view['open_to_encoded_s']:.2f} s; "
            f"first refined tile {step['first_tile_s']:.2f} s; full view {full:.2f} s "
            f"= {full / ref_full:.2f}x the sample's ({full / warm_full:.2f}x the sample's after its refine at "
            f"fit); peak RSS {view['peak_rss_bytes'] / 2**30:.2f} GiB"
        )
        x, y, rw, rh = region_for(w, h)
        crop = folder / f"{photo.stem}-region.png"
        with Image.open(photo) as im:
            im.crop((x - MARGIN, y - MARGIN, x + rw + MARGIN, y + rh + MARGIN)).save(crop)
        big = _export(photo, folder / f"{photo.stem}-out.png", (x, y, rw, rh), args.export_model)
        ref = _export(crop, folder / f"{photo.stem}-ref.png", (MARGIN, MARGIN, rw, rh), args.export_model)
        diff = _max_diff(folder / f"{photo.stem}-out.png", folder / f"{photo.stem}-ref.png")
        print(
            f"  region export {rw}x{rh} at {x},{y} -> 4x5 in at 300 DPI ({args.export_model}): "
            f"{big['seconds']:.2f} s, peak RSS {big['peak_rss'] / 2**30:.2f} GiB; the region as its own file: "
            f"{ref['seconds']:.2f} s, {ref['peak_rss'] / 2**30:.2f} GiB; ratio {big['seconds'] / ref['seconds']:.2f}x; "
            f"max pixel difference {diff}/255"
        )
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--big", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="auto", help="the viewer's model (default: auto, as the viewer)")
    p.add_argument(
        "--export-model", default="liif-lm", help="model for the region exports (default: liif-lm)"
    )
    p.add_argument("--sizes", default="12mp,100mp", help="photos to make: 12mp, 100mp (default: both)")
    p.add_argument(
        "--dir", default=None, help="folder for the photos (reused when present; default: a temp folder)"
    )
    p.add_argument(
        "--blurred",
        action="store_true",
        help="soft photos (a Gaussian blur over the grain), so a deblur model's photo gate runs its network",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="liif-viewer bench --big", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--child-export", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_export:
        print(json.dumps(_child_export(*args.child_export)))
        return 0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
