"""Print-size parsing, DPI to pixels, orientation and fitting (pure functions, no model)."""

from __future__ import annotations

import math

import pytest

from viewer.engine.printsize import (
    PRESETS,
    PixelSize,
    PrintSize,
    Region,
    fit_region,
    match_orientation,
    parse_dpi,
    parse_pixel_size,
    parse_print_size,
    parse_region,
    parse_scale,
    print_pixels,
    round_half_up,
    scaled_size,
)
from viewer.errors import ArgumentError

# Pixel sizes at 300 DPI, worked out by hand: inches x 300, and mm / 25.4 x 300 rounded to nearest.
PRESETS_AT_300 = {
    "4x6in": (1200, 1800),
    "5x7in": (1500, 2100),
    "8x10in": (2400, 3000),
    "11x14in": (3300, 4200),
    "16x20in": (4800, 6000),
    "24x36in": (7200, 10800),
    "A4": (2480, 3508),  # 2480.31 x 3507.87
    "A3": (3508, 4961),  # 3507.87 x 4960.63
    "A2": (4961, 7016),  # 4960.63 x 7015.75
}


@pytest.mark.parametrize(("name", "expected"), sorted(PRESETS_AT_300.items()))
def test_presets_at_300_dpi(name: str, expected: tuple[int, int]) -> None:
    size = parse_print_size(name)
    assert size == PRESETS[name]
    assert print_pixels(size.w, size.h, size.unit, 300) == expected


def test_every_preset_is_covered() -> None:
    assert set(PRESETS) == set(PRESETS_AT_300)


def test_iso_sizes_are_exact_millimetres() -> None:
    assert PRESETS["A4"] == PrintSize(210, 297, "mm")
    assert PRESETS["A3"] == PrintSize(297, 420, "mm")
    assert PRESETS["A2"] == PrintSize(420, 594, "mm")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8x10in", PrintSize(8, 10, "in")),
        ("8 x 10 in", PrintSize(8, 10, "in")),
        ("8X10IN", PrintSize(8, 10, "in")),
        ("8×10in", PrintSize(8, 10, "in")),
        ("8.5x11in", PrintSize(8.5, 11, "in")),
        ("8.5x11inches", PrintSize(8.5, 11, "in")),
        ("20x25cm", PrintSize(20, 25, "cm")),
        ("210x297mm", PrintSize(210, 297, "mm")),
        ("a4", PrintSize(210, 297, "mm")),
        (" A3 ", PrintSize(297, 420, "mm")),
    ],
)
def test_parse_print_size(text: str, expected: PrintSize) -> None:
    assert parse_print_size(text) == expected


@pytest.mark.parametrize(
    "text", ["8by10", "8x10", "x10in", "8x10ft", "-8x10in", "0x10in", "", "A9", "8x10x12in"]
)
def test_parse_print_size_rejects(text: str) -> None:
    with pytest.raises(ArgumentError) as err:
        parse_print_size(text)
    assert "\n" not in str(err.value)
    assert repr(text)[1:-1] in str(err.value) or text == ""


def test_parse_print_size_message() -> None:
    with pytest.raises(ArgumentError, match=r"cannot parse print size '8by10': expected e\.g\. 8x10in"):
        parse_print_size("8by10")
    with pytest.raises(ArgumentError, match="no unit"):
        parse_print_size("8x10")


@pytest.mark.parametrize(
    ("w", "h", "unit", "dpi", "expected"),
    [
        (20, 25, "cm", 300, (2362, 2953)),  # 2362.20 x 2952.76
        (8.5, 11, "in", 300, (2550, 3300)),
        (8.5, 11, "in", 301, (2559, 3311)),  # 2558.5 rounds half up, not to even
        (4, 6, "in", 72, (288, 432)),
        (210, 297, "mm", 150, (1240, 1754)),  # 1240.16 x 1753.94
        (10, 15, "cm", 96, (378, 567)),  # 377.95 x 566.93
    ],
)
def test_print_pixels(w: float, h: float, unit: str, dpi: float, expected: tuple[int, int]) -> None:
    assert print_pixels(w, h, unit, dpi) == expected


def test_round_half_up() -> None:
    assert round_half_up(2.5) == 3
    assert round_half_up(3.5) == 4
    assert round_half_up(2.4999) == 2
    assert round_half_up(0.5) == 1


@pytest.mark.parametrize("dpi", [0, -1, math.nan, math.inf, "abc", "1e9"])
def test_parse_dpi_rejects(dpi: object) -> None:
    with pytest.raises(ArgumentError):
        parse_dpi(dpi)  # type: ignore[arg-type]


def test_print_pixels_rejects_bad_dpi_and_unit() -> None:
    with pytest.raises(ArgumentError):
        print_pixels(8, 10, "in", 0)
    with pytest.raises(ArgumentError):
        print_pixels(8, 10, "ft", 300)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1920x1080", PixelSize(1920, 1080)), ("640 X 480", PixelSize(640, 480)), ("1×1", PixelSize(1, 1))],
)
def test_parse_pixel_size(text: str, expected: PixelSize) -> None:
    assert parse_pixel_size(text) == expected


@pytest.mark.parametrize("text", ["1920", "0x10", "10x0", "1.5x2", "-3x4", "axb", "19201080", ""])
def test_parse_pixel_size_rejects(text: str) -> None:
    with pytest.raises(ArgumentError):
        parse_pixel_size(text)


def test_match_orientation() -> None:
    assert match_orientation(8, 10, 4000, 3000) == (10, 8)  # landscape region: landscape print
    assert match_orientation(8, 10, 3000, 4000) == (8, 10)
    assert match_orientation(10, 8, 3000, 4000) == (8, 10)  # portrait region: portrait print
    assert match_orientation(8, 10, 500, 500) == (8, 10)  # square region: as given
    assert match_orientation(10, 10, 4000, 3000) == (10, 10)


def test_fit_crop_fills_the_box_and_centres() -> None:
    f = fit_region(4000, 3000, 2400, 3000, "crop")
    assert (f.out_w, f.out_h) == (2400, 3000)
    assert f.h == pytest.approx(3000) and f.w == pytest.approx(2400)  # aspect 0.8 taken from the middle
    assert f.x == pytest.approx(800) and f.y == pytest.approx(0)
    g = fit_region(1000, 3000, 300, 300, "crop")
    assert (g.x, g.y, g.w, g.h) == pytest.approx((0, 1000, 1000, 1000))


def test_fit_crop_anchor_chooses_the_part_kept() -> None:
    left = fit_region(4000, 3000, 2400, 3000, "crop", (0.0, 0.5))
    right = fit_region(4000, 3000, 2400, 3000, "crop", (1.0, 0.5))
    assert (left.x, left.w) == pytest.approx((0, 2400)) and (right.x, right.w) == pytest.approx((1600, 2400))
    top = fit_region(1000, 3000, 300, 300, "crop", (0.3, 0.0))  # the x part is ignored: nothing to trim
    assert (top.x, top.y) == pytest.approx((0, 0))
    assert fit_region(1000, 3000, 300, 300, "crop", (0.5, 0.25)).y == pytest.approx(500)
    # Out of range or not a number: clamped, or the centre; never outside the region.
    assert fit_region(1000, 3000, 300, 300, "crop", (0.5, 7.0)).y == pytest.approx(2000)
    assert fit_region(1000, 3000, 300, 300, "crop", (0.5, float("nan"))).y == pytest.approx(1000)
    # Fit and stretch keep the whole region whatever the anchor.
    assert fit_region(4000, 3000, 2400, 3000, "fit", (0.0, 0.0)).x == 0


def test_fit_fit_keeps_aspect_inside_the_box() -> None:
    f = fit_region(4000, 3000, 2400, 3000, "fit")
    assert (f.x, f.y, f.w, f.h) == (0, 0, 4000, 3000)
    assert (f.out_w, f.out_h) == (2400, 1800)
    g = fit_region(1000, 3000, 600, 600, "fit")
    assert (g.out_w, g.out_h) == (200, 600)


def test_fit_stretch_uses_the_box_and_the_whole_region() -> None:
    f = fit_region(4000, 3000, 2400, 3000, "stretch")
    assert (f.x, f.y, f.w, f.h, f.out_w, f.out_h) == (0, 0, 4000, 3000, 2400, 3000)


def test_fit_rejects_unknown_mode() -> None:
    with pytest.raises(ArgumentError, match="unknown fit mode 'zoom'"):
        fit_region(10, 10, 10, 10, "zoom")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "abc", ""])
def test_parse_scale_rejects(value: str) -> None:
    with pytest.raises(ArgumentError, match="scale"):
        parse_scale(value)


def test_scaled_size_rounds_half_up() -> None:
    assert scaled_size(40, 30, 3.7) == PixelSize(148, 111)
    assert scaled_size(3, 5, 0.5) == PixelSize(2, 3)  # 1.5 -> 2, 2.5 -> 3
    with pytest.raises(ArgumentError, match="too small"):
        scaled_size(40, 30, 0.01)


def test_parse_region() -> None:
    assert parse_region("10,20,300,400") == Region(10, 20, 300, 400)
    assert parse_region(" 1.5, 2 ,3,4 ") == Region(1.5, 2, 3, 4)
    for bad in ["1,2,3", "a,b,c,d", "0,0,0,10", "0,0,10,-1", "0,0,nan,1", "1,2,3,4,5"]:
        with pytest.raises(ArgumentError):
            parse_region(bad)
