"""Derive the per-OS icon files from the app's own icon PNGs (drawn by `viewer.app.icon`).

    python packaging/make_icons.py [--source DIR] [--out DIR]

Reads `resources/icons/liif-viewer-*.png` and writes into `packaging/icons/`:
- `hicolor/NxN/apps/liif-viewer.png` for N in 16, 24, 32, 48, 64, 128, 256, 512 (the freedesktop icon
  theme layout that `install-linux.sh` copies to `share/icons/hicolor`);
- `liif-viewer.ico` (Windows; 16 to 256 px in one file) and `liif-viewer.icns` (macOS; 16 to 1024 px).

A size the source folder has exactly (a hand-tuned small icon) is copied; other sizes are resized with
Lanczos from the smallest source that is at least as large. Only Pillow is needed, so the .icns is made
on any OS. The outputs are deterministic, so they can be committed and rebuilt without churn.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NAME = "liif-viewer"
HICOLOR_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def load_sources(folder: Path) -> dict[int, Image.Image]:
    """The square RGBA icons in `folder`, keyed by size; the size comes from the pixels, not the name."""
    out: dict[int, Image.Image] = {}
    for f in sorted(folder.glob(f"{NAME}-*.png")):
        if not re.fullmatch(rf"{NAME}-\d+(x\d+)?\.png", f.name):
            continue
        with Image.open(f) as im:
            im.load()
            if im.width != im.height:
                raise SystemExit(f"{f}: icons must be square, this one is {im.width}x{im.height}")
            out[im.width] = im.convert("RGBA")
    if not out:
        raise SystemExit(
            f"no {NAME}-*.png icons in {folder}; draw them first (viewer/app/icon.py writes resources/icons)"
        )
    return out


def icon_at(sources: dict[int, Image.Image], size: int) -> Image.Image:
    """The icon at `size` px: an exact source, else a Lanczos resize of the next larger (or the largest)."""
    if size in sources:
        return sources[size].copy()
    larger = [s for s in sorted(sources) if s >= size]
    base = sources[larger[0] if larger else max(sources)]
    return base.resize((size, size), Image.Resampling.LANCZOS)


def write_all(sources: dict[int, Image.Image], out: Path) -> list[Path]:
    """Write the hicolor PNGs, the .ico and the .icns; returns the files written."""
    written: list[Path] = []
    for n in HICOLOR_SIZES:
        target = out / "hicolor" / f"{n}x{n}" / "apps" / f"{NAME}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        icon_at(sources, n).save(target, optimize=True)
        written.append(target)
    largest = icon_at(sources, max(max(sources), 256))
    ico = out / f"{NAME}.ico"
    largest.save(ico, sizes=[(n, n) for n in ICO_SIZES], bitmap_format="png")
    written.append(ico)
    icns = out / f"{NAME}.icns"
    big = icon_at(sources, 1024)
    big.save(icns, append_images=[icon_at(sources, n) for n in ICNS_SIZES if n < 1024])
    written.append(icns)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT / "resources" / "icons")
    parser.add_argument("--out", type=Path, default=ROOT / "packaging" / "icons")
    args = parser.parse_args(argv)
    sources = load_sources(args.source)
    for f in write_all(sources, args.out):
        print(f"{f.relative_to(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
