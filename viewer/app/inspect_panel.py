"""The Inspect dock: overlay choices and the pixel probe's readout, with a diagram of the local ensemble.

The panel shows values the render worker computed (`viewer.engine.inspect.Probe`: plain floats); it never
runs the model. It reports what the person chose as an immutable `InspectOptions`. GUI thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.app.overlays import MEMBER_COLOURS
from viewer.engine.inspect import RGB, Probe

LayerKind = Literal["none", "pca", "channel", "difference"]

LAYER_CHOICES: tuple[tuple[LayerKind, str], ...] = (
    ("none", "None"),
    ("pca", "Feature map (PCA → RGB)"),
    ("channel", "Feature map: one channel"),
    ("difference", "What the model adds (LIIF − bicubic)"),
)


@dataclass(frozen=True)
class InspectOptions:
    """What Inspect mode draws: the lattice, one image layer at an opacity, and the hover probe."""

    lattice: bool = True
    layer: LayerKind = "none"
    channel: int = 0
    opacity: float = 0.6
    probe: bool = True


def _q(v: float) -> int:
    """A [0, 1] value as 0-255 (clamped)."""
    return max(0, min(255, round(v * 255)))


def rgb_colour(rgb: RGB, display: Any = None) -> QColor:
    """The swatch colour of a value in [0, 1]; with the photo's `display` transform, as the screen shows
    the photo (its numbers stay the photo's own)."""
    return _shown((_q(rgb[0]), _q(rgb[1]), _q(rgb[2])), display)


def _shown(rgb8: tuple[int, int, int], display: Any = None) -> QColor:
    if display is not None:
        import numpy as np

        r, g, b = (int(v) for v in display.rgb(np.array([[rgb8]], np.uint8))[0, 0])
        return QColor(r, g, b)
    return QColor(*rgb8)


def rgb_text(rgb: RGB, brackets: bool = True) -> str:
    """'(R, G, B)' in 0-255 with a warning mark where a value lies outside the displayable range."""
    parts = []
    for v in rgb:
        s = f"{v * 255:.0f}"
        parts.append(s + ("!" if v < 0 or v > 1 else ""))
    text = ", ".join(parts)
    return f"({text})" if brackets else text


# -- the diagram ---------------------------------------------------------------------------------------------
def paint_probe_diagram(painter: QPainter, area: QRectF, probe: Probe, display: Any = None) -> None:
    """Draw the probed point among its ensemble's latent centres (GUI thread, or any thread on a QImage).

    Each member's area weight is the rectangle between the point and the *opposite* member, so that
    rectangle is filled in the member's colour and labelled with its weight, as in the paper's figure 3.
    """
    members = probe.members
    xs = [m.centre[0] for m in members] + [probe.x]
    ys = [m.centre[1] for m in members] + [probe.y]
    # Frame the 2x2 neighbourhood: at least one source pixel around the centres, same scale on both axes.
    x0, x1 = min(xs) - 0.5, max(xs) + 0.5
    y0, y1 = min(ys) - 0.5, max(ys) + 0.5
    span = max(x1 - x0, y1 - y0, 1.0)
    margin = 26.0
    side = max(10.0, min(area.width(), area.height()) - 2 * margin)
    scale = side / span
    ox = area.center().x() - (x0 + x1) / 2 * scale
    oy = area.center().y() - (y0 + y1) / 2 * scale

    def at(x: float, y: float) -> QPointF:
        return QPointF(ox + x * scale, oy + y * scale)

    q = at(probe.x, probe.y)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.fillRect(area, QColor(30, 30, 34))
    # The source pixels (one latent code each) as faint cells.
    painter.setPen(QPen(QColor(255, 255, 255, 40), 1))
    for gx in range(int(x0 // 1), int(x1 // 1) + 2):
        painter.drawLine(at(gx, y0), at(gx, y1 + 1))
    for gy in range(int(y0 // 1), int(y1 // 1) + 2):
        painter.drawLine(at(x0, gy), at(x1 + 1, gy))
    n = len(members)
    font = QFont(painter.font())
    font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
    painter.setFont(font)
    if n == 4:
        for k, m in enumerate(members):
            opposite = members[n - 1 - k]
            colour = QColor(MEMBER_COLOURS[k])
            colour.setAlpha(70)
            r = QRectF(q, at(*opposite.centre)).normalized()
            painter.fillRect(r, colour)
            painter.setPen(QColor(MEMBER_COLOURS[k]))
            if r.width() > 30 and r.height() > 14:
                painter.drawText(r, Qt.AlignmentFlag.AlignCenter, f"{m.weight:.2f}")
    for k, m in enumerate(members):
        c = at(*m.centre)
        colour = MEMBER_COLOURS[k % len(MEMBER_COLOURS)]
        painter.setPen(QPen(colour, 1.0 + 4.0 * m.weight))
        painter.drawLine(q, c)
    seen: dict[tuple[int, int], int] = {}
    for k, m in enumerate(members):
        c = at(*m.centre)
        dup = seen.get(m.index, 0)
        seen[m.index] = dup + 1
        c = QPointF(c.x() + 4 * dup, c.y() + 4 * dup)  # members clamped to one code at the border
        colour = MEMBER_COLOURS[k % len(MEMBER_COLOURS)]
        painter.setPen(QPen(colour, 2.5))
        painter.setBrush(rgb_colour(m.rgb_clamped, display))
        painter.drawEllipse(c, 9, 9)
        label = f"[{m.index[0]}, {m.index[1]}]"
        painter.setPen(QColor(220, 220, 220))
        up = m.centre[1] <= probe.y
        left = m.centre[0] <= probe.x
        box = QRectF(c.x() - 60 if left else c.x(), c.y() - 28 if up else c.y() + 10, 60, 18)
        align = Qt.AlignmentFlag.AlignRight if left else Qt.AlignmentFlag.AlignLeft
        painter.drawText(box, align | Qt.AlignmentFlag.AlignVCenter, label)
    painter.setPen(QPen(QColor(0, 0, 0), 1.5))
    painter.setBrush(rgb_colour(probe.rgb_clamped, display))
    painter.drawRect(QRectF(q.x() - 7, q.y() - 7, 14, 14))
    painter.setPen(QPen(QColor(255, 255, 255), 1.5))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawRect(QRectF(q.x() - 9, q.y() - 9, 18, 18))
    painter.restore()


def render_probe_diagram(probe: Probe, size: QSize, display: Any = None) -> QImage:
    """The diagram as an image (for Help ▸ How it works)."""
    image = QImage(size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(QColor(30, 30, 34))
    painter = QPainter(image)
    paint_probe_diagram(painter, QRectF(0, 0, size.width(), size.height()), probe, display)
    painter.end()
    return image


class ProbeDiagram(QWidget):
    """The four latent codes around the probed point, their area weights and predictions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._probe: Probe | None = None
        self.display: Any = None
        """The open photo's `DisplayTransform` for the swatches (None: values shown as they are)."""
        self.setMinimumSize(220, 250)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(300, 250)

    def set_probe(self, probe: Probe | None) -> None:
        """GUI thread: show `probe` (None: the empty state)."""
        self._probe = probe
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """GUI thread: draw the cached probe (plain values; no model)."""
        painter = QPainter(self)
        area = QRectF(self.rect())
        if self._probe is None:
            painter.fillRect(area, QColor(30, 30, 34))
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(
                area.adjusted(12, 0, -12, 0),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                "Hover over the photo to see how LIIF computes that pixel",
            )
        else:
            paint_probe_diagram(painter, area, self._probe, self.display)
        painter.end()


def _swatch(colour: QColor, size: int = 14) -> QIcon:
    pm = QPixmap(size, size)
    pm.fill(colour)
    painter = QPainter(pm)
    painter.setPen(QColor(0, 0, 0))
    painter.drawRect(0, 0, size - 1, size - 1)
    painter.end()
    return QIcon(pm)


# -- the panel ------------------------------------------------------------------------------------------------
class InspectPanel(QWidget):
    """Overlay controls plus the probe readout: coordinate, cell, the four codes and the blended colour."""

    options_changed = Signal(object)
    """The person changed an option; carries the new `InspectOptions`."""

    def __init__(self, options: InspectOptions | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._options = options or InspectOptions()
        self._probe: Probe | None = None

        overlays = QGroupBox("Overlays")
        self.lattice_box = QCheckBox("Latent lattice (from 8 screen px per source pixel)")
        self.layer_combo = QComboBox()
        for kind, text in LAYER_CHOICES:
            self.layer_combo.addItem(text, kind)
        self.channel_spin = QSpinBox()
        self.channel_spin.setRange(0, 63)
        self.channel_spin.setPrefix("channel ")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_label = QLabel()
        self.layer_note = QLabel()
        self.layer_note.setWordWrap(True)
        self.layer_note.setStyleSheet("color: palette(mid);")
        self.probe_box = QCheckBox("Probe the pixel under the pointer")
        row = QHBoxLayout()
        row.addWidget(self.opacity_slider, 1)
        row.addWidget(self.opacity_label)
        form = QFormLayout(overlays)
        form.addRow(self.lattice_box)
        form.addRow("Layer", self.layer_combo)
        form.addRow("", self.channel_spin)
        form.addRow("Opacity", row)
        form.addRow(self.layer_note)
        form.addRow(self.probe_box)

        probe_group = QGroupBox("Pixel probe")
        self.where_label = QLabel()
        self.where_label.setWordWrap(True)
        self.where_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.diagram = ProbeDiagram()
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Code", "Relative", "Weight", "Predicts (RGB)"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._reserve_table_width()
        self.blend_label = QLabel()
        self.blend_label.setTextFormat(Qt.TextFormat.RichText)
        self.blend_label.setWordWrap(True)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("color: palette(mid);")
        pl = QVBoxLayout(probe_group)
        pl.addWidget(self.where_label)
        pl.addWidget(self.diagram)
        pl.addWidget(self.table)
        pl.addWidget(self.blend_label)
        pl.addWidget(self.status_label)

        layout = QVBoxLayout(self)
        layout.addWidget(overlays)
        layout.addWidget(probe_group, 1)
        layout.addStretch(0)

        self._apply_options_to_widgets()
        self.lattice_box.toggled.connect(lambda on: self._set(lattice=on))
        self.probe_box.toggled.connect(lambda on: self._set(probe=on))
        self.layer_combo.currentIndexChanged.connect(
            lambda _i: self._set(layer=self.layer_combo.currentData())
        )
        self.channel_spin.valueChanged.connect(lambda c: self._set(channel=int(c)))
        self.opacity_slider.valueChanged.connect(lambda v: self._set(opacity=v / 100.0))
        self.set_probe(None)

    def _reserve_table_width(self) -> None:
        """Make the table wide enough for any probe's row, so the panel's size hint (which sizes the dock)
        includes it and the columns never need a scroll bar."""
        t = self.table
        widest = ("[8888, 8888]", "+1.88, +1.88", "0.8888", "255, 255, 255")  # typical; rarer ones scroll
        t.setRowCount(1)
        for col, text in enumerate(widest):
            item = QTableWidgetItem(text)
            if col in (0, 3):
                item.setIcon(_swatch(QColor(0, 0, 0)))
            t.setItem(0, col, item)
        header = t.horizontalHeader()
        width = sum(max(t.sizeHintForColumn(c), header.sectionSizeHint(c)) for c in range(t.columnCount()))
        t.setRowCount(0)
        t.setMinimumWidth(width + 2 * t.frameWidth() + 2)

    # -- options ----------------------------------------------------------------------------------------------
    @property
    def options(self) -> InspectOptions:
        return self._options

    def set_options(self, options: InspectOptions) -> None:
        """GUI thread: show `options` (e.g. restored from settings) without emitting a change."""
        self._options = options
        self._apply_options_to_widgets()

    def set_channel_count(self, n: int) -> None:
        """GUI thread: the feature map's number of channels (64 for the official models)."""
        self.channel_spin.setMaximum(max(0, n - 1))

    def _apply_options_to_widgets(self) -> None:
        o = self._options
        widgets = (self.lattice_box, self.layer_combo, self.channel_spin, self.opacity_slider, self.probe_box)
        for w in widgets:
            w.blockSignals(True)
        self.lattice_box.setChecked(o.lattice)
        self.layer_combo.setCurrentIndex(max(0, self.layer_combo.findData(o.layer)))
        self.channel_spin.setValue(o.channel)
        self.opacity_slider.setValue(round(o.opacity * 100))
        self.probe_box.setChecked(o.probe)
        for w in widgets:
            w.blockSignals(False)
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        o = self._options
        self.channel_spin.setEnabled(o.layer == "channel")
        self.opacity_slider.setEnabled(o.layer != "none")
        self.opacity_label.setText(f"{o.opacity * 100:.0f}%")
        self.layer_note.setText(
            {
                "none": "",
                "pca": "The 64 numbers of each latent code, reduced to 3 by a PCA of this photo's codes: "
                "similar colours mean similar codes.",
                "channel": "One of the 64 feature channels: blue negative, grey zero, red positive.",
                "difference": "Where LIIF's rendering differs from bicubic interpolation of the same view: "
                "the detail the network infers. Brighter means a larger difference.",
            }[o.layer]
        )

    def _set(self, **changes: object) -> None:
        """GUI thread (widget signals): update the options and announce them."""
        self._options = replace(self._options, **changes)  # type: ignore[arg-type]
        self._sync_enabled()
        self.options_changed.emit(self._options)

    # -- the probe --------------------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        """GUI thread: a line under the probe (waiting for the encoder, probing, ...)."""
        self.status_label.setText(text)

    def set_display(self, display: Any) -> None:
        """The open photo's `DisplayTransform` (None: none): swatches show colours as the canvas does."""
        self.diagram.display = display
        self.diagram.update()

    def set_probe(self, probe: Probe | None, source_rgb: tuple[int, int, int] | None = None) -> None:
        """GUI thread: show a probe result from the render worker (None clears the readout).

        `source_rgb` is the photo's own pixel under the point, for comparison.
        """
        self._probe = probe
        self.diagram.set_probe(probe)
        if probe is None:
            self.where_label.setText("No pixel probed yet.")
            self.table.setRowCount(0)
            self.blend_label.setText("")
            return
        fw, fh = probe.feature_size
        cw, ch = probe.cell_px
        cell_line = (
            f"decoder input cell ({probe.rel_cell[0]:.4f}, {probe.rel_cell[1]:.4f})"
            if probe.cell_decode
            else "this model does not use the cell"
        )
        self.where_label.setText(
            f"Point x {probe.x:.3f}, y {probe.y:.3f} source px (feature map {fw} × {fh})\n"
            f"Coordinate (row, col) = ({probe.coord[0]:+.5f}, {probe.coord[1]:+.5f}) in [−1, 1]\n"
            f"Cell {cw:.4f} × {ch:.4f} source px (×{probe.magnification:.2f}); normalised "
            f"({probe.cell[0]:.5f}, {probe.cell[1]:.5f}); {cell_line}"
        )
        self.table.setRowCount(len(probe.members))
        for k, m in enumerate(probe.members):
            code = QTableWidgetItem(f"[{m.index[0]}, {m.index[1]}]")
            code.setIcon(_swatch(MEMBER_COLOURS[k % len(MEMBER_COLOURS)]))
            code.setToolTip(f"The {m.name} code: row {m.index[0]}, column {m.index[1]} of the feature map")
            rel = QTableWidgetItem(f"{m.rel[0]:+.2f}, {m.rel[1]:+.2f}")
            rel.setToolTip(
                "Relative coordinate (row, col) the decoder receives: 2 units per source pixel.\n"
                f"Offset from the code's centre: dx {m.offset[0]:+.3f}, dy {m.offset[1]:+.3f} source px"
            )
            weight = QTableWidgetItem(f"{m.weight:.4f}")
            pred = QTableWidgetItem(rgb_text(m.rgb, brackets=False))
            pred.setIcon(_swatch(rgb_colour(m.rgb_clamped, self.diagram.display)))
            pred.setToolTip("Decoder output de-normalised to 0-255; '!' marks a value outside 0-255")
            for col, item in enumerate((code, rel, weight, pred)):
                self.table.setItem(k, col, item)
        self.table.setFixedHeight(
            self.table.horizontalHeader().height()
            + sum(self.table.rowHeight(r) for r in range(len(probe.members)))
            + 4
        )
        blended = rgb_colour(probe.rgb_clamped, self.diagram.display)
        source = ""
        if source_rgb is not None:
            sc = _shown(source_rgb, self.diagram.display)
            source = f" &nbsp; source pixel <span style='background:{sc.name()}'>&nbsp;&nbsp;&nbsp;&nbsp;</span> {source_rgb}"
        self.blend_label.setText(
            f"Blended <span style='background:{blended.name()}'>&nbsp;&nbsp;&nbsp;&nbsp;</span> "
            f"<b>{rgb_text(probe.rgb)}</b> {blended.name()}{source}<br>"
            f"Σ weights = {probe.weight_sum:.6f}"
        )

    @property
    def probe(self) -> Probe | None:
        return self._probe
