"""`liif-viewer bench --overlays`: what Inspect mode's overlays cost a repaint, against a plain frame.

Inspect mode paints its overlays on the GUI thread, on every repaint, from plain data (numpy arrays and a
`Probe` of floats): no model, no torch. This times one repaint of a 1280x800 canvas with all of them on at
once (the PCA feature image and the difference heatmap at 60%, the latent lattice at 8 screen px per source
px, i.e. 160 x 100 cells, the probe's ensemble lines and the confidence badge), against the reference
measured in the same run, interleaved: the canvas's own repaint of settled tiles, one 1280x800 blit.
The goal is the viewer's frame budget, 16 ms, for the two together. The report also says whether painting
imported torch (it must not: the paint path never reaches the model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from viewer.engine.inspect import MEMBER_NAMES, Probe, ProbeMember

FRAME_BUDGET_MS = 16.0
"""A repaint at 60 Hz: the viewer's budget for everything painted in one frame."""
WARMUP = 3
"""Repaints not timed: the first ones build the layers' pixmaps and Qt's caches."""
SOURCE = (2000, 1500)
"""The photo's size in source pixels (the PCA image covers it all)."""
SCREEN_PER_SOURCE = 8
"""Screen pixels per source pixel: the lattice's threshold, where it is densest."""

RGB = tuple[float, float, float]


def sample_probe(x: float = 10.3, y: float = 6.8, cell: float = 0.125) -> Probe:
    """A probe of plain values at (x, y), shaped as the engine makes one (no engine involved)."""
    cx, cy = int(x - 0.5), int(y - 0.5)
    members = []
    areas = []
    for k, (di, dj) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        i, j = cy + di, cx + dj
        dx, dy = x - (j + 0.5), y - (i + 0.5)
        areas.append(abs(dx * dy))
        members.append((MEMBER_NAMES[k], (i, j), (j + 0.5, i + 0.5), (2 * dy, 2 * dx), (dx, dy)))
    weights = [a / sum(areas) for a in areas[::-1]]
    rgbs = [(0.9, 0.2, 0.1), (0.2, 0.8, 0.3), (0.1, 0.3, 1.05), (0.5, 0.5, -0.02)]
    ms = tuple(
        ProbeMember(
            n,
            idx,
            c,
            rel,
            off,
            w,
            cast(RGB, tuple(2 * v - 1 for v in rgb)),
            rgb,
            cast(RGB, tuple(min(1, max(0, v)) for v in rgb)),
        )
        for (n, idx, c, rel, off), w, rgb in zip(members, weights, rgbs, strict=True)
    )
    blend = tuple(sum(m.rgb[ch] * m.weight for m in ms) for ch in range(3))
    return Probe(
        x, y, (cell, cell), (-0.3, 0.2), (cell / 10, cell / 20), (cell * 2, cell * 2), True, True, (40, 20),
        ms, tuple(2 * v - 1 for v in blend), blend, tuple(min(1, max(0, v)) for v in blend),  # type: ignore[arg-type]
    )  # fmt: skip


def measure(rounds: int, size: tuple[int, int] = (1280, 800)) -> dict[str, Any]:
    """Time `rounds` repaints of the overlays and of the plain frame, interleaved; needs a QApplication."""
    from PySide6.QtCore import QPointF, QRectF
    from PySide6.QtGui import QColor, QImage, QPainter

    from viewer.app import overlays as ov
    from viewer.engine.inspect import difference_heatmap, lattice_lines

    w, h = size
    vw, vh = w / SCREEN_PER_SOURCE, h / SCREEN_PER_SOURCE
    view = (SOURCE[0] / 2 - vw / 2, SOURCE[1] / 2 - vh / 2, vw, vh)
    rng = np.random.default_rng(0)
    pca = ov.ImageLayer(rng.integers(0, 255, (SOURCE[1], SOURCE[0], 3), dtype=np.uint8), (0, 0, *SOURCE))
    heat = ov.ImageLayer(difference_heatmap(rng.random((h, w, 3)), rng.random((h, w, 3))), view, smooth=True)
    canvas = QRectF(0, 0, w, h)
    lattice = lattice_lines(view, w, h, bounds=SOURCE)
    probe = sample_probe(view[0] + vw / 3 + 0.3, view[1] + vh / 2 + 0.6)

    def to_screen(x: float, y: float) -> QPointF:
        return QPointF((x - view[0]) * SCREEN_PER_SOURCE, (y - view[1]) * SCREEN_PER_SOURCE)

    frame = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    frame.fill(QColor(90, 120, 60))
    target = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    background = QColor(40, 40, 40)
    overlay_ms: list[float] = []
    frame_ms: list[float] = []
    for k in range(rounds + WARMUP):
        target.fill(background)
        t0 = time.perf_counter()
        p = QPainter(target)
        p.drawImage(0, 0, frame)
        p.end()
        t1 = time.perf_counter()
        p = QPainter(target)
        ov.paint_layer(p, pca, view, canvas, 0.6)
        ov.paint_layer(p, heat, view, canvas, 0.6)
        ov.paint_lattice(p, lattice, QPointF(0, 0))
        ov.paint_probe(p, probe, to_screen)
        ov.paint_confidence_cue(p, canvas, float(SCREEN_PER_SOURCE))
        p.end()
        t2 = time.perf_counter()
        if k >= WARMUP:
            frame_ms.append((t1 - t0) * 1000)
            overlay_ms.append((t2 - t1) * 1000)
    # What the last repaint left: the share of pixels that are not the plain frame (the overlays drew).
    last = target.convertToFormat(QImage.Format.Format_RGB888)
    bpl = last.bytesPerLine()
    pixels = np.frombuffer(last.constBits(), np.uint8).reshape(h, bpl)[:, : w * 3].reshape(h, w, 3)
    changed = float(np.mean(np.any(pixels != np.array([90, 120, 60], np.uint8), axis=2)))
    overlays, plain = statistics.median(overlay_ms), statistics.median(frame_ms)
    return {
        "size": [w, h],
        "rounds": rounds,
        "lattice_cells": [int(lattice.centre_xs.size), int(lattice.centre_ys.size)],
        "overlays_ms": overlays,
        "overlays_p95_ms": float(np.percentile(overlay_ms, 95)),
        "frame_ms": plain,
        "ratio": overlays / plain if plain > 0 else float("inf"),
        "repaint_ms": overlays + plain,
        "budget_ms": FRAME_BUDGET_MS,
        "changed_fraction": changed,
        "torch_imported": any(m == "torch" or m.startswith("torch.") for m in sys.modules),
    }


def report(r: dict[str, Any]) -> str:
    """The benchmark's table, in words."""
    met = "met" if r["repaint_ms"] <= r["budget_ms"] else "NOT met"
    cols, rows = r["lattice_cells"]
    return "\n".join(
        [
            f"Inspect overlays on a {r['size'][0]}x{r['size'][1]} canvas, median of {r['rounds']} repaints "
            f"(lattice {cols} x {rows} cells)",
            f"  plain frame (one blit):   {r['frame_ms']:.2f} ms",
            f"  every overlay on top:     {r['overlays_ms']:.2f} ms (p95 {r['overlays_p95_ms']:.2f} ms), "
            f"{r['ratio']:.1f}x the plain frame",
            f"  the repaint, both:        {r['repaint_ms']:.2f} ms; goal <= {r['budget_ms']:.0f} ms: {met}",
            f"  torch imported while painting: {'YES (a defect)' if r['torch_imported'] else 'no'}",
        ]
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="liif-viewer bench --overlays",
        description="Inspect mode's overlay repaint against a plain frame",
    )
    p.add_argument("--overlays", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=30, help="timed repaints (default 30)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the overlay benchmark and print its report."""
    args = _parser().parse_args(list(argv) if argv is not None else None)
    from viewer.errors import ArgumentError

    if args.rounds < 1:
        raise ArgumentError("--rounds must be at least 1")
    # Only images are painted, never a window: with no platform chosen, Qt's offscreen one needs no display.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([])
    result = measure(args.rounds)
    del app
    print(report(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return 0
