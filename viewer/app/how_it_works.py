"""Help ▸ How it works: a short, accurate account of LIIF, illustrated with the open photo.

The illustrations are made from the photo the person is looking at: its feature map projected by PCA and a
probe (both computed by the render worker and delivered as plain data) and a crop of its pixels with the
latent lattice drawn on it. With no photo open, the page is text only. GUI thread only.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt, QUrl
from PySide6.QtGui import QImage, QPainter, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from viewer.app.inspect_panel import render_probe_diagram
from viewer.app.overlays import paint_lattice, paint_probe, rgb_to_qimage
from viewer.engine.inspect import Probe, lattice_lines

PAPER_URL = "https://arxiv.org/abs/2012.09161"
CODE_URL = "https://github.com/yinboc/liif"
CROP_PIXELS = 12
"""Source pixels on each side of the lattice illustration."""
CROP_ZOOM = 24
"""Screen pixels per source pixel in the lattice illustration."""
ILLUSTRATION_MAGNIFICATION = 8.0
"""The probe illustration samples a pixel of a x8 view: beyond the training range, to make the point."""
PCA_MAX_SIDE = 420
PCA_MIN_SIDE = 240


@dataclass(frozen=True)
class Illustrations:
    """What the page shows of the open photo. Arrays are plain data from the worker or the photo."""

    photo_name: str
    rgb8: np.ndarray
    """The photo, uint8 (H, W, 3)."""
    centre: tuple[float, float]
    """Source point (x, y) the crop and the probe are centred on."""
    pca: np.ndarray | None = None
    """`pca_rgb` of the photo's feature map, once the worker has it."""
    probe: Probe | None = None
    """A probe at `centre` at x8, once the worker has it."""
    display: Any = None
    """The photo's `DisplayTransform` to sRGB (None: its values are shown as they are)."""


def crop_box(
    width: int, height: int, centre: tuple[float, float], n: int = CROP_PIXELS
) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of an n x n (or smaller, for a small photo) crop around `centre`, inside the photo."""
    w, h = min(n, width), min(n, height)
    x0 = int(min(max(0, round(centre[0] - w / 2)), width - w))
    y0 = int(min(max(0, round(centre[1] - h / 2)), height - h))
    return x0, y0, w, h


def lattice_illustration(
    rgb8: np.ndarray, centre: tuple[float, float], probe: Probe | None = None, display: Any = None
) -> QImage:
    """A crop of the photo, each source pixel enlarged to a block, with the latent lattice (and the probe);
    converted by `display` for a photo with a colour profile."""
    height, width = rgb8.shape[:2]
    x0, y0, w, h = crop_box(width, height, centre)
    part = rgb8[y0 : y0 + h, x0 : x0 + w]
    if display is not None:
        part = display.rgb(part)
    crop = np.repeat(np.repeat(part, CROP_ZOOM, axis=0), CROP_ZOOM, axis=1)
    image = rgb_to_qimage(crop).convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    painter = QPainter(image)
    lattice = lattice_lines((x0, y0, w, h), w * CROP_ZOOM, h * CROP_ZOOM)
    paint_lattice(painter, lattice, QPointF(0, 0))
    if probe is not None:
        paint_probe(painter, probe, lambda x, y: QPointF((x - x0) * CROP_ZOOM, (y - y0) * CROP_ZOOM))
    painter.end()
    return image


def _pca_image(pca: np.ndarray) -> QImage:
    """The feature image at a readable size: large ones scaled down smoothly, small ones enlarged in blocks."""
    image = rgb_to_qimage(pca)
    longest = max(image.width(), image.height())
    if longest < PCA_MIN_SIDE:
        k = -(-PCA_MIN_SIDE // longest)
        return image.scaled(image.width() * k, image.height() * k)  # nearest: each code stays a block
    if longest > PCA_MAX_SIDE:
        image = image.scaled(
            PCA_MAX_SIDE,
            PCA_MAX_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return image


def page_html(ill: Illustrations | None) -> str:
    """The page's HTML; images are referenced as illus:// resources (see `HowItWorksDialog`)."""
    name = html.escape(ill.photo_name) if ill is not None else ""

    def figure(key: str, caption: str, ready: bool) -> str:
        if ill is None:
            return ""
        if not ready:
            return f"<p><i>Computing the illustration from {name}…</i></p>"
        return f"<p align='center'><img src='illus://{key}'><br><small>{caption}</small></p>"

    cx, cy = ill.centre if ill is not None else (0.0, 0.0)
    # The probe samples the centre of the x8 output pixel that holds `centre`: name that point, not `centre`.
    px, py = (ill.probe.x, ill.probe.y) if ill is not None and ill.probe is not None else (cx, cy)
    parts = [
        "<h2>How LIIF rebuilds your photo at any zoom</h2>",
        "<p>This viewer does not enlarge pixels. It turns the photo into a <i>continuous</i> representation "
        "and computes each screen pixel's colour from that pixel's coordinates, at whatever zoom you choose. "
        "The method is LIIF, the Local Implicit Image Function.</p>",
        "<h3>1. Encoder → feature map</h3>",
        "<p>A convolutional network (EDSR-baseline without its upsampling stage) reads the photo once and "
        "produces a <b>feature map</b> of the same width and height: one <b>latent code</b> of 64 numbers per "
        "source pixel, describing that pixel together with its surroundings. This is the only step that "
        "looks at the pixels; everything after works from the codes.</p>",
        figure(
            "pca",
            f"The feature map of {name}. Its 64 channels are reduced to three colours by a principal "
            "component analysis of this photo's codes: areas with similar codes get similar colours. "
            "Inspect ▸ Layer shows it over the photo, or any single channel.",
            ill is not None and ill.pca is not None,
        ),
        "<h3>2. Continuous coordinates</h3>",
        "<p>The image is treated as a function over a continuous square: coordinates run from −1 to 1 across "
        "the photo, and each latent code sits at the centre of its source pixel. A screen pixel asks for the "
        "colour at its own centre, which can fall anywhere between the codes: at ×10, a hundred screen "
        "pixels share one source pixel and each has its own coordinate.</p>",
        figure(
            "lattice",
            f"A {CROP_PIXELS} × {CROP_PIXELS} pixel crop of {name} around ({cx:.0f}, {cy:.0f}), each source "
            "pixel enlarged. The grid is the lattice of latent codes: one cell per source pixel, a dot at each "
            "code's position. Inspect mode draws it on the view once a source pixel spans 8 screen pixels.",
            ill is not None,
        ),
        "<h3>3. The MLP decoder</h3>",
        "<p>A small multilayer perceptron (four hidden layers of 256 units with ReLU), the same for every "
        "photo and every position, predicts an RGB colour from three inputs: a latent code (with LIIF's "
        "<i>feature unfolding</i>, the code together with its 3 × 3 neighbours, 576 numbers), the "
        "<b>relative coordinate</b> from that code's centre to the queried point, and the cell (step 5). "
        "Only the code and the offset change from pixel to pixel.</p>",
        "<h3>4. The local ensemble</h3>",
        "<p>If every point used only its nearest code, the colour would jump where the nearest code changes. "
        "LIIF asks the four codes around the point instead (top-left, top-right, bottom-left, bottom-right) "
        "and blends their four predictions. Each prediction is weighted by the area of the rectangle between "
        "the point and the <i>diagonally opposite</i> code, divided by the total: the nearer a code, the "
        "larger its weight, and the four weights sum to 1.</p>",
        figure(
            "probe",
            f"How the pixel at ({px:.2f}, {py:.2f}) of {name} is computed at ×"
            f"{ILLUSTRATION_MAGNIFICATION:.0f}: the four codes (circles, filled with each one's prediction), "
            "the rectangles whose areas weight them (labelled with the weights) and the blended colour "
            "(square). Inspect mode's probe shows this for any pixel under the pointer, computed by the same "
            "code that paints the view.",
            ill is not None and ill.probe is not None,
        ),
        "<h3>5. Cell decoding</h3>",
        "<p>A screen pixel covers an area, not a point. LIIF also gives the decoder the size of that area, "
        "the <b>cell</b>, so that it predicts the colour of the whole footprint: at ×2 a cell is half a "
        "source pixel wide, at ×10 a tenth. Without it the same coordinate would get the same colour at every "
        "zoom, too blurry when zoomed out and with no way to sharpen when zoomed in.</p>",
        "<h3>6. Why detail beyond ×4 is inferred</h3>",
        "<p>The photo holds one pixel's worth of information per source pixel. Everything between the codes "
        "is the decoder's estimate, learned from training photos (the DIV2K set) shrunk by random factors "
        "between ×1 and ×4. Up to ×4 the network does what it was trained for. Beyond ×4 it is asked about "
        "cells smaller than any it saw in training: LIIF still draws clean edges (the paper evaluates it up "
        "to ×30), but that detail is extrapolated, plausible rather than recovered. The viewer shows a small "
        "indicator beyond ×4, and Inspect ▸ Layer ▸ What the model adds shows where LIIF departs from plain "
        "bicubic interpolation.</p>",
        "<h3>Sources</h3>",
        "<p>Yinbo Chen, Sifei Liu, Xiaolong Wang. <i>Learning Continuous Image Representation with Local "
        f"Implicit Image Function.</i> CVPR 2021. <a href='{PAPER_URL}'>arXiv:2012.09161</a>.<br>"
        f"Official code and weights: <a href='{CODE_URL}'>github.com/yinboc/liif</a>.<br>"
        "This viewer splits the decoder's first layer for speed (the part that depends only on a code is "
        "computed once per code); its tests check that it computes the same function as the paper's "
        "formulation.</p>",
    ]
    if ill is None:
        parts.insert(1, "<p><i>Open a photo to see these steps illustrated with it.</i></p>")
    return "\n".join(p for p in parts if p)


class HowItWorksDialog(QDialog):
    """Help ▸ How it works; `set_illustrations` fills in the open photo's pictures as they arrive."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("How it works")
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        self.resize(640, 760)
        self.illustrations: Illustrations | None = None
        self.set_illustrations(None)

    def set_illustrations(self, ill: Illustrations | None) -> None:
        """GUI thread: (re)build the page for `ill` (None: no photo open), keeping the scroll position."""
        self.illustrations = ill
        doc = self.browser.document()
        images: dict[str, QImage] = {}
        if ill is not None:
            images["lattice"] = lattice_illustration(ill.rgb8, ill.centre, ill.probe, ill.display)
            if ill.pca is not None:
                images["pca"] = _pca_image(ill.pca)
            if ill.probe is not None:
                images["probe"] = render_probe_diagram(ill.probe, QSize(320, 280), ill.display)
        for key, image in images.items():
            doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(f"illus://{key}"), image)
        bar = self.browser.verticalScrollBar()
        pos = bar.value()
        self.browser.setHtml(page_html(ill))
        bar.setValue(pos)
        self.images = images
