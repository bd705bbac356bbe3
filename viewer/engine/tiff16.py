"""16-bit colour TIFF writing with tifffile (Pillow writes 16-bit TIFF only for grey without alpha).

An export of a 48-bit scan to .tif keeps 16 bits per channel this way. The file is uncompressed like
Pillow's TIFFs, written through `atomic_output` (nothing is left on failure), with the DPI, the ICC
profile and the EXIF's IFD0 descriptions (camera make and model, date, artist, copyright, description,
software). tifffile cannot write the EXIF sub-IFD (exposure, original date), so that part is left out with
a note.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from viewer.engine.imageio import atomic_output, report_notes

#: IFD0 text tags copied from the source EXIF: description, make, model, software, date, artist, copyright.
_TEXT_TAGS = (270, 271, 272, 305, 306, 315, 33432)
_EXIF_IFD = 0x8769


def _exif_tags(exif: bytes | None) -> tuple[list[tuple[int, int, None, str, bool]], list[str]]:
    """tifffile extratags for the EXIF's IFD0 text, and a note when camera details must be left out."""
    if not exif:
        return [], []
    try:
        e = Image.Exif()
        e.load(exif)
        tags = [(t, 2, None, str(e[t]), True) for t in _TEXT_TAGS if isinstance(e.get(t), str) and e[t]]
        sub = e.get_ifd(_EXIF_IFD)
    except Exception:
        return [], ["the EXIF block could not be read and was left out of the 16-bit TIFF"]
    notes = (
        ["the EXIF camera details (exposure, original date) cannot be kept in a 16-bit colour TIFF"]
        if sub
        else []
    )
    return tags, notes


def write_tiff16(
    path: str | os.PathLike[str],
    colour_u: np.ndarray,
    *,
    alpha_u: np.ndarray | None = None,
    dpi: float | None = None,
    icc: bytes | None = None,
    exif: bytes | None = None,
    replace: bool = True,
    on_note: Callable[[str], None] | None = None,
) -> None:
    """Write uint16 (H, W, 3) or (H, W) pixels, with an optional straight alpha plane, as a TIFF."""
    import tifffile

    a = np.asarray(colour_u)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.dtype != np.uint16 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"expected uint16 (H, W, 3) or (H, W) pixels, got {a.dtype} {a.shape}")
    grey = a.ndim == 2
    if alpha_u is not None:
        alpha = np.asarray(alpha_u, dtype=np.uint16)
        a = np.concatenate((a[..., None] if grey else a, alpha[..., None]), axis=2)
    extratags, notes = _exif_tags(exif)
    report_notes(notes, on_note)
    kwargs: dict[str, Any] = {
        "photometric": "minisblack" if grey else "rgb",
        "planarconfig": "contig",
        "software": False,
        "metadata": None,
        "extratags": extratags,
    }
    if alpha_u is not None:
        kwargs["extrasamples"] = ["unassalpha"]
    if dpi is not None:
        kwargs["resolution"] = (float(dpi), float(dpi))
        kwargs["resolutionunit"] = "INCH"
    if icc:
        kwargs["iccprofile"] = icc
    with atomic_output(path, replace=replace) as fh:
        # A named handle: tifffile would read the name of the temporary file's descriptor (an int).
        handle = tifffile.FileHandle(fh, mode="wb", name=os.path.basename(path))
        tifffile.imwrite(handle, np.ascontiguousarray(a), **kwargs)
