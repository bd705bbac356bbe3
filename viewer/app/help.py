"""Help ▸ Keyboard Shortcuts: a table built from the window's own actions, plus the mouse gestures."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

MOUSE_GESTURES: tuple[tuple[str, str], ...] = (
    ("Shift+arrow keys", "Pan by half the view"),
    ("Wheel", "Zoom about the cursor"),
    ("Trackpad pinch", "Zoom about the fingers"),
    ("Trackpad two-finger scroll", "Pan (with Ctrl: zoom)"),
    ("Drag", "Pan"),
    ("Shift+drag, or drag in Select mode", "Select a region for export"),
    ("The same, inside the selection", "Move the selection"),
    ("The same, on its edge or corner", "Resize the selection"),
    ("Drag the divider", "Move the compare split"),
    ("Click or drag in the navigator", "Move the view there"),
    ("Drop a file on the window", "Open it"),
)


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """(keys, what) for every action that has a shortcut, in menu order."""
    rows = []
    for a in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts() if not k.isEmpty()]
        if keys:
            rows.append((", ".join(keys), a.text().replace("&", "").rstrip("…").rstrip(".")))
    return rows


class ShortcutsDialog(QDialog):
    """Lists the keyboard shortcuts and mouse gestures; GUI thread only."""

    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        rows = shortcut_rows(actions) + list(MOUSE_GESTURES)
        table = QTableWidget(len(rows), 2, self)
        table.setHorizontalHeaderLabels(["Keys / gesture", "Action"])
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (keys, what) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(keys))
            table.setItem(i, 1, QTableWidgetItem(what))
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
        self.resize(520, 560)
