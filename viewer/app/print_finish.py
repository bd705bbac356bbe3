"""The print finish choices shared by File ▸ Export… and File ▸ Export Folder…: print sharpening (medium
and strength) and a white border or a bleed in millimetres.

One set of widgets and one reading of them, so both dialogs offer the same choices, turn them into the
same engine values (`Sharpen`, `Length`, as `--sharpen`, `--border` and `--bleed` do) and remember them
the same way (each dialog under its own settings keys).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import SignalInstance
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QWidget

from viewer.engine.printsize import Length
from viewer.engine.sharpen import MEDIA, STRENGTHS, Sharpen

SHARPEN_MEDIA = {"none": "Off", "screen": "Screen", "matte": "Matte paper", "glossy": "Glossy paper"}
"""Print sharpening choices (`viewer.engine.sharpen`); off by default."""
MARGINS = {"none": "None", "border": "White border", "bleed": "Bleed"}
"""Paper around the photo (a border inside the page) or photo beyond it (a bleed, trimmed off)."""
MARGIN_DEFAULT_MM = {"border": 5.0, "bleed": 3.0}


class PrintFinish:
    """The sharpening and margin widgets, their values as engine objects, and their saved state.

    The owner adds the two rows to its form (`add_rows`), connects `changed_signals` to its update, and
    calls `update_enabled` there (a strength only with sharpening, a width only with a margin)."""

    def __init__(self) -> None:
        self.sharpen_row = QWidget()
        sl = QHBoxLayout(self.sharpen_row)
        sl.setContentsMargins(0, 0, 0, 0)
        self.sharpen = QComboBox()
        for key, label in SHARPEN_MEDIA.items():
            self.sharpen.addItem(label, key)
        self.sharpen.setToolTip("Print sharpening for the medium (an unsharp mask sized to the DPI)")
        self.sharpen_strength = QComboBox()
        for key in STRENGTHS:
            self.sharpen_strength.addItem(key.title(), key)
        sl.addWidget(self.sharpen, 1)
        sl.addWidget(self.sharpen_strength)

        self.margin_row = QWidget()
        ml = QHBoxLayout(self.margin_row)
        ml.setContentsMargins(0, 0, 0, 0)
        self.margin = QComboBox()
        for key, label in MARGINS.items():
            self.margin.addItem(label, key)
        self.margin.setToolTip(
            "White border: paper inside the page, the photo fitted to the rest. "
            "Bleed: the photo goes past the page on each side, to be trimmed after printing."
        )
        self.margin_mm = QDoubleSpinBox()
        self.margin_mm.setRange(0.0, 500.0)
        self.margin_mm.setDecimals(1)
        self.margin_mm.setSuffix(" mm")
        self.margin_mm.setKeyboardTracking(False)
        ml.addWidget(self.margin, 1)
        ml.addWidget(self.margin_mm)

    def add_rows(self, form: QFormLayout) -> None:
        """The "Sharpen for:" and "Margin:" rows, at the end of `form`."""
        form.addRow("Sharpen for:", self.sharpen_row)
        form.addRow("Margin:", self.margin_row)

    def changed_signals(self) -> tuple[SignalInstance, ...]:
        """The signals that change the choice (for the owner's live update)."""
        return (
            self.sharpen.currentIndexChanged,
            self.sharpen_strength.currentIndexChanged,
            self.margin.currentIndexChanged,
            self.margin_mm.valueChanged,
        )

    def sharpen_choice(self) -> Sharpen | None:
        """The print sharpening chosen (None: off)."""
        medium = self.sharpen.currentData()
        return Sharpen(medium, self.sharpen_strength.currentData()) if medium in MEDIA else None

    def margin_choice(self) -> dict[str, Length]:
        """{'border': …} or {'bleed': …} in mm as chosen, or {} for none (`plan_export`'s keywords)."""
        kind = self.margin.currentData()
        return {kind: Length(self.margin_mm.value(), "mm")} if kind in MARGIN_DEFAULT_MM else {}

    def update_enabled(self, enabled: bool = True) -> None:
        """Enable the rows (`enabled`: e.g. not for a scaled photo, which has no page for a margin), the
        strength only with sharpening and the width only with a border or bleed."""
        self.sharpen_strength.setEnabled(self.sharpen.currentData() in MEDIA)
        self.margin.setEnabled(enabled)
        self.margin_mm.setEnabled(enabled and self.margin.currentData() in MARGIN_DEFAULT_MM)

    def restore(self, value: Callable[[str, str], str], prefix: str = "") -> None:
        """Set the widgets from saved values (`value(name, default)`, names under `prefix`), then start
        giving a newly chosen border or bleed its usual width (not while restoring a saved one)."""
        _set_combo(self.sharpen, value(f"{prefix}sharpen", "none"))
        _set_combo(self.sharpen_strength, value(f"{prefix}sharpen_strength", "standard"))
        _set_combo(self.margin, value(f"{prefix}margin", "none"))
        try:
            self.margin_mm.setValue(float(value(f"{prefix}margin_mm", "5")))
        except ValueError:
            self.margin_mm.setValue(MARGIN_DEFAULT_MM["border"])
        self.margin.currentIndexChanged.connect(self._margin_kind_changed)

    def save(self, set_value: Callable[[str, object], None], prefix: str = "") -> None:
        """Remember the choices (`set_value(name, value)`, names under `prefix`)."""
        set_value(f"{prefix}sharpen", self.sharpen.currentData())
        set_value(f"{prefix}sharpen_strength", self.sharpen_strength.currentData())
        set_value(f"{prefix}margin", self.margin.currentData())
        set_value(f"{prefix}margin_mm", self.margin_mm.value())

    def _margin_kind_changed(self) -> None:
        """A border or a bleed chosen anew starts at its usual width (5 mm border, 3 mm bleed)."""
        kind = self.margin.currentData()
        if kind in MARGIN_DEFAULT_MM:
            self.margin_mm.setValue(MARGIN_DEFAULT_MM[kind])


def _set_combo(combo: QComboBox, value: str) -> None:
    i = combo.findData(value)
    if i >= 0:
        combo.setCurrentIndex(i)
