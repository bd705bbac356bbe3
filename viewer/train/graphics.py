"""Synthetic graphics for distillation: flat colours, hard outlines and printed text (`synthetic_graphic`),
and pages of lines of small print (`text_page`).

The training photos (BSDS500, T91) hold almost no lettering, clip art or flat colour, while scans do:
captions, postcards, book covers, signs. The official model answers on any input, so a student distilled
from it can learn those too. These images are drawn with Pillow from a seeded generator (the same seed
gives the same image on any machine: the text uses Pillow's built-in font, not a system one), at 1 to 4
times their size and then reduced with a box filter, as a rasterizer's antialiasing does (1: aliased
edges, as in screenshots).
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_LETTERS = string.ascii_letters + string.digits + "  .,-%&?!"


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour: a quarter near black or white (ink and paper), the rest saturated or pastel."""
    kind = rng.random()
    if kind < 0.125:
        v = int(rng.integers(0, 50))
        return (v, v, v)
    if kind < 0.25:
        v = int(rng.integers(205, 256))
        return (v, v, v)
    return _rgb(rng.integers(0, 256, size=3))


def _background(rng: np.random.Generator, side: int) -> Image.Image:
    """A flat colour (60%) or a linear gradient between two colours at a random angle."""
    if rng.random() < 0.6:
        return Image.new("RGB", (side, side), _colour(rng))
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / max(1, side - 1)
    t = np.clip((xx * np.cos(ang) + yy * np.sin(ang) + 1.0) / 2.0, 0.0, 1.0)[..., None]
    return Image.fromarray((a * (1 - t) + b * t).round().astype(np.uint8))


def _shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int, ss: int) -> None:
    """One filled shape (rectangle, ellipse, polygon or thick line), sometimes with a dark outline."""
    kind = int(rng.integers(0, 4))
    fill = _colour(rng)
    outline = _colour(rng) if rng.random() < 0.5 else None
    width = int(rng.integers(1, 4)) * ss if outline is not None else 0
    x0, y0 = (int(v) for v in rng.integers(-side // 4, side, size=2))
    w, h = (int(v) for v in rng.integers(side // 16, side // 2, size=2))
    box = (x0, y0, x0 + w, y0 + h)
    if kind == 0:
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    elif kind == 1:
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif kind == 2:
        n = int(rng.integers(3, 7))
        pts = [(int(x), int(y)) for x, y in rng.integers(-side // 8, side + side // 8, size=(n, 2))]
        draw.polygon(pts, fill=fill, outline=outline, width=max(1, width))
    else:
        pts = [(int(x), int(y)) for x, y in rng.integers(0, side, size=(2, 2))]
        draw.line(pts, fill=fill, width=int(rng.integers(1, 8)) * ss)


def _text(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int, ss: int) -> None:
    """One line of random letters at 7 to 48 pixels (final size, small sizes likelier), sometimes bold
    (stroked)."""
    size = int(7 + 41 * rng.random() ** 2) * ss
    font = ImageFont.load_default(size=size)
    n = int(rng.integers(3, 20))
    text = "".join(_LETTERS[int(i)] for i in rng.integers(0, len(_LETTERS), size=n))
    x, y = (int(v) for v in rng.integers(-side // 8, side - size // 2, size=2))
    stroke = int(rng.integers(0, 2)) * max(1, size // 24)
    draw.text((x, y), text, fill=_colour(rng), font=font, stroke_width=stroke, stroke_fill=_colour(rng))


def synthetic_graphic(rng: np.random.Generator, side: int = 256) -> np.ndarray:
    """A uint8 (side, side, 3) drawing of shapes and text on a flat or graded background (see the module
    docstring); drawn `ss` = 1 to 4 times larger and box-reduced."""
    ss = int(rng.integers(1, 5))
    big = side * ss
    img = _background(rng, big)
    draw = ImageDraw.Draw(img)
    items = ["shape"] * int(rng.integers(2, 10)) + ["text"] * int(rng.integers(2, 12))
    for k in rng.permutation(len(items)):
        if items[int(k)] == "shape":
            _shape(draw, rng, big, ss)
        else:
            _text(draw, rng, big, ss)
    if ss > 1:
        img = img.reduce(ss)
    return np.asarray(img, dtype=np.uint8)


def _rgb(values: np.ndarray) -> tuple[int, int, int]:
    """Three integers of an array, as Pillow takes a colour."""
    return (int(values[0]), int(values[1]), int(values[2]))


def _paper_and_ink(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A light paper and a dark or saturated ink (three quarters), or the reverse (light print on dark)."""
    paper = _rgb(rng.integers(215, 256, size=3))
    ink = _rgb(rng.integers(0, 160, size=3) if rng.random() < 0.7 else rng.integers(0, 256, 3))
    if rng.random() < 0.25:
        paper, ink = _rgb(rng.integers(0, 70, size=3)), paper
    return paper, ink


def text_page(rng: np.random.Generator, side: int = 256) -> np.ndarray:
    """A uint8 (side, side, 3) page of lines of random words: one print size of 8 to 28 pixels (small
    likelier), a few inks, some lines bold; drawn 1 to 4 times larger and box-reduced as
    `synthetic_graphic` is. Small print is where the student decoders were furthest from their teacher."""
    ss = int(rng.integers(1, 5))
    big = side * ss
    paper, ink = _paper_and_ink(rng)
    img = Image.new("RGB", (big, big), paper)
    draw = ImageDraw.Draw(img)
    size = int(8 + 20 * rng.random() ** 1.5)
    font = ImageFont.load_default(size=size * ss)
    y = int(rng.integers(-size, size)) * ss
    while y < big:
        if rng.random() < 0.25 and rng.random() < 0.5:  # a new paragraph in another ink
            ink = _paper_and_ink(rng)[1]
        words = [
            "".join(string.ascii_letters[int(i)] for i in rng.integers(0, 52, size=int(rng.integers(1, 10))))
            for _ in range(int(rng.integers(3, 12)))
        ]
        bold = int(rng.random() < 0.3) * max(1, size * ss // 20)
        x = int(rng.integers(-size, 2 * size)) * ss
        draw.text((x, y), " ".join(words), fill=ink, font=font, stroke_width=bold, stroke_fill=ink)
        y += int(size * ss * rng.uniform(1.1, 1.6))
    if ss > 1:
        img = img.reduce(ss)
    return np.asarray(img, dtype=np.uint8)
