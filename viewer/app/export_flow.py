"""File ▸ Export… for the main window: the dialog, the file name, the background run and its outcome.

`ExportFlow` opens the `ExportDialog` on the open photo (whole image, selection or view), asks for the
output file, and hands the plan to `AppController.start_export`, which runs it on the render worker, never
on the GUI thread. While it runs, a non-modal progress dialog with Cancel shows how far it is and the window
stays usable; the controller's export signals end it (finished, failed or cancelled: no file is written).
Every method runs on the GUI thread. Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Qt
from PySide6.QtWidgets import QFileDialog, QProgressDialog, QWidget

from viewer import paths
from viewer.app.controller import AppController
from viewer.app.export_dialog import ExportChoice, ExportDialog
from viewer.app.settings import AppSettings
from viewer.engine.export import ExportPlan


def default_export_dir(photo: Path) -> Path:
    """Where Export suggests saving when it has not been used yet: the photo's folder, unless that is the
    app's own resources (the bundled sample) or not writable; then the Pictures folder, or home."""
    folder = photo.parent
    try:
        bundled = folder.resolve() == paths.resources_dir().resolve()
    except OSError:
        bundled = False
    if not bundled and os.access(folder, os.W_OK):
        return folder
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    if pictures and Path(pictures).is_dir() and os.access(pictures, os.W_OK):
        return Path(pictures)
    return Path.home()


class ExportFlow(QObject):
    """One export of the open photo at a time, for `window`; GUI thread only.

    `status(text, milliseconds)` shows a temporary status-bar message, `show_error(title, message)` a
    failure, and `changed()` is called when an export starts or ends (the window enables its actions).
    """

    def __init__(
        self,
        window: QWidget,
        controller: AppController,
        settings: AppSettings,
        *,
        status: Callable[[str, int], None],
        show_error: Callable[[str, str], None],
        changed: Callable[[], None],
    ) -> None:
        super().__init__(window)
        self._window = window
        self.controller = controller
        self.settings = settings
        self._status = status
        self._show_error = show_error
        self._changed = changed
        self.export_id: int | None = None
        """The running export's id (None: none runs)."""
        self.progress_dialog: QProgressDialog | None = None
        controller.export_progress.connect(self._on_progress)
        controller.export_finished.connect(self._on_finished)
        controller.export_failed.connect(self._on_failed)
        controller.export_cancelled.connect(self._on_cancelled)

    @property
    def running(self) -> bool:
        return self.export_id is not None

    def open_dialog(self, region: str | None = None) -> None:
        """File ▸ Export: choose the region and print size, then a file name, then run in the background."""
        view = self.controller.view
        photo = view.photo
        if photo is None or self.export_id is not None:
            return
        regions = {
            "selection": view.selection,
            "view": view.view_region(),
            "image": (0.0, 0.0, float(photo.width), float(photo.height)),
        }
        dlg = ExportDialog(
            (photo.width, photo.height),
            regions,
            self.settings,
            self._window,
            preview=photo.levels,
            source=photo.path,
            choose_output=lambda c: self._ask_path(photo.path, c),
        )
        if region is not None:
            dlg.set_region(region)
        if dlg.exec() != ExportDialog.DialogCode.Accepted:
            return
        dlg.save_choices()
        choice, out = dlg.choice(), dlg.output_path()
        if choice is None or out is None:
            return
        self.settings.set_last_dir(out.parent, "export")
        self.start(choice.plan, out, choice.jpeg_quality)

    def _ask_path(self, photo: Path, choice: ExportChoice) -> Path | None:
        """The Export dialog's file step: a save dialog in the last export folder; None when cancelled."""
        folder = self.settings.last_dir("export") or str(default_export_dir(photo))
        suggested = str(Path(folder) / f"{photo.stem}-{choice.size_label}{choice.suffix}")
        filters = {"PNG": "PNG (*.png)", "TIFF": "TIFF (*.tif *.tiff)", "JPEG": "JPEG (*.jpg *.jpeg)"}
        name, _ = QFileDialog.getSaveFileName(self._window, "Export", suggested, filters[choice.fmt])
        if not name:
            return None
        out = Path(name)
        if out.suffix.lower() not in (".png", ".tif", ".tiff", ".jpg", ".jpeg"):
            out = out.with_suffix(choice.suffix)
        return out

    def start(self, plan: ExportPlan, out: Path, jpeg_quality: int = 92) -> int:
        """Run an export in the background with a progress dialog and Cancel; the window stays usable."""
        export_id = self.controller.start_export(plan, out, jpeg_quality)
        self.export_id = export_id
        dlg = QProgressDialog(f"Exporting {out.name}…", "Cancel", 0, 1000, self._window)
        dlg.setWindowTitle("Export")
        dlg.setWindowModality(Qt.WindowModality.NonModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(lambda: self.controller.cancel_export(export_id))
        dlg.show()
        self.progress_dialog = dlg
        self._changed()
        return export_id

    def cancel(self) -> None:
        """Ask the running export, if any, to stop; it ends through `export_cancelled` (no file is left)."""
        if self.export_id is not None:
            self.controller.cancel_export(self.export_id)

    def _on_progress(self, export_id: int, done: int, total: int) -> None:
        if export_id == self.export_id and self.progress_dialog is not None:
            self.progress_dialog.setValue(int(1000 * done / max(1, total)))

    def _end(self, export_id: int) -> bool:
        if export_id != self.export_id:
            return False
        self.export_id = None
        if self.progress_dialog is not None:
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None
        self._changed()
        return True

    def _on_finished(self, export_id: int, path: str, seconds: float) -> None:
        if self._end(export_id):
            self._status(f"Exported {path} in {seconds:.1f} s", 10000)

    def _on_failed(self, export_id: int, message: str) -> None:
        if self._end(export_id):
            self._show_error("Export failed", f"{message}. No file was written.")

    def _on_cancelled(self, export_id: int) -> None:
        if self._end(export_id):
            self._status("Export cancelled; no file was written.", 6000)
