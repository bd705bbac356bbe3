"""The streaming PNG writer: a PNG of known size written a band of rows at a time, so an export's memory
is bounded by the band, not the image. Compression by zlib-ng (the zlib stream format, over twice as fast
as the stdlib's at level 6), at level 5: on a 2560 px x8 render, 0.46 s against level 6's 0.85 s, for a
file 2.4% larger (5.82 against 5.69 MB), a trade every large export gains from.

Bands are compressed on two worker threads while the next band is filtered (zlib-ng releases the GIL), as
pigz does: each band is its own run of deflate blocks, primed with the 32 KB before it and ended on a byte
boundary, and together they make one zlib stream that any decoder reads."""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import numpy as np
from zlib_ng import zlib_ng

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> colour type (grey, grey+alpha, RGB, RGBA)
_WINDOW = 32768  # deflate's window: what a band's compression may refer back to
_IN_FLIGHT = 2  # bands compressing at once, so memory stays bounded by a few bands

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _deflate_pool() -> ThreadPoolExecutor:
    """Two threads shared by every writer (idle threads cost nothing; a 2-core machine has no use for more)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="png-deflate")
        return _pool


def _deflate_band(data: bytes, level: int, primer: bytes) -> bytes:
    """Raw deflate blocks of one band, ending on a byte boundary (not final), that may refer back into
    `primer` (the stream's last 32 KB before the band)."""
    if primer:
        z = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15, zdict=primer)
    else:
        z = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15)
    return z.compress(data) + z.flush(zlib_ng.Z_SYNC_FLUSH)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The Paeth predictor of byte arrays a (left), b (up), c (up-left), as uint8."""
    a16, b16, c16 = a.astype(np.int16), b.astype(np.int16), c.astype(np.int16)
    pa, pb, pc = np.abs(b16 - c16), np.abs(a16 - c16), np.abs(a16 + b16 - 2 * c16)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


class PngBandWriter:
    """Stream a PNG of known size to an open binary file, a band of rows at a time.

    Supports 8 and 16 bits per channel with 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels, and
    writes iCCP (ICC profile), pHYs (DPI as pixels per metre) and eXIf before the image data. Each row
    gets the PNG filter (None, Sub, Up, Average or Paeth) with the smallest sum of absolute values, as
    libpng does; memory is bounded by the band, not the image.
    """

    def __init__(
        self,
        fh: IO[bytes],
        width: int,
        height: int,
        *,
        channels: int,
        bit_depth: int = 8,
        dpi: float | None = None,
        icc: bytes | None = None,
        exif: bytes | None = None,
        compress_level: int = 5,
    ) -> None:
        if channels not in _PNG_COLOR_TYPES:
            raise ValueError(f"PNG channels must be 1, 2, 3 or 4, got {channels}")
        if bit_depth not in (8, 16):
            raise ValueError(f"PNG bit depth must be 8 or 16, got {bit_depth}")
        if not (0 < width < 2**31 and 0 < height < 2**31):
            raise ValueError(f"invalid PNG size {width}x{height}")
        self._fh = fh
        self.width, self.height, self.channels, self.bit_depth = width, height, channels, bit_depth
        self._bpp = channels * bit_depth // 8
        self._rows_written = 0
        self._prev = np.zeros(width * self._bpp, dtype=np.uint8)
        self._level = compress_level  # see the module docstring for the level
        self._adler = 1  # the zlib stream's checksum of the uncompressed bytes so far
        self._primer = b""
        self._pending: deque[Future[bytes]] = deque()
        self._started = False
        ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, _PNG_COLOR_TYPES[channels], 0, 0, 0)
        out = [PNG_SIGNATURE, _png_chunk(b"IHDR", ihdr)]
        if icc:
            out.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
        if dpi is not None:
            if not (math.isfinite(dpi) and dpi > 0):
                raise ValueError(f"invalid DPI {dpi!r}")
            ppm = max(1, round(dpi / 0.0254))
            out.append(_png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)))
        if exif:
            body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
            out.append(_png_chunk(b"eXIf", body))
        fh.write(b"".join(out))

    @property
    def rows_written(self) -> int:
        return self._rows_written

    def write_rows(self, rows: np.ndarray) -> None:
        """Append rows: an array (n, width, channels) (or (n, width) for grey) of uint8 or uint16,
        matching the writer's bit depth."""
        a = np.asarray(rows)
        if a.ndim == 2 and self.channels == 1:
            a = a[..., None]
        if a.ndim != 3 or a.shape[1:] != (self.width, self.channels):
            raise ValueError(f"expected rows of shape (n, {self.width}, {self.channels}), got {a.shape}")
        want = np.uint8 if self.bit_depth == 8 else np.uint16
        if a.dtype != want:
            raise ValueError(f"expected {np.dtype(want).name} rows for a {self.bit_depth}-bit PNG")
        n = a.shape[0]
        if self._rows_written + n > self.height:
            raise ValueError(f"too many rows: {self._rows_written + n} > {self.height}")
        if n == 0:
            return
        raw = a.astype(">u2") if self.bit_depth == 16 else a
        x = np.frombuffer(np.ascontiguousarray(raw).tobytes(), dtype=np.uint8).reshape(n, -1)
        up = np.empty_like(x)
        up[0] = self._prev
        up[1:] = x[:-1]
        bpp = self._bpp
        left = np.zeros_like(x)
        left[:, bpp:] = x[:, :-bpp]
        upleft = np.zeros_like(x)
        upleft[:, bpp:] = up[:, :-bpp]
        # The five filtered rows; uint8 arithmetic wraps modulo 256, as PNG filters are defined.
        cands = np.empty((5, *x.shape), dtype=np.uint8)
        cands[0] = x
        np.subtract(x, left, out=cands[1])
        np.subtract(x, up, out=cands[2])
        np.subtract(x, ((left.astype(np.uint16) + up) >> 1).astype(np.uint8), out=cands[3])
        np.subtract(x, _paeth(left, up, upleft), out=cands[4])
        # libpng's heuristic: the smallest sum of |byte as signed|; abs of int8 -128 wraps to 128 as uint8
        score = np.abs(cands.view(np.int8)).view(np.uint8).sum(axis=2, dtype=np.uint32)  # (5, n)
        best = score.argmin(axis=0)
        filtered = cands[best, np.arange(n)]
        band = np.empty((n, filtered.shape[1] + 1), dtype=np.uint8)
        band[:, 0] = best
        band[:, 1:] = filtered
        data = band.tobytes()
        self._adler = zlib.adler32(data, self._adler)
        self._pending.append(_deflate_pool().submit(_deflate_band, data, self._level, self._primer))
        self._primer = (self._primer + data)[-_WINDOW:] if len(data) < _WINDOW else data[-_WINDOW:]
        while len(self._pending) > _IN_FLIGHT:
            self._emit(self._pending.popleft().result())
        self._prev = x[-1].copy()
        self._rows_written += n

    def _emit(self, data: bytes) -> None:
        if not self._started:  # the zlib header: deflate, 32 KB window, "fast" level flag
            data = b"\x78\x5e" + data
            self._started = True
        if data:
            self._fh.write(_png_chunk(b"IDAT", data))

    def close(self) -> None:
        """Finish the stream; every row must have been written."""
        if self._rows_written != self.height:
            raise ValueError(f"PNG incomplete: {self._rows_written} of {self.height} rows written")
        while self._pending:
            self._emit(self._pending.popleft().result())
        last = zlib_ng.compressobj(self._level, zlib_ng.DEFLATED, -15)  # an empty final block
        self._emit(last.compress(b"") + last.flush() + struct.pack(">I", self._adler))
        self._fh.write(_png_chunk(b"IEND", b""))
