"""ICC profiles for the colour tests, built byte by byte (ICC v2 matrix/TRC and grey TRC profiles).

Pillow can only create sRGB, LAB and XYZ profiles; scans are often tagged ProPhoto RGB (ROMM RGB):
primaries R (0.7347, 0.2653), G (0.1596, 0.8404), B (0.0366, 0.0001), white D50, gamma 1.8.
"""

from __future__ import annotations

import struct

PROPHOTO_COLORANTS = (
    (0.7976749, 0.2880402, 0.0000000),
    (0.1351917, 0.7118741, 0.0000000),
    (0.0313534, 0.0000857, 0.8252100),
)
"""rXYZ, gXYZ, bXYZ of ProPhoto RGB (relative to D50, the ICC connection space's white)."""
D50 = (0.9642, 1.0, 0.8249)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _curve(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(4 + 4 + 2 + 1 + 67)


def _text(text: str) -> bytes:
    return b"text" + bytes(4) + text.encode("ascii") + b"\0"


def _profile(space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    table = struct.pack(">I", len(tags))
    offset = 128 + 4 + 12 * len(tags)
    data = b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    size = 128 + len(table) + len(data)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"mntr"
        + space
        + b"XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8 + 4)
        + _s15(D50[0])
        + _s15(D50[1])
        + _s15(D50[2])
        + bytes(4)
    )
    header += bytes(128 - len(header))
    return header + table + data


def prophoto_icc() -> bytes:
    """A ProPhoto RGB (ROMM) display profile: matrix/TRC, gamma 1.8."""
    r, g, b = PROPHOTO_COLORANTS
    return _profile(
        b"RGB ",
        [
            (b"desc", _desc("ProPhoto RGB (test)")),
            (b"cprt", _text("No copyright, test data")),
            (b"wtpt", _xyz(*D50)),
            (b"rXYZ", _xyz(*r)),
            (b"gXYZ", _xyz(*g)),
            (b"bXYZ", _xyz(*b)),
            (b"rTRC", _curve(1.8)),
            (b"gTRC", _curve(1.8)),
            (b"bTRC", _curve(1.8)),
        ],
    )


def grey_icc(gamma: float = 1.0) -> bytes:
    """A grey profile with a plain gamma (1.0: linear grey, which sRGB shows much lighter)."""
    return _profile(
        b"GRAY",
        [
            (b"desc", _desc(f"Grey gamma {gamma:g} (test)")),
            (b"cprt", _text("No copyright, test data")),
            (b"wtpt", _xyz(*D50)),
            (b"kTRC", _curve(gamma)),
        ],
    )


DISPLAY_P3_COLORANTS = (
    (0.5151, 0.2412, -0.0011),
    (0.2920, 0.6922, 0.0419),
    (0.1571, 0.0666, 0.7841),
)
"""rXYZ, gXYZ, bXYZ of Display P3 (relative to D50), the gamut of wide-gamut laptop and phone screens."""


def display_p3_icc() -> bytes:
    """A Display P3-like monitor profile: P3 primaries, D65 white adapted to D50, gamma 2.2."""
    r, g, b = DISPLAY_P3_COLORANTS
    return _profile(
        b"RGB ",
        [
            (b"desc", _desc("Display P3 (test)")),
            (b"cprt", _text("No copyright, test data")),
            (b"wtpt", _xyz(*D50)),
            (b"rXYZ", _xyz(*r)),
            (b"gXYZ", _xyz(*g)),
            (b"bXYZ", _xyz(*b)),
            (b"rTRC", _curve(2.2)),
            (b"gTRC", _curve(2.2)),
            (b"bTRC", _curve(2.2)),
        ],
    )
