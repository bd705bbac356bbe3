"""Folder navigation as pure functions (no Qt): the photos of a folder in natural order, and a step.

PageDown and PageUp open the next and previous photo of the open photo's folder. Natural order sorts the
digits in a name by their value, so "photo 2" comes before "photo 10", as file managers show them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that orders runs of digits by value and the rest case-insensitively.

    Each part is tagged (0 for a number, 1 for text) so numbers and text never compare with each other.
    The whole name, case kept, breaks ties, so the order is total."""
    parts: list[tuple[int, int | str]] = []
    for i, part in enumerate(_DIGITS.split(name)):
        if i % 2:
            parts.append((0, int(part)))
        elif part:
            parts.append((1, part.casefold()))
    parts.append((2, name))
    return tuple(parts)


def list_photos(folder: Path, suffixes: Collection[str]) -> list[Path]:
    """The files in `folder` whose suffix is a photo's, in natural order; hidden files are left out.

    Unreadable folders give an empty list: navigation then says there is nothing to go to."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    names = []
    for e in entries:
        if e.name.startswith(".") or Path(e.name).suffix.lower() not in suffixes:
            continue
        try:
            if e.is_file():
                names.append(e.name)
        except OSError:
            continue
    names.sort(key=natural_key)
    return [folder / n for n in names]


@dataclass(frozen=True)
class Step:
    """The outcome of a step: `target` to open (None at an end), and the position it will have."""

    target: Path | None
    index: int
    """0-based index of `target` (or of the current photo at an end)."""
    total: int


def position(current: Path, photos: Sequence[Path]) -> int | None:
    """The 0-based index of `current` in `photos`, or None if it is not one of them."""
    name = current.name
    for i, p in enumerate(photos):
        if p.name == name:
            return i
    return None


def step_from(current: Path, photos: Sequence[Path], step: int) -> Step:
    """The photo `step` places after (negative: before) `current` in `photos` (natural order).

    A `current` that is no longer in the folder (deleted, renamed) steps from where it would sort. Past
    either end there is no target: the caller says so instead of wrapping around."""
    total = len(photos)
    here = position(current, photos)
    if here is None:
        key = natural_key(current.name)
        after = next((i for i, p in enumerate(photos) if natural_key(p.name) > key), total)
        # Between photos[after - 1] and photos[after]: one step forward lands on `after`.
        i = after + step - 1 if step > 0 else after + step
    else:
        i = here + step
    if 0 <= i < total:
        return Step(photos[i], i, total)
    edge = here if here is not None else (0 if i < 0 else total - 1)
    return Step(None, max(0, min(edge, total - 1)), total)
