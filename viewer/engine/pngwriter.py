"""The streaming PNG writer: a PNG of known size written a band of rows at a time, so an export's memory
is bounded by the band, not the image. Compression by zlib-ng (the zlib stream format, over twice as fast
as the stdlib's at level 6), at level 3: on `liif-lm`'s 2560 px x8 render of the 320 px sample (19.7 MB of
filtered rows), zlib-ng took 0.14 s at level 3 against 0.26 s at 5 and 0.60 s at 6, for a file 4.1% larger
than level 5's (5.35 against 5.14 MB; level 6: 4.99 MB, level 2: 5.75 MB in 0.12 s), on the 2-core AMD
EPYC development machine (2026-12-06, best of 3 each). Every large export gains from that trade: the
compression shares the cores with the render.

Bands are filtered and compressed on two worker threads while the caller renders the next (numpy and
zlib-ng release the GIL), as pigz does: each band is its own run of deflate blocks, primed with the 32 KB
before it and ended on a byte boundary, and together they make one zlib stream that any decoder reads."""

from __future__ import annotations

import math
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import numpy as np
from zlib_ng import zlib_ng

from viewer.engine.pools import shared_pool

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> colour type (grey, grey+alpha, RGB, RGBA)
_WINDOW = 32768  # deflate's window: what a band's compression may refer back to
_IN_FLIGHT = 2  # bands compressing at once, so memory stays bounded by a few bands


def _deflate_pool() -> ThreadPoolExecutor:
    """Two threads shared by every writer (a 2-core machine has no use for more)."""
    return shared_pool("png-deflate", 2)


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


def _filter_rows(x: np.ndarray, prev: np.ndarray, bpp: int) -> bytes:
    """The rows `x` (n, width in bytes) as PNG scanlines, each with the Paeth filter after its filter-type
    byte (4). `prev` is the row above the first (zeros for the image's first row).

    libpng instead tries all five filters on every row and keeps the one whose bytes have the smallest
    sum of |byte as signed|. On photos that choice is Paeth for nearly every row (2,501 of the 2,560 rows
    of `liif-lm`'s x8 render of the 320 px sample, Average for 57), and trying all five took 5 times as
    long: 0.89 against 0.17 s for that render's 19.7 MB of rows on the 2-core development machine, for
    files 0.26% larger with Paeth alone at zlib-ng level 3 (5.35 against 5.34 MB); the bundled sample
    and three screenshots of the window came out 0.4 to 0.8% larger, one screenshot 2.3% (2026-12-06).
    """
    n = x.shape[0]
    up = np.empty_like(x)
    up[0] = prev
    up[1:] = x[:-1]
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    band = np.empty((n, x.shape[1] + 1), dtype=np.uint8)
    band[:, 0] = 4
    # uint8 arithmetic wraps modulo 256, as PNG filters are defined
    np.subtract(x, _paeth(left, up, upleft), out=band[:, 1:])
    return band.tobytes()


def _compress_band(
    x: np.ndarray,
    prev: np.ndarray,
    bpp: int,
    level: int,
    before: Future[tuple[bytes, int]] | None,
    link: Future[tuple[bytes, int]],
) -> bytes:
    """One band's deflate blocks, on a pool thread: filter the rows (in parallel with other bands and the
    render), then take the stream's last 32 KB and checksum from the band before (`before`, which its
    task sets as soon as it has them; that task was queued earlier, so it is running or done), pass this
    band's on (`link`), and compress. A failure reaches every later band through the chain."""
    try:
        data = _filter_rows(x, prev, bpp)
        primer, adler = before.result() if before is not None else (b"", 1)
        tail = (primer + data)[-_WINDOW:] if len(data) < _WINDOW else data[-_WINDOW:]
        link.set_result((tail, zlib.adler32(data, adler)))
    except BaseException as exc:
        if not link.done():
            link.set_exception(exc)
        raise
    return _deflate_band(data, level, primer)


class PngBandWriter:
    """Stream a PNG of known size to an open binary file, a band of rows at a time.

    Supports 8 and 16 bits per channel with 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA) channels, and
    writes iCCP (ICC profile), pHYs (DPI as pixels per metre) and eXIf before the image data. Each row
    gets the Paeth filter (`_filter_rows` says why not libpng's choice per row); memory is bounded by the
    band, not the image.
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
        compress_level: int = 3,
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
        self._link: Future[tuple[bytes, int]] | None = None
        """The last band's link in the chain: (the stream's last 32 KB, its checksum so far) once known."""
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
        link: Future[tuple[bytes, int]] = Future()
        job = _deflate_pool().submit(_compress_band, x, self._prev, self._bpp, self._level, self._link, link)
        self._pending.append(job)
        self._link = link
        while len(self._pending) > _IN_FLIGHT:
            self._emit(self._pending.popleft().result())
        self._prev = x[-1]  # x is this writer's own read-only copy
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
        adler = self._link.result()[1] if self._link is not None else 1
        self._emit(last.compress(b"") + last.flush() + struct.pack(">I", adler))
        self._fh.write(_png_chunk(b"IEND", b""))
