"""Plain-value inspection data for the GUI tests (importable without torch, also from a subprocess)."""

from __future__ import annotations

from typing import cast

from viewer.engine.inspect import MEMBER_NAMES, Probe, ProbeMember

RGB = tuple[float, float, float]


def plain_probe(x: float = 10.3, y: float = 6.8, cell: float = 0.125) -> Probe:
    """A probe built from plain values, as the GUI receives it (no engine involved)."""
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
