"""Safe image loading and atomic image writing (no torch, no Qt).

Loading checks the pixel count against a limit before anything is decoded, forces a full decode so a
truncated file fails here rather than later, applies the EXIF orientation to the pixels, and turns every
decoder failure into a one-line `ImageLoadError`. Only common raster formats are opened: Pillow plugins
that run external programs (EPS through Ghostscript) or are rarely photos are never tried.

Writing goes to a temporary file in the destination folder that is renamed over the target only once it is
complete, so an interrupted or failed write leaves nothing behind. PNG is written by our own streaming
writer (`PngBandWriter`), which supports 16 bits per channel in colour (Pillow does not) and lets an
export stream an arbitrarily tall image in bands; JPEG and TIFF go through Pillow.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageCms, ImageFile

from viewer.engine.pngwriter import PNG_SIGNATURE, PngBandWriter
from viewer.errors import ArgumentError, ImageLoadError, ViewerError

log = logging.getLogger(__name__)

#: Formats the loader accepts (Pillow plugin names; camera JPEGs that Pillow labels MPO open as JPEG).
LOAD_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "DIB", "GIF", "WEBP", "PPM", "TGA")

#: Output formats by file extension.
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}

_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
#: IFD0 tags that describe a TIFF file's own storage (or carry data we handle separately); they must not
#: travel into another file's EXIF.
_STRUCTURAL_TAGS = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317, 320, 322,
        323, 324, 325, 338, 339, 340, 341, 347, 513, 514, 529, 530, 531, 532, 700, 33723, 34377, 34675,
        37724,
    }
)  # fmt: skip


class ImageTooLargeError(ImageLoadError):
    """The photo has more pixels than the configured input limit (a decompression-bomb guard)."""


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded photo, upright, ready for the engine, held in its own bit depth.

    `pixels` is uint8 or uint16 (H, W, 3) (grey sources are replicated to three channels), never one
    float32 array: a 100-megapixel scan takes 300 MB, not 1.2 GB, and the engine converts only the crops
    it encodes. `alpha_pixels` is the alpha plane in the same dtype (H, W), or None. `icc` is the embedded
    colour profile, `exif` the EXIF block (starting with b"Exif\\0\\0") with Orientation already applied to
    the pixels and reset to 1. `grayscale` and `bit_depth` (8 or 16) describe the source so an export can
    write the same kind.
    """

    path: Path
    pixels: np.ndarray
    alpha_pixels: np.ndarray | None
    icc: bytes | None
    exif: bytes | None
    grayscale: bool
    bit_depth: int

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def rgb(self) -> np.ndarray:
        """The colour as float32 (H, W, 3) in [0, 1]: a new full-size array, for small images only."""
        return _unit(self.pixels)

    @property
    def alpha(self) -> np.ndarray | None:
        """The alpha plane as float32 (H, W) in [0, 1], or None (a new array)."""
        return None if self.alpha_pixels is None else _unit(self.alpha_pixels)

    def rgb8(self) -> np.ndarray:
        """The colour as uint8 (H, W, 3), for display: the pixels themselves when they are 8-bit."""
        if self.pixels.dtype == np.uint8:
            return self.pixels
        out = np.empty(self.pixels.shape, np.uint8)
        step = max(1, (32 << 20) // max(1, self.pixels.shape[1] * 6))
        for y in range(0, self.pixels.shape[0], step):  # in bands: no full-size temporary
            out[y : y + step] = display_8bit(self.pixels[y : y + step])
        return out


def display_8bit(a: np.ndarray) -> np.ndarray:
    """uint16 values to the nearest uint8 ones (p * 255 / 65535 rounded; never a tie), in integer arithmetic:
    (p * 255 + 32895) >> 16 equals it for every one of the 65,536 values, and the screen copy of a 100 MP
    scan took 0.42 against 0.63 s through float32 (medians of 5 alternating rounds, 2-core development CPU)."""
    wide = a.astype(np.uint32)
    wide *= 255
    wide += 32895
    wide >>= 16
    return wide.astype(np.uint8)


def _unit(a: np.ndarray) -> np.ndarray:
    """uint8 / 255 or uint16 / 65535 as float32 (the scale the loader has always used)."""
    if a.dtype == np.uint16:
        return a.astype(np.float32) * np.float32(1 / 65535)
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    return np.ascontiguousarray(a, dtype=np.float32)


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: the upright size (EXIF orientation applied) and the container format."""

    path: Path
    width: int
    height: int
    format: str


# ------------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------------


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageLoadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise ImageLoadError(f"{path}: empty file")


def _raise_pixel_limit(max_megapixels: float) -> None:
    """Make sure Pillow's own bomb check never fires below our (configurable) limit; only ever raises it."""
    want = int(max_megapixels * 1_000_000) + 1
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < want:
        Image.MAX_IMAGE_PIXELS = want


def _check_size(path: Path, w: int, h: int, max_megapixels: float) -> None:
    if w <= 0 or h <= 0:
        raise ImageLoadError(f"{path}: invalid image size {w}x{h}")
    mp = w * h / 1_000_000
    if mp > max_megapixels:
        raise ImageTooLargeError(
            f"{path}: {w}x{h} is {mp:.1f} megapixels, over the input limit of {max_megapixels:g} megapixels"
        )


def _open(path: Path, max_megapixels: float) -> Image.Image:
    """Open (header only) with the checks that need no decoding."""
    _check_file(path)
    if not (math.isfinite(max_megapixels) and max_megapixels > 0):
        raise ArgumentError(f"invalid input megapixel limit {max_megapixels!r}: must be a positive number")
    _raise_pixel_limit(max_megapixels)
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated photo is an error, never silently grey
    try:
        im = Image.open(path, formats=LOAD_FORMATS)
    except Image.UnidentifiedImageError:
        raise ImageLoadError(
            _unreadable_tiff(path)
            or f"{path}: not an image in a supported format (PNG, JPEG, TIFF, BMP, GIF, WebP, PPM, TGA)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"{path}: too many pixels, over the input limit of {max_megapixels:g} megapixels"
        ) from None
    except MemoryError:
        raise ImageLoadError(f"{path}: not enough memory to read the image header") from None
    except Exception as exc:
        raise _damaged(path, exc, "not a readable image") from None
    try:
        w, h = im.size
        _check_size(path, w, h, max_megapixels)
    except BaseException:
        im.close()
        raise
    return im


TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
"""The first four bytes of a classic or BigTIFF file, either byte order."""


def _unreadable_tiff(path: Path) -> str | None:
    """The message for a TIFF that Pillow cannot read because of its samples (floating-point colour, 32
    bits per sample...), so the person learns what to save instead of "not an image"; None for anything
    else, which keeps the general message."""
    try:
        with open(path, "rb") as fh:
            if fh.read(4) not in TIFF_MAGIC:
                return None
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            dtype, samples = np.dtype(page.dtype), int(page.samplesperpixel)
    except Exception:  # a damaged TIFF: the general message says enough
        return None
    kind = {"f": "floating-point", "i": "signed", "c": "complex"}.get(dtype.kind, "unsigned")
    per = f", {samples} per pixel" if samples > 1 else ""
    return (
        f"{path}: a TIFF of {dtype.itemsize * 8}-bit {kind} samples{per}, which is not supported; "
        "save it with 8 or 16 bits per sample (unsigned integers)"
    )


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _damaged(path: Path, exc: BaseException, what: str) -> ImageLoadError:
    """One line for a decoder failure: truncation named as such, anything else with the decoder's words."""
    if isinstance(exc, EOFError) or "truncated" in str(exc).lower():
        return ImageLoadError(f"{path}: the image data is truncated or damaged")
    return ImageLoadError(f"{path}: {what} ({_describe(exc)})")


def _exif_and_orientation(im: Image.Image) -> tuple[int, bytes | None]:
    """The EXIF orientation (1..8) and the EXIF block to keep (orientation reset to 1), if readable.

    A damaged EXIF block is dropped rather than failing the photo: the pixels are what matter.
    """
    try:
        exif = im.getexif()
        orientation = exif.get(_ORIENTATION, 1)
        orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1
        for tag in [t for t in exif if t in _STRUCTURAL_TAGS]:
            del exif[tag]
        if _ORIENTATION in exif:
            exif[_ORIENTATION] = 1
        if len(exif) == 0:
            return orientation, None
        exif.get_ifd(_EXIF_IFD)  # load the Exif sub-IFD so tobytes() writes it out
        return orientation, exif.tobytes()
    except Exception:
        return 1, None


def _oriented_size(w: int, h: int, orientation: int) -> tuple[int, int]:
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, ...) array, as `PIL.ImageOps.exif_transpose` does."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def probe_image(path: str | os.PathLike[str], *, max_megapixels: float = 200.0) -> ImageInfo:
    """Read only the header: the upright size, checked against the limit. Cheap; used to validate a
    command before the slow steps. A file that passes may still fail `load_image` (e.g. truncated)."""
    p = Path(path)
    im = _open(p, max_megapixels)
    try:
        orientation, _ = _exif_and_orientation(im)
        w, h = _oriented_size(*im.size, orientation)
        return ImageInfo(p, w, h, str(im.format))
    finally:
        im.close()


def _to_arrays(im: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None, bool, int]:
    """Decoded pixels as (colour uint8/uint16 (H, W, C) with C 1 or 3, alpha or None, grey, bit depth)."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        g = np.asarray(im).astype(np.uint16)
        return g[..., None], None, True, 16
    if mode == "I":
        g = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        return g[..., None], None, True, 16
    if mode == "F":
        raise ImageLoadError(f"{path}: 32-bit floating-point images are not supported")
    grey = mode in ("1", "L", "LA", "La")
    if mode in ("1", "L"):
        target = "L"
    elif mode in ("LA", "La"):
        target = "LA"
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        target = "RGBA" if has_alpha else "RGB"
    elif mode in ("RGBA", "RGBa"):
        target = "RGBA"
    else:
        target = "RGBA" if "A" in mode else "RGB"
    if im.mode != target:
        im = im.convert(target)
    a = np.asarray(im, dtype=np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if target in ("LA", "RGBA"):
        return np.ascontiguousarray(a[..., :-1]), np.ascontiguousarray(a[..., -1]), grey, 8
    return a, None, grey, 8


def _deep_kind(im: Image.Image, path: Path) -> str | None:
    """'PNG' or 'TIFF' when the file holds 16-bit samples that Pillow would reduce to 8 bits (colour, or
    grey with alpha), else None. Pillow keeps 16-bit grey without alpha itself (mode I;16)."""
    if im.mode.startswith("I"):
        return None
    if im.format == "PNG":
        try:
            with open(path, "rb") as fh:
                head = fh.read(26)
        except OSError:
            return None
        # IHDR: bit depth at byte 24, colour type at 25 (2 RGB, 4 grey + alpha, 6 RGBA).
        if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6):
            return "PNG"
        return None
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        bits = tags.get(258)
        bits = bits if isinstance(bits, tuple) else (bits,)
        photometric = tags.get(262)
        if len(bits) >= 2 and all(b == 16 for b in bits) and photometric in (1, 2):
            return "TIFF"
    return None


def _decode_deep(kind: str, path: Path) -> tuple[np.ndarray, np.ndarray | None, bool, int]:
    """A 16-bit colour (or grey + alpha) PNG or TIFF decoded at 16 bits: imagecodecs' libpng for PNG,
    tifffile (with imagecodecs for compressed TIFFs) for the first page of a TIFF. Same return as
    `_to_arrays`."""
    if kind == "PNG":
        import imagecodecs

        a = np.asarray(imagecodecs.png_decode(path.read_bytes()))
    else:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            a = np.asarray(page.asarray())
            axes = page.axes
        if "S" in axes and axes.index("S") < axes.index("Y"):  # planar: samples first
            a = np.moveaxis(a, axes.index("S"), -1)
        while a.ndim > 3:  # leading length-1 axes (e.g. a one-plane volume)
            a = a[0]
    if a.dtype != np.uint16 or a.ndim != 3 or a.shape[2] not in (2, 3, 4):
        raise ImageLoadError(f"{path}: unexpected 16-bit layout {a.dtype} {a.shape}")
    channels = a.shape[2]
    grey = channels == 2
    colour_n = 1 if grey else 3
    colour = np.ascontiguousarray(a[..., :colour_n])
    alpha = np.ascontiguousarray(a[..., colour_n]) if channels > colour_n else None
    return colour, alpha, grey, 16


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert CMYK through its embedded profile to sRGB (then the sRGB profile is the one to keep);
    without a usable profile, Pillow's plain formula is used and no profile is kept."""
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if out is not None:
                return out, dst.tobytes()
        except Exception:
            pass
    return im.convert("RGB"), None


def load_image(path: str | os.PathLike[str], *, max_megapixels: float = 200.0) -> LoadedImage:
    """Decode a photo fully and safely; every problem becomes an `ImageLoadError` naming the file.

    The pixel count is checked against `max_megapixels` before decoding. Modes: 1, L, LA, P (with
    transparency), RGB, RGBA, I;16 / I (16-bit grey), CMYK (converted to sRGB through its profile when it
    has one). 16-bit colour and grey-with-alpha PNG and TIFF files (48- and 64-bit scans), which Pillow
    would reduce to 8 bits, are decoded at 16 bits by imagecodecs and tifffile.
    """
    p = Path(path)
    im = _open(p, max_megapixels)
    try:
        with im:
            orientation, exif = _exif_and_orientation(im)
            icc = im.info.get("icc_profile") or None
            if icc is not None and not isinstance(icc, bytes):
                icc = None
            deep = _deep_kind(im, p)
            if deep is not None:
                colour, alpha, grey, bits = _decode_deep(deep, p)
            else:
                im.load()
                if im.mode == "CMYK":
                    im_rgb, icc = _cmyk_to_rgb(im, icc)
                    colour, alpha, grey, bits = _to_arrays(im_rgb, p)
                else:
                    colour, alpha, grey, bits = _to_arrays(im, p)
    except ViewerError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"{p}: too many pixels, over the input limit of {max_megapixels:g} megapixels"
        ) from None
    except MemoryError:
        raise ImageLoadError(f"{p}: not enough memory to decode the image") from None
    except Exception as exc:
        raise _damaged(p, exc, "cannot decode the image") from None
    colour = _orient(colour, orientation)
    if alpha is not None:
        alpha = _orient(alpha, orientation)
    h, w = colour.shape[:2]
    rgb = np.ascontiguousarray(np.broadcast_to(colour, (h, w, 3))) if colour.shape[2] == 1 else colour
    return LoadedImage(p, rgb, alpha, icc, exif, grey, bits)


# ------------------------------------------------------------------------------------------------------
# Writing helpers
# ------------------------------------------------------------------------------------------------------


class BackgroundLoad:
    """A photo decoded on a daemon thread of its own (`load` is e.g. `load_image` with its arguments bound),
    so that other work goes on meanwhile: Pillow's decoders and its conversion to an array release the
    GIL. `result()` waits for the photo, or raises what decoding it raised. A daemon thread, so a process
    that stops before it needs the photo does not wait for it.
    """

    def __init__(self, load: Callable[[], LoadedImage]) -> None:
        self._loaded: LoadedImage | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(load,), name="load", daemon=True)
        self._thread.start()

    def _run(self, load: Callable[[], LoadedImage]) -> None:
        try:
            self._loaded = load()
        except BaseException as exc:  # handed to the waiting thread by `result`
            self._error = exc

    def result(self) -> LoadedImage:
        """The decoded photo; raises what decoding it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._loaded is not None
        return self._loaded


def output_format(path: str | os.PathLike[str]) -> str:
    """'PNG', 'JPEG' or 'TIFF' from the file extension; anything else is an ArgumentError."""
    ext = Path(path).suffix.lower()
    fmt = SAVE_FORMATS.get(ext)
    if fmt is None:
        shown = f"'{ext}'" if ext else "no extension"
        raise ArgumentError(
            f"cannot write {Path(path).name}: unsupported output format ({shown}); "
            "use .png, .jpg, .jpeg, .tif or .tiff"
        )
    return fmt


def check_output_path(path: str | os.PathLike[str]) -> str:
    """Validate an output path before any work: known extension, existing folder, not a folder itself.
    Returns the format."""
    p = Path(path)
    fmt = output_format(p)
    if p.is_dir():
        raise ArgumentError(f"cannot write {p}: it is a folder")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ArgumentError(f"cannot write {p}: folder {parent} does not exist")
    return fmt


def is_same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether paths `a` and `b` name one file: the same path, a symlink to it, or a hard link to it."""
    pa, pb = Path(a), Path(b)
    try:
        return pa.resolve() == pb.resolve() or os.path.samefile(pa, pb)
    except OSError:  # one of them does not exist: not the same file
        return False


def refuse_source_as_output(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
    """Refuse, before any work, an output that would replace the photo being read (its path, a symlink
    to it or a hard link to it): an old photo may exist as this one scan only."""
    if is_same_file(source, output):
        raise ArgumentError(
            f"refusing to write {output}: it is the input photo {source}; choose another output name"
        )


#: JPEG stores each side in 16 bits, and libjpeg refuses more than this.
JPEG_MAX_SIDE = 65500
#: Classic TIFF addresses its data with 32-bit offsets; keep well clear of 4 GiB.
TIFF_MAX_BYTES = (4 << 30) - (64 << 20)


def check_format_limits(fmt: str, width: int, height: int, channels: int = 3, bit_depth: int = 8) -> None:
    """Refuse, before any rendering, an output size the chosen format cannot store."""
    if fmt == "JPEG" and max(width, height) > JPEG_MAX_SIDE:
        raise ArgumentError(
            f"{width}x{height} is too large for JPEG (at most {JPEG_MAX_SIDE} pixels a side); use .png or .tif"
        )
    if fmt == "TIFF" and width * height * channels * bit_depth // 8 > TIFF_MAX_BYTES:
        raise ArgumentError(f"{width}x{height} is too large for an uncompressed TIFF (4 GB); use .png")


def output_bit_depth(fmt: str, bit_depth: int, grayscale: bool, has_alpha: bool) -> int:
    """The bit depth a format can hold for this kind of image: PNG keeps 16 bits for every colour type;
    TIFF keeps 16 bits only for grey without alpha (Pillow's I;16); JPEG is always 8."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and (fmt == "PNG" or (fmt == "TIFF" and grayscale and not has_alpha)):
        return 16
    return 8


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of a float (..., 3) image: the grey a grey source is written back as."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b).astype(np.float32)


def quantize(a: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float in [0, 1] to uint8 or uint16, rounding to nearest."""
    top = 255 if bit_depth == 8 else 65535
    out = np.clip(a, 0.0, 1.0) * np.float32(top)
    np.rint(out, out=out)
    return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


def _convert_depth(a: np.ndarray, bit_depth: int) -> np.ndarray:
    if bit_depth == 8:
        if a.dtype == np.uint8:
            return a
        if a.dtype == np.uint16:
            return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif bit_depth == 16:
        if a.dtype == np.uint16:
            return a
        if a.dtype == np.uint8:
            return a.astype(np.uint16) * np.uint16(257)
    raise ValueError(f"expected a uint8 or uint16 array, got {a.dtype}")


def exif_for_output(exif: bytes | None, width: int, height: int, dpi: float | None) -> bytes | None:
    """The source EXIF adjusted to the new file: orientation 1, resolution = the export DPI (so readers
    that prefer EXIF over JFIF/pHYs print at the right size), pixel dimensions = the new size."""
    if not exif:
        return None
    try:
        e = Image.Exif()
        e.load(exif)
        if len(e) == 0:
            return None
        e[_ORIENTATION] = 1
        if dpi is not None:
            e[282] = e[283] = float(dpi)  # XResolution, YResolution
            e[296] = 2  # ResolutionUnit: inch
        sub = e.get_ifd(_EXIF_IFD)
        if sub:
            if 0xA002 in sub:
                sub[0xA002] = int(width)
            if 0xA003 in sub:
                sub[0xA003] = int(height)
        return e.tobytes()
    except Exception:
        return exif


#: JPEG keeps EXIF in one APP1 segment: at most 65533 bytes after the length field, "Exif\0\0" included.
JPEG_MAX_EXIF = 65533
#: JPEG splits an ICC profile over at most 255 APP2 segments of 65519 bytes each.
JPEG_MAX_ICC = 255 * (65533 - 14)
#: Pillow (and so this app's loader) refuses a PNG whose ICC profile inflates to more than 1 MiB.
PNG_MAX_ICC = 1 << 20
_GPS_IFD = 0x8825


@dataclass(frozen=True)
class OutputMetadata:
    """The ICC profile and EXIF block a format can hold, and a line for each thing left out."""

    icc: bytes | None
    exif: bytes | None
    notes: tuple[str, ...] = ()


def _value_size(value: object) -> int:
    return len(value) if isinstance(value, bytes | str) else len(repr(value))


def _trim_exif(exif: bytes, limit: int) -> tuple[bytes | None, list[str]]:
    """Drop the largest EXIF tags (maker notes, comments, ...) until the block fits in `limit` bytes;
    returns (the block or None when nothing useful fits, the names of the tags dropped)."""
    from PIL import ExifTags

    dropped: list[str] = []
    try:
        e = Image.Exif()
        e.load(exif)
        ifds: list[Any] = [e, e.get_ifd(_EXIF_IFD), e.get_ifd(_GPS_IFD)]
        for _ in range(256):
            data = e.tobytes()
            if len(data) <= limit:
                return data, dropped
            sizes = [
                (_value_size(v), i, tag)
                for i, ifd in enumerate(ifds)
                for tag, v in ifd.items()
                if tag not in (_EXIF_IFD, _GPS_IFD)
            ]
            if not sizes:
                break
            _, i, tag = max(sizes)
            del ifds[i][tag]
            names = ExifTags.GPSTAGS if i == 2 else ExifTags.TAGS
            dropped.append(str(names.get(tag, f"tag {tag:#06x}")))
    except Exception:
        pass
    return None, dropped


def fit_metadata(fmt: str, icc: bytes | None, exif: bytes | None) -> OutputMetadata:
    """What of `icc` and `exif` the format `fmt` can store, with a one-line note for what is dropped.

    JPEG holds at most 64 KB of EXIF: its largest tags are dropped until it fits (all of it when even the
    small ones do not). An ICC profile over what JPEG can split into segments, or over what a PNG reader
    accepts (1 MiB, Pillow's limit), is left out rather than making a file this app cannot open.
    """
    notes: list[str] = []
    if fmt == "JPEG" and exif and len(exif) > JPEG_MAX_EXIF:
        trimmed, dropped = _trim_exif(exif, JPEG_MAX_EXIF)
        size = f"the EXIF block ({len(exif):,} bytes) is larger than a JPEG can hold (64 KB)"
        if trimmed is not None:
            notes.append(f"{size}: left out {', '.join(dropped)}")
        else:
            notes.append(f"{size}: it was left out")
        exif = trimmed
    limit = {"JPEG": JPEG_MAX_ICC, "PNG": PNG_MAX_ICC}.get(fmt)
    if icc and limit is not None and len(icc) > limit:
        notes.append(
            f"the ICC colour profile ({len(icc):,} bytes) is larger than a {fmt} reader accepts "
            f"({limit:,} bytes): it was left out"
        )
        icc = None
    return OutputMetadata(icc, exif, tuple(notes))


def check_format_dpi(fmt: str, dpi: float | None) -> None:
    """Refuse a DPI the format cannot record: JPEG stores it as a whole number from 1 to 65535."""
    if fmt == "JPEG" and dpi is not None and not (1 <= dpi <= 65535 and float(dpi).is_integer()):
        raise ArgumentError(
            f"invalid DPI {dpi:g} for JPEG: a JPEG records a whole number of DPI from 1 to 65535 "
            "(use .png or .tif for other values)"
        )


def report_notes(notes: Sequence[str], on_note: Callable[[str], None] | None) -> None:
    """Pass each note to `on_note`, or log it as a warning without one."""
    for note in notes:
        if on_note is not None:
            on_note(note)
        else:
            log.warning("%s", note)


def _new_file_mode(target: Path) -> int:
    """Permissions for the output: those of the file being replaced, else 0o666 minus the umask (mkstemp
    creates 0o600 files, which would make exported photos private to the user)."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o7777
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


#: Bytes of the output's name kept in its temporary name: `.NAME.XXXXXXXX.part` must fit in the 255 bytes
#: a file name may have, even when NAME itself is near that limit.
TEMP_NAME_BYTES = 200


def temp_prefix(name: str) -> str:
    """The prefix of a temporary file for output `name`: `.NAME.`, NAME cut to `TEMP_NAME_BYTES` bytes."""
    raw = os.fsencode(name)
    if len(raw) > TEMP_NAME_BYTES:
        name = raw[:TEMP_NAME_BYTES].decode("utf-8", "ignore")
    return f".{name}."


class CheckedFile(io.BufferedWriter):
    """A buffered output file that hides its descriptor from writers.

    Pillow writes JPEG and TIFF data straight to `fileno()` when it can, and ignores a short write there,
    so a full disk left a truncated file and no error. Without a descriptor it writes through `write`,
    where Python retries short writes and raises every error (ENOSPC included).
    """

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__(raw)
        self._fd = raw.fileno()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("the descriptor is hidden so that every write is checked")

    def sync(self) -> None:
        """Flush and fsync: the data is on the disk, or an OSError says why not."""
        self.flush()
        os.fsync(self._fd)


class OutputExistsError(ViewerError):
    """An output file exists and the caller asked to keep existing files (`--no-clobber`)."""


def _link_into_place(tmp: Path, target: Path) -> None:
    """Give the finished temporary file the name `target` only if no file has it (atomic where the
    filesystem has hard links; elsewhere checked just before the rename)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputExistsError(f"{target} already exists and was kept; nothing was written") from None
    except OSError:  # no hard links here (FAT, some network filesystems)
        if os.path.lexists(target):
            raise OutputExistsError(f"{target} already exists and was kept; nothing was written") from None
        os.replace(tmp, target)
        return
    tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes `path` only if the block completes.

    The data goes to a hidden `.NAME.XXXX.part` file in the same folder (so the final rename is atomic on
    the same filesystem); every write is checked (a `CheckedFile`: a full disk is an error, never a short
    file), then the file is flushed, fsynced and `os.replace`d over the target. With `replace=False` an
    existing target is kept and `OutputExistsError` raised. On any exception, KeyboardInterrupt (and the
    command line's SIGTERM and SIGHUP) and cancellation included, the temporary file is removed and the
    target untouched.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(p.name), suffix=".part", dir=parent)
    except OSError as exc:
        raise ViewerError(f"cannot write {p}: {exc.strerror or exc}") from None
    tmp_path = Path(tmp)
    try:
        with CheckedFile(io.FileIO(fd, "wb")) as fh:
            yield fh
            fh.sync()
        with contextlib.suppress(OSError):
            os.chmod(tmp_path, _new_file_mode(p))
        if replace:
            os.replace(tmp_path, p)
        else:
            _link_into_place(tmp_path, p)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise ViewerError(f"cannot write {p}: {exc.strerror or exc}") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# ------------------------------------------------------------------------------------------------------
# save_image
# ------------------------------------------------------------------------------------------------------


def _pil_image(colour: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    """L, LA, RGB, RGBA or I;16 (Pillow infers the mode from the array's shape and dtype)."""
    if colour.dtype == np.uint16:
        return Image.fromarray(np.ascontiguousarray(colour, dtype="<u2"))
    if alpha is not None:
        return Image.fromarray(np.dstack((colour, alpha)))
    return Image.fromarray(np.ascontiguousarray(colour))


def save_image(
    path: str | os.PathLike[str],
    rgb_u: np.ndarray,
    *,
    alpha_u: np.ndarray | None = None,
    grayscale: bool = False,
    bit_depth: int = 8,
    dpi: float | None = None,
    icc: bytes | None = None,
    exif: bytes | None = None,
    jpeg_quality: int = 92,
    replace: bool = True,
    on_note: Callable[[str], None] | None = None,
) -> None:
    """Write an image atomically, format by extension (.png, .jpg/.jpeg, .tif/.tiff).

    `rgb_u` is uint8 or uint16, (H, W, 3) or (H, W) for grey; with `grayscale=True` a colour array is
    reduced to BT.601 luma. `bit_depth` is the depth wanted; a format that cannot hold it gets 8 bits:
    JPEG always, and TIFF for 16-bit colour or grey with alpha (Pillow cannot write those). JPEG has no
    alpha channel: transparent areas are flattened onto white, the colour of the paper. The DPI is recorded
    as PNG pHYs, JPEG JFIF density or TIFF X/YResolution in inches; ICC and EXIF are embedded in all three,
    less what the format cannot hold (`fit_metadata`; each omission is a line to `on_note`, or a logged
    warning). `replace=False` keeps an existing file (`OutputExistsError`).
    """
    fmt = output_format(path)
    a = np.asarray(rgb_u)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {a.shape}")
    if a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {a.dtype}")
    if grayscale and a.ndim == 3:
        top = 255.0 if a.dtype == np.uint8 else 65535.0
        a = quantize(to_luma(a.astype(np.float32) / np.float32(top)), 8 if a.dtype == np.uint8 else 16)
    grey = a.ndim == 2
    alpha = None if alpha_u is None else np.asarray(alpha_u)
    if alpha is not None and alpha.shape != a.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image {a.shape[:2]}")
    depth = output_bit_depth(fmt, bit_depth, grey, alpha is not None)
    a = _convert_depth(a, depth)
    if alpha is not None:
        alpha = _convert_depth(alpha, depth)
    h, w = a.shape[:2]
    if dpi is not None and not (math.isfinite(dpi) and dpi > 0):
        raise ArgumentError(f"invalid DPI {dpi!r}: must be a positive number")
    if fmt == "JPEG" and not 1 <= int(jpeg_quality) <= 100:
        raise ArgumentError(f"invalid JPEG quality {jpeg_quality}: must be 1 to 100")
    check_format_limits(fmt, w, h, (1 if grey else 3) + (alpha is not None), depth)
    check_format_dpi(fmt, dpi)
    meta = fit_metadata(fmt, icc, exif_for_output(exif, w, h, dpi))
    report_notes(meta.notes, on_note)
    icc, exif = meta.icc, meta.exif
    if fmt == "PNG":
        channels = (1 if grey else 3) + (alpha is not None)
        with atomic_output(path, replace=replace) as fh:
            writer = PngBandWriter(fh, w, h, channels=channels, bit_depth=depth, dpi=dpi, icc=icc, exif=exif)
            step = max(1, (1 << 22) // max(1, w * channels))
            for r in range(0, h, step):
                block = a[r : r + step]
                if grey:
                    block = block[..., None]
                if alpha is not None:
                    block = np.concatenate((block, alpha[r : r + step, :, None]), axis=2)
                writer.write_rows(block)
            writer.close()
        return
    if fmt == "JPEG" and alpha is not None:
        k = alpha.astype(np.float32) / np.float32(255)
        k = k if grey else k[..., None]
        a = np.rint(a * k + np.float32(255) * (1 - k)).astype(np.uint8)
        alpha = None
    im = _pil_image(a, alpha)
    params: dict[str, Any] = {}
    if dpi is not None:
        params["dpi"] = (float(dpi), float(dpi))
    if icc:
        params["icc_profile"] = icc
    if exif:
        params["exif"] = exif
    if fmt == "JPEG":
        params.update(quality=int(jpeg_quality), optimize=True)
    # TIFF is left uncompressed: Pillow's compressed (libtiff) path cannot write the EXIF sub-IFD, and
    # keeping the photo's EXIF (dates, camera) matters more than the file size.
    with atomic_output(path, replace=replace) as fh:
        im.save(fh, format=fmt, **params)
