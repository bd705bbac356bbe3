"""The Export dialog: collects what to export and shows the resulting pixel size and magnification live.

It only gathers parameters and asks the engine's `plan_export` (no model, no torch) what they mean; the
export itself runs in the background through `viewer.engine.export.run_export`, like the command line's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from viewer.app.crop_preview import CropPreview, trim_text
from viewer.app.print_finish import PrintFinish
from viewer.app.settings import AppSettings
from viewer.engine.export import ExportPlan, plan_export
from viewer.engine.imageio import is_same_file
from viewer.engine.printsize import (
    DEFAULT_DPI,
    PRESETS,
    Length,
    PixelSize,
    PrintSize,
    match_orientation,
    print_pixels,
)
from viewer.engine.sharpen import Sharpen, UnsharpMask
from viewer.errors import ViewerError

TRAINED_MAX_SCALE = 4.0
"""The official LIIF models were trained on magnifications up to x4; beyond it detail is inferred."""

REGION_KINDS = ("selection", "view", "image")
REGION_LABELS = {"selection": "Selection", "view": "Current view", "image": "Whole image"}
FORMATS = {"PNG": ".png", "TIFF": ".tif", "JPEG": ".jpg"}
CUSTOM = "custom"
ORIENTATIONS = ("auto", "portrait", "landscape")
FITS = {"crop": "Crop to fill", "fit": "Fit inside"}


def preset_label(name: str) -> str:
    """'8x10in' -> '8 × 10 in'; 'A4' -> 'A4 (210 × 297 mm)'."""
    s = PRESETS[name]
    if name.endswith("in"):
        return f"{s.w:g} × {s.h:g} in"
    return f"{name} ({s.w:g} × {s.h:g} {s.unit})"


@dataclass(frozen=True)
class ExportChoice:
    """What the dialog decided: the plan, the file format and the JPEG quality."""

    plan: ExportPlan
    fmt: str
    suffix: str
    jpeg_quality: int
    size_label: str


class ExportDialog(QDialog):
    """Export parameters with a live preview of the output size; GUI thread only.

    With `choose_output`, Export… asks for the file name before the dialog closes, and a name that is the
    open photo (`source`: its path, a symlink or a hard link to it) is refused with a message while the
    dialog stays open: the original scan may be the only one.
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        regions: dict[str, tuple[float, float, float, float] | None],
        settings: AppSettings,
        parent: QWidget | None = None,
        preview: Sequence[QPixmap] | None = None,
        *,
        source: Path | None = None,
        choose_output: Callable[[ExportChoice], Path | None] | None = None,
    ) -> None:
        """`preview`: the photo's preview pyramid (largest first), for the crop preview; None: text only.
        `source`: the open photo's file; `choose_output`: asks for the output file (None: cancelled)."""
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._image_w, self._image_h = image_size
        self._regions = regions
        self._settings = settings
        self._source = source
        self._choose_output = choose_output
        self._output: Path | None = None
        self._plan: ExportPlan | None = None
        self._anchor = (0.5, 0.5)
        """Which part of the region Crop to fill keeps; centred until the preview is dragged."""

        # Region
        region_box = QGroupBox("Region")
        rl = QVBoxLayout(region_box)
        self._region_group = QButtonGroup(self)
        self._region_buttons: dict[str, QRadioButton] = {}
        for kind in REGION_KINDS:
            rect = regions.get(kind)
            text = REGION_LABELS[kind]
            if rect is not None:
                text += f"  ({rect[2]:.0f} × {rect[3]:.0f} source px)"
            b = QRadioButton(text)
            b.setEnabled(rect is not None)
            self._region_group.addButton(b)
            self._region_buttons[kind] = b
            rl.addWidget(b)

        # Size
        size_box = QGroupBox("Size")
        form = QFormLayout(size_box)
        self.preset = QComboBox()
        for name in PRESETS:
            self.preset.addItem(preset_label(name), name)
        self.preset.addItem("Custom", CUSTOM)
        form.addRow("Print size:", self.preset)
        custom_row = QWidget()
        cl = QHBoxLayout(custom_row)
        cl.setContentsMargins(0, 0, 0, 0)
        self.custom_w = QDoubleSpinBox()
        self.custom_h = QDoubleSpinBox()
        for sb in (self.custom_w, self.custom_h):
            sb.setRange(0.01, 100000)
            sb.setDecimals(2)
            sb.setKeyboardTracking(False)
        self.unit = QComboBox()
        self.unit.addItems(["in", "cm", "px"])
        cl.addWidget(self.custom_w)
        cl.addWidget(QLabel("×"))
        cl.addWidget(self.custom_h)
        cl.addWidget(self.unit)
        form.addRow("Custom:", custom_row)
        self.dpi = QSpinBox()
        self.dpi.setRange(1, 100000)
        self.dpi.setSuffix(" DPI")
        form.addRow("Resolution:", self.dpi)
        self.orientation = QComboBox()
        self.orientation.addItem("Auto (match the region)", "auto")
        self.orientation.addItem("Portrait", "portrait")
        self.orientation.addItem("Landscape", "landscape")
        form.addRow("Orientation:", self.orientation)
        self.fit = QComboBox()
        for key, label in FITS.items():
            self.fit.addItem(label, key)
        form.addRow("Fit:", self.fit)
        self.finish = PrintFinish()  # shared with the Export Folder dialog
        self.finish.add_rows(form)
        self.sharpen = self.finish.sharpen
        self.sharpen_strength = self.finish.sharpen_strength
        self.margin = self.finish.margin
        self.margin_mm = self.finish.margin_mm

        # What the export keeps of the region (only with a preview image of the photo)
        self.crop_preview: CropPreview | None = None
        self.crop_label = QLabel()
        self.crop_label.setWordWrap(True)
        self.crop_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        preview_box = QGroupBox("Preview")
        pl = QHBoxLayout(preview_box)
        if preview:
            self.crop_preview = CropPreview(preview, image_size)
            self.crop_preview.anchor_changed.connect(self.set_anchor)
            pl.addWidget(self.crop_preview)
        pl.addWidget(self.crop_label, 1)

        # Format
        fmt_box = QGroupBox("File")
        ff = QFormLayout(fmt_box)
        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        ff.addRow("Format:", self.format)
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        ff.addRow("JPEG quality:", self.quality)

        # Live result
        self.pixels_label = QLabel()
        self.pixels_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.mag_label = QLabel()
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #d08000;")
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d03030;")

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export…", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(region_box)
        layout.addWidget(size_box)
        layout.addWidget(preview_box)
        layout.addWidget(fmt_box)
        layout.addWidget(self.pixels_label)
        layout.addWidget(self.mag_label)
        layout.addWidget(self.warning_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self._restore()
        for sig in (
            self.preset.currentIndexChanged,
            self.unit.currentIndexChanged,
            self.orientation.currentIndexChanged,
            self.fit.currentIndexChanged,
            *self.finish.changed_signals(),
            self.format.currentIndexChanged,
            self.custom_w.valueChanged,
            self.custom_h.valueChanged,
            self.dpi.valueChanged,
            self._region_group.buttonToggled,
        ):
            sig.connect(self._update)
        self._update()

    # -- state ------------------------------------------------------------------------------------------
    def _restore(self) -> None:
        s = self._settings
        default_region = "selection" if self._regions.get("selection") else "image"
        self.set_region(default_region)
        self.select_preset(s.export_value("preset", "8x10in"))
        try:
            self.custom_w.setValue(float(s.export_value("custom_w", "8")))
            self.custom_h.setValue(float(s.export_value("custom_h", "10")))
            self.dpi.setValue(round(float(s.export_value("dpi", str(DEFAULT_DPI)))))
            self.quality.setValue(int(s.export_value("quality", "92")))
        except ValueError:
            self.dpi.setValue(int(DEFAULT_DPI))
            self.quality.setValue(92)
        self._set_combo(self.unit, s.export_value("unit", "in"), by_data=False)
        self._set_combo(self.orientation, s.export_value("orientation", "auto"))
        self._set_combo(self.fit, s.export_value("fit", "crop"))
        self.finish.restore(s.export_value)
        self._set_combo(self.format, s.export_value("format", "PNG"), by_data=False)

    def save_choices(self) -> None:
        """Remember the choices for next time."""
        s = self._settings
        s.set_export_value("preset", self.preset.currentData())
        s.set_export_value("custom_w", self.custom_w.value())
        s.set_export_value("custom_h", self.custom_h.value())
        s.set_export_value("unit", self.unit.currentText())
        s.set_export_value("dpi", self.dpi.value())
        s.set_export_value("orientation", self.orientation.currentData())
        s.set_export_value("fit", self.fit.currentData())
        self.finish.save(s.set_export_value)
        s.set_export_value("format", self.format.currentText())
        s.set_export_value("quality", self.quality.value())

    @staticmethod
    def _set_combo(combo: QComboBox, value: str, by_data: bool = True) -> None:
        i = combo.findData(value) if by_data else combo.findText(value)
        if i >= 0:
            combo.setCurrentIndex(i)

    # -- setters (also used by tests) --------------------------------------------------------------------
    def set_region(self, kind: str) -> None:
        b = self._region_buttons.get(kind)
        if b is not None and b.isEnabled():
            b.setChecked(True)

    def select_preset(self, name: str) -> None:
        self._set_combo(self.preset, name)

    def set_custom(self, w: float, h: float, unit: str) -> None:
        self.select_preset(CUSTOM)
        self._set_combo(self.unit, unit, by_data=False)
        self.custom_w.setValue(w)
        self.custom_h.setValue(h)

    def set_anchor(self, ax: float, ay: float) -> None:
        """Which part of the region a crop keeps: (0, 0) the top-left, (1, 1) the bottom-right."""
        self._anchor = (ax, ay)
        self._update()

    # -- the live result -----------------------------------------------------------------------------------
    def region_kind(self) -> str:
        for kind, b in self._region_buttons.items():
            if b.isChecked():
                return kind
        return "image"

    def _size(self) -> PrintSize | PixelSize:
        name = self.preset.currentData()
        if name != CUSTOM:
            return PRESETS[name]
        w, h, unit = self.custom_w.value(), self.custom_h.value(), self.unit.currentText()
        if unit == "px":
            return PixelSize(max(1, round(w)), max(1, round(h)))
        return PrintSize(w, h, unit)

    def compute_plan(self) -> ExportPlan:
        """The engine's plan for the current choices; raises ViewerError with a message for the person."""
        region = self._regions.get(self.region_kind())
        rw, rh = (region[2], region[3]) if region is not None else (self._image_w, self._image_h)
        size = self._size()
        dpi = float(self.dpi.value())
        orient = self.orientation.currentData()
        if isinstance(size, PrintSize):
            pw, ph = size.w, size.h
            if orient == "auto":
                pw, ph = match_orientation(pw, ph, rw, rh)
            box = PixelSize(*print_pixels(pw, ph, size.unit, dpi))
        else:
            box = size
        if (orient == "portrait" and box.w > box.h) or (orient == "landscape" and box.w < box.h):
            box = PixelSize(box.h, box.w)
        margins = self.margin_choice()
        return plan_export(
            self._image_w,
            self._image_h,
            region,
            box,
            dpi,
            self.fit.currentData(),
            anchor=self._anchor,
            sharpen=self.sharpen_choice(),
            border=margins.get("border"),
            bleed=margins.get("bleed"),
        )

    def margin_choice(self) -> dict[str, Length]:
        """{'border': …} or {'bleed': …} in mm as chosen, or {} for none."""
        return self.finish.margin_choice()

    def sharpen_choice(self) -> Sharpen | None:
        """The print sharpening chosen (None: off)."""
        return self.finish.sharpen_choice()

    def _update(self) -> None:
        custom = self.preset.currentData() == CUSTOM
        self.custom_w.setEnabled(custom)
        self.custom_h.setEnabled(custom)
        self.unit.setEnabled(custom)
        self.finish.update_enabled()
        self.quality.setEnabled(self.format.currentText() == "JPEG")
        self.error_label.clear()
        self.warning_label.clear()
        try:
            plan = self.compute_plan()
        except ViewerError as exc:
            self._plan = None
            self.pixels_label.setText("Output: —")
            self.mag_label.clear()
            self.error_label.setText(str(exc))
            self.export_button.setEnabled(False)
            self.crop_label.clear()
            if self.crop_preview is not None:
                self.crop_preview.set_rects(None, None)
            return
        self._plan = plan
        whole = (0.0, 0.0, float(self._image_w), float(self._image_h))
        region = self._regions.get(self.region_kind()) or whole
        self.crop_label.setText(trim_text(region, plan.rect))
        if self.crop_preview is not None:
            self.crop_preview.set_rects(region, plan.rect)
        inches = plan.print_inches()
        printed = ""
        if inches is not None and plan.dpi is not None:
            printed = (
                f" · prints {inches[0]:.2f} × {inches[1]:.2f} in "
                f"({inches[0] * 2.54:.1f} × {inches[1] * 2.54:.1f} cm) at {plan.dpi:g} DPI"
            )
        framed = ""
        if plan.border:
            framed = f" · photo {plan.out_w} × {plan.out_h} px inside a {plan.border} px white border"
        elif plan.bleed:
            framed = f" · with {plan.bleed} px bleed on each side"
        self.pixels_label.setText(
            f"Output: {plan.file_w} × {plan.file_h} px ({plan.megapixels:.1f} MP){printed}{framed}"
        )
        mag = f"Magnification: ×{plan.magnification:.2f} of the source pixels"
        if plan.sharpen is not None:
            usm = UnsharpMask.for_output(plan.sharpen, plan.dpi)
            mag += f" · sharpened: radius {usm.radius:.2g} px, amount {usm.amount:g}"
        self.mag_label.setText(mag)
        if plan.magnification > TRAINED_MAX_SCALE:
            self.warning_label.setText(
                f"Above ×{TRAINED_MAX_SCALE:g} the model goes beyond what it was trained for: the detail "
                "it adds is inferred, not recovered from the photo."
            )
        self.export_button.setEnabled(True)

    def pixel_size(self) -> tuple[int, int] | None:
        """The output size in pixels for the current choices, or None when they are invalid."""
        return None if self._plan is None else (self._plan.file_w, self._plan.file_h)

    def plan(self) -> ExportPlan | None:
        return self._plan

    def size_label(self) -> str:
        """A short label for file names: '8x10in', 'A4', '1920x1080px'."""
        name = self.preset.currentData()
        if name != CUSTOM:
            return str(name)
        unit = self.unit.currentText()
        return f"{self.custom_w.value():g}x{self.custom_h.value():g}{unit}"

    def choice(self) -> ExportChoice | None:
        if self._plan is None:
            return None
        fmt = self.format.currentText()
        return ExportChoice(self._plan, fmt, FORMATS[fmt], self.quality.value(), self.size_label())

    # -- the output file ------------------------------------------------------------------------------------
    def accept(self) -> None:
        """Export…: with a chooser, ask for the file and close only with one that is not the open photo;
        a cancelled file dialog or a refused name leaves this dialog open."""
        choice = self.choice()
        if choice is None:
            return
        if self._choose_output is not None:
            out = self._choose_output(choice)
            if out is None or not self.check_output(out):
                return
            self._output = out
        super().accept()

    def check_output(self, out: Path) -> bool:
        """Whether `out` may be written; False, with the reason shown here and in a warning, when it is
        the open photo (the same path, a symlink or a hard link to it)."""
        if self._source is None or not is_same_file(self._source, out):
            return True
        message = (
            f"{out.name} is the open photo: exporting there would replace the original. "
            "Choose another file name."
        )
        self.error_label.setText(message)
        QMessageBox.warning(self, "Export", message)
        return False

    def output_path(self) -> Path | None:
        """The file chosen with Export… (None until one was accepted)."""
        return self._output
