"""Undo and redo for the export selection, the one thing in the viewer a person builds up by hand.

A careful selection of a face is easy to lose: a stray Shift+click or `Esc` clears it. Every completed
change (a drag that draws, moves or resizes it, Select Whole Image, Clear Selection) becomes one step on a
`QUndoStack`, so Edit ▸ Undo (`Ctrl+Z`) brings the previous selection back. Opening another photo starts a new history,
since a selection belongs to its photo. GUI thread only; nothing here touches the model.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QUndoCommand, QUndoStack

from viewer.app.view_controller import ViewController

Rect = tuple[float, float, float, float]


class SelectionCommand(QUndoCommand):
    """One selection change: `before` and `after` are source-pixel rectangles, or None for no selection."""

    def __init__(self, history: SelectionHistory, before: Rect | None, after: Rect | None, text: str) -> None:
        super().__init__(text)
        self._history = history
        self._before = before
        self._after = after

    def redo(self) -> None:
        """Apply the change (Qt calls this once when the command is pushed, then on every redo)."""
        self._history._apply(self._after)

    def undo(self) -> None:
        """Put the previous selection back."""
        self._history._apply(self._before)


class SelectionHistory(QObject):
    """The undo stack of one photo's selection, kept in step with `ViewController.selection`."""

    def __init__(self, view: ViewController, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._view = view
        self.stack = QUndoStack(self)
        self._committed: Rect | None = view.selection

    def change(self, rect: Rect | None, text: str) -> None:
        """Set the selection to `rect` (clipped to the photo) as one undoable step; no step if unchanged."""
        before = self._committed
        self._view.set_selection(rect)
        self._push(before, text)

    def record(self, text: str) -> None:
        """Make the selection the view already shows (a finished rubber-band drag) one undoable step."""
        self._push(self._committed, text)

    def reset(self) -> None:
        """Forget every step: a new photo starts a new history."""
        self.stack.clear()
        self._committed = self._view.selection

    def _push(self, before: Rect | None, text: str) -> None:
        after = self._view.selection
        if after == before:
            return
        self.stack.push(SelectionCommand(self, before, after, text))

    def _apply(self, rect: Rect | None) -> None:
        if self._view.selection != rect:
            self._view.set_selection(rect)
        self._committed = self._view.selection
