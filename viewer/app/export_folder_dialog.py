"""File ▸ Export Folder…: every photo of a folder to print-ready files, in the background.

`ExportFolderDialog` only collects parameters (source folder, subfolders, output folder, size, print
sharpening and border or bleed as in the Export dialog, model, format) into a `FolderExportRequest`. `FolderExportRun` runs the engine's batch (`viewer.engine.batch`,
the same as `liif-viewer batch`: outputs mirror the folder, a rerun skips what is done, a bad photo fails
alone, a log in the output folder) in a thread of its own with its own engine, never on the GUI thread,
and reports back through Qt signals carrying plain values. `FolderExport` ties them to the window: the
dialog, a progress dialog with Cancel, and a summary at the end. Nothing here imports torch at load time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from viewer.app.export_dialog import FITS, preset_label
from viewer.app.messages import EngineConfig
from viewer.app.print_finish import PrintFinish
from viewer.app.settings import AppSettings
from viewer.app.worker import EngineFactory, default_engine_factory
from viewer.engine.batch import (
    FAILED,
    OK,
    BatchOptions,
    BatchSummary,
    LocalExecutor,
    PhotoResult,
    Scale,
    eta_seconds,
    find_jobs,
    prepare_outdir,
    run_batch,
)
from viewer.engine.cancel import CancelToken
from viewer.engine.printsize import DEFAULT_DPI, PRESETS, PixelSize, PrintSize
from viewer.engine.weights import AUTO_MODEL, list_models
from viewer.errors import ViewerError

SIZE_KINDS = {"print": "Print size", "scale": "Scale", "pixels": "Pixel size"}
FORMAT_CHOICES = {"": "Same as each photo", "jpg": "JPEG (.jpg)", "png": "PNG (.png)", "tif": "TIFF (.tif)"}


@dataclass(frozen=True)
class FolderExportRequest:
    """What the dialog decided: the photos, where their outputs go, what each gets, and with which model."""

    source: Path
    outdir: Path
    recursive: bool
    options: BatchOptions
    model: str


class ExportFolderDialog(QDialog):
    """Parameters of a folder export; GUI thread only. `request()` gives them once `accept`ed."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None, model: str = AUTO_MODEL) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Folder")
        self._settings = settings

        files = QGroupBox("Photos")
        ff = QFormLayout(files)
        self.source = QLineEdit()
        self.source.setPlaceholderText("the folder of photos")
        ff.addRow("Folder:", self._with_browse(self.source, "Choose the Folder of Photos"))
        self.recursive = QCheckBox("Include subfolders (the output mirrors them)")
        ff.addRow("", self.recursive)
        self.outdir = QLineEdit()
        self.outdir.setPlaceholderText("where the exported files go")
        ff.addRow("Save to:", self._with_browse(self.outdir, "Choose the Output Folder"))

        size_box = QGroupBox("Size")
        sf = QFormLayout(size_box)
        self.kind = QComboBox()
        for key, label in SIZE_KINDS.items():
            self.kind.addItem(label, key)
        sf.addRow("Each photo to:", self.kind)
        self.pages = QStackedWidget()
        # Print size: a preset, in each photo's orientation, at a DPI.
        print_page = QWidget()
        pf = QFormLayout(print_page)
        pf.setContentsMargins(0, 0, 0, 0)
        self.preset = QComboBox()
        for name in PRESETS:
            self.preset.addItem(preset_label(name), name)
        self.preset.setToolTip("Turned to each photo's orientation: a landscape photo gets a landscape print")
        pf.addRow("Print:", self.preset)
        self.dpi = QSpinBox()
        self.dpi.setRange(1, 100000)
        self.dpi.setSuffix(" DPI")
        pf.addRow("Resolution:", self.dpi)
        # Scale: each whole photo magnified.
        scale_page = QWidget()
        scf = QFormLayout(scale_page)
        scf.setContentsMargins(0, 0, 0, 0)
        self.scale = QDoubleSpinBox()
        self.scale.setRange(1.0, 64.0)
        self.scale.setDecimals(2)
        self.scale.setPrefix("×")
        scf.addRow("Scale:", self.scale)
        # Pixel size: exactly W x H.
        pixels_page = QWidget()
        xf = QHBoxLayout(pixels_page)
        xf.setContentsMargins(0, 0, 0, 0)
        self.width_px = QSpinBox()
        self.height_px = QSpinBox()
        for sb in (self.width_px, self.height_px):
            sb.setRange(1, 65500)
            sb.setSuffix(" px")
        xf.addWidget(self.width_px)
        xf.addWidget(QLabel("×"))
        xf.addWidget(self.height_px)
        for page in (print_page, scale_page, pixels_page):
            self.pages.addWidget(page)
        sf.addRow(self.pages)
        self.fit = QComboBox()
        for key, label in FITS.items():
            self.fit.addItem(label, key)
        sf.addRow("Fit:", self.fit)
        self.finish = PrintFinish()  # the Export dialog's sharpening and border or bleed
        self.finish.add_rows(sf)

        out_box = QGroupBox("Files")
        of = QFormLayout(out_box)
        self.model = QComboBox()
        self.model.addItem("Automatic (Latent-modulated on a CPU, the official model on a GPU)", AUTO_MODEL)
        try:
            models = [m for m in list_models() if m.available]
        except Exception:  # a broken catalogue leaves Automatic and the current model
            models = []
        for m in models:
            self.model.addItem(f"{m.label} ({m.name})" if m.display_name else m.name, m.name)
        if self.model.findData(model) < 0:
            self.model.addItem(Path(model).name, model)
        self.model.setCurrentIndex(self.model.findData(model))
        of.addRow("Model:", self.model)
        self.format = QComboBox()
        for key, label in FORMAT_CHOICES.items():
            self.format.addItem(label, key)
        of.addRow("Format:", self.format)
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        of.addRow("JPEG quality:", self.quality)

        self.note = QLabel(
            "Photos already exported with these settings are skipped, so an export that was stopped goes on "
            "where it stopped. A log of every photo is kept in the output folder."
        )
        self.note.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d03030;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        for w in (files, size_box, out_box, self.note, self.error_label, self.buttons):
            layout.addWidget(w)

        self._restore()
        self.kind.currentIndexChanged.connect(self._kind_changed)
        for sig in (
            self.source.textChanged,
            self.outdir.textChanged,
            self.format.currentIndexChanged,
            self.preset.currentIndexChanged,
            self.dpi.valueChanged,
            self.width_px.valueChanged,
            self.height_px.valueChanged,
            self.fit.currentIndexChanged,
            *self.finish.changed_signals(),
        ):
            sig.connect(self._validate)
        self._kind_changed()

    def _with_browse(self, edit: QLineEdit, title: str) -> QWidget:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(lambda: self._browse(edit, title))
        h.addWidget(button)
        return row

    def _browse(self, edit: QLineEdit, title: str) -> None:
        start = edit.text() or self._settings.last_dir("export-folder") or str(Path.home())
        name = QFileDialog.getExistingDirectory(self, title, start)
        if name:
            edit.setText(name)

    def _restore(self) -> None:
        v = self._settings.export_value
        self.source.setText(v("folder_source", ""))
        self.outdir.setText(v("folder_outdir", ""))
        self.recursive.setChecked(v("folder_recursive", "false") == "true")
        self.kind.setCurrentIndex(max(0, self.kind.findData(v("folder_kind", "print"))))
        self.preset.setCurrentIndex(max(0, self.preset.findData(v("folder_preset", "8x10in"))))
        self.dpi.setValue(_int(v("folder_dpi", f"{DEFAULT_DPI:g}"), int(DEFAULT_DPI)))
        self.scale.setValue(_float(v("folder_scale", "4"), 4.0))
        self.width_px.setValue(_int(v("folder_width", "2400"), 2400))
        self.height_px.setValue(_int(v("folder_height", "3000"), 3000))
        self.fit.setCurrentIndex(max(0, self.fit.findData(v("folder_fit", "crop"))))
        self.format.setCurrentIndex(max(0, self.format.findData(v("folder_format", ""))))
        self.quality.setValue(_int(v("folder_quality", "92"), 92))
        self.finish.restore(v, "folder_")

    def _remember(self) -> None:
        s = self._settings.set_export_value
        s("folder_source", self.source.text())
        s("folder_outdir", self.outdir.text())
        s("folder_recursive", "true" if self.recursive.isChecked() else "false")
        s("folder_kind", self.kind.currentData())
        s("folder_preset", self.preset.currentData())
        s("folder_dpi", self.dpi.value())
        s("folder_scale", self.scale.value())
        s("folder_width", self.width_px.value())
        s("folder_height", self.height_px.value())
        s("folder_fit", self.fit.currentData())
        s("folder_format", self.format.currentData())
        s("folder_quality", self.quality.value())
        self.finish.save(s, "folder_")

    def _kind_changed(self) -> None:
        kind = self.kind.currentData()
        self.pages.setCurrentIndex(list(SIZE_KINDS).index(kind))
        self.fit.setEnabled(kind != "scale")
        self._validate()

    def problem(self) -> str:
        """Why the parameters cannot be used as they are ("" when they can)."""
        src, out = self.source.text().strip(), self.outdir.text().strip()
        if not src:
            return "Choose the folder of photos."
        if not Path(src).is_dir():
            return f"{src} is not a folder."
        if not out:
            return "Choose the folder the exported files go to."
        if Path(out).resolve() == Path(src).resolve():
            return "The output folder must not be the photos' folder: choose another, or a new subfolder."
        if Path(out).exists() and not Path(out).is_dir():
            return f"{out} is a file, not a folder."
        try:
            self.options()
        except ViewerError as exc:  # e.g. a border that leaves no room for the photo
            return str(exc)
        return ""

    def _validate(self) -> None:
        text = self.problem()
        self.error_label.setText(text)
        self.export_button.setEnabled(not text)
        self.quality.setEnabled(self.format.currentData() in ("", "jpg"))
        self.finish.update_enabled(self.kind.currentData() != "scale")  # a scaled photo has no page

    def request(self) -> FolderExportRequest:
        """The request the fields describe (ViewerError when they are not usable)."""
        text = self.problem()
        if text:
            raise ViewerError(text)
        return FolderExportRequest(
            Path(self.source.text().strip()),
            Path(self.outdir.text().strip()),
            self.recursive.isChecked(),
            self.options(),
            str(self.model.currentData()),
        )

    def options(self) -> BatchOptions:
        """What each photo gets, as `liif-viewer batch` would from the same choices; ArgumentError (a
        ViewerError) for a border or bleed that cannot be used. A scaled photo has no page, so the margin
        is left out for Scale (its row is disabled then); sharpening applies to every kind."""
        kind = self.kind.currentData()
        size: PrintSize | PixelSize | Scale
        dpi: float | None = float(self.dpi.value())
        if kind == "print":
            size = PRESETS[self.preset.currentData()]
        elif kind == "scale":
            size, dpi = Scale(float(self.scale.value())), None
        else:
            size, dpi = PixelSize(self.width_px.value(), self.height_px.value()), None
        margins = self.finish.margin_choice() if kind != "scale" else {}
        return BatchOptions(
            size,
            dpi,
            str(self.fit.currentData()),
            self.format.currentData() or None,
            self.quality.value(),
            sharpen=self.finish.sharpen_choice(),
            border=margins.get("border"),
            bleed=margins.get("bleed"),
        )

    def accept(self) -> None:
        if self.problem():
            return
        self._remember()
        self._settings.set_last_dir(Path(self.outdir.text().strip()), "export-folder")
        super().accept()


def _int(text: str, default: int) -> int:
    try:
        return int(float(text))
    except ValueError:
        return default


def _float(text: str, default: float) -> float:
    try:
        return float(text)
    except ValueError:
        return default


class FolderExportRun(QObject):
    """One folder export in its own thread ("liif-batch"), with its own engine from `engine_factory`.

    Signals are emitted from that thread and delivered on the GUI thread (queued), carrying plain values:
    `started(photos to render, photos already done, photos in all)`, `progress(output pixels done, total)`,
    `photo_done(PhotoResult)`, then exactly one of `finished(BatchSummary)` (cancelled ones too, with
    `interrupted` set) and `failed(message)` (nothing could start: no photos, an unwritable folder, a
    model that will not load).
    """

    started = Signal(int, int, int)
    progress = Signal(int, int)
    photo_done = Signal(object)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(
        self,
        request: FolderExportRequest,
        config: EngineConfig,
        engine_factory: EngineFactory | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.request = request
        self.config = config
        self._factory = engine_factory or default_engine_factory
        self.token = CancelToken()
        self._thread: threading.Thread | None = None
        self.problems: list[str] = []
        """Subfolders that could not be read (written by the batch thread before `finished`)."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="liif-batch", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Any thread: stop at the next check; the photo being rendered leaves no file."""
        self.token.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _throttled_progress(self, interval_s: float = 0.05) -> Callable[[int, int], None]:
        """Batch thread: progress at most every `interval_s` (and always the end), not once per chunk."""
        last = [0.0]

        def emit(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] >= interval_s:
                last[0] = now
                self.progress.emit(done, total)

        return emit

    def _run(self) -> None:
        """The batch thread: find the photos, load the model once, export, report."""
        r = self.request
        try:
            from viewer.app.tile_thread import lower_thread_priority

            lower_thread_priority()  # the window stays responsive while the batch uses every core
            jobs = find_jobs(
                [r.source],
                r.outdir,
                recursive=r.recursive,
                fmt=r.options.fmt,
                on_problem=self.problems.append,
            )
            outdir = prepare_outdir(r.outdir)
            engine = self._factory(self.config)
            executor = LocalExecutor(engine, str(getattr(engine, "model_name", r.model)))
            summary = run_batch(
                jobs,
                r.options,
                outdir,
                executor,
                cancel=self.token,
                on_progress=self._throttled_progress(),
                on_result=self.photo_done.emit,
                on_start=self.started.emit,
            )
        except ViewerError as exc:
            self.failed.emit(str(exc))
            return
        except MemoryError:
            self.failed.emit("out of memory while loading the model")
            return
        except Exception as exc:  # a bug: say so rather than leave the progress dialog open
            self.failed.emit(f"internal error: {type(exc).__name__}: {exc}")
            return
        self.finished.emit(summary)


def summary_text(summary: BatchSummary, outdir: Path, problems: Sequence[str] = ()) -> tuple[str, str]:
    """(the message, the details: each failed photo's line, folders left out, where the log is) for the end
    of a run."""
    head = "Folder export cancelled" if summary.interrupted else "Folder export finished"
    text = f"{head}: {summary.line()}."
    if problems:
        text += f" {len(problems)} subfolder{'s' * (len(problems) != 1)} could not be read (see the details)."
    if summary.interrupted:
        text += " No partial file was left; export the folder again to go on where it stopped."
    details = [r.error or str(r.job.source) for r in summary.failed] + [
        p[:1].upper() + p[1:] for p in problems
    ]
    details.append(f"Log of every photo: {summary.log_path or outdir}")
    return text, "\n".join(details)


class FolderExport(QObject):
    """File ▸ Export Folder… for a window: the dialog, the run, its progress dialog and the summary."""

    def __init__(
        self,
        settings: AppSettings,
        engine_factory: EngineFactory | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._window = parent
        self.settings = settings
        self.engine_factory = engine_factory
        self.run: FolderExportRun | None = None
        self.progress_dialog: QProgressDialog | None = None
        self.summary_box: QMessageBox | None = None
        self._counts = [0, 0]  # photos done, photos to render
        self._t0 = 0.0

    @property
    def running(self) -> bool:
        return self.run is not None

    def open_dialog(self) -> None:
        """GUI thread: ask for the parameters, then start; while one runs, show its progress instead."""
        if self.run is not None:
            if self.progress_dialog is not None:
                self.progress_dialog.raise_()
            return
        dlg = ExportFolderDialog(self.settings, self._window, model=self.settings.model())
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return
        self.start(dlg.request())

    def start(self, request: FolderExportRequest) -> FolderExportRun:
        """GUI thread: run `request` in the background with a progress dialog and Cancel."""
        config = EngineConfig(request.model, self.settings.device(), self.settings.precision())
        run = FolderExportRun(request, config, self.engine_factory, self)
        run.started.connect(self._on_started)
        run.progress.connect(self._on_progress)
        run.photo_done.connect(self._on_photo)
        run.finished.connect(self._on_finished)
        run.failed.connect(self._on_failed)
        self.run = run
        self._counts = [0, 0]
        self._t0 = time.monotonic()
        dlg = QProgressDialog(
            f"Exporting the photos of {request.source.name or request.source}…", "Cancel", 0, 1000
        )
        dlg.setParent(self._window, dlg.windowFlags())
        dlg.setWindowTitle("Export Folder")
        dlg.setWindowModality(Qt.WindowModality.NonModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(self.cancel)
        dlg.show()
        self.progress_dialog = dlg
        run.start()
        return run

    def cancel(self) -> None:
        if self.run is not None:
            self.run.cancel()
            if self.progress_dialog is not None:
                self.progress_dialog.setLabelText("Cancelling… (the photo being exported leaves no file)")

    def close(self, timeout: float = 10.0) -> bool:
        """Cancel a running export and wait for its thread (the window is closing)."""
        run = self.run
        if run is None:
            return True
        run.cancel()
        return run.wait(timeout)

    def _on_started(self, todo: int, skipped: int, total: int) -> None:
        self._counts = [0, todo]
        self._t0 = time.monotonic()  # the time left is reckoned from the renders, not the model's loading
        if self.progress_dialog is not None:
            done = f"; {skipped} already done" if skipped else ""
            self.progress_dialog.setLabelText(f"{todo} of {total} photos to export{done}")

    def _on_progress(self, done: int, total: int) -> None:
        dlg = self.progress_dialog
        if dlg is None:
            return
        dlg.setValue(int(1000 * done / max(1, total)))
        left = eta_seconds(done, total, time.monotonic() - self._t0)
        eta = "" if left is None else f" · about {_duration(left)} left"
        dlg.setLabelText(f"Photo {min(self._counts[0] + 1, self._counts[1])} of {self._counts[1]}{eta}")

    def _on_photo(self, result: PhotoResult) -> None:
        if result.status in (OK, FAILED) and self.run is not None:
            self._counts[0] += 1

    def _end(self) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None
        if self.run is not None:
            self.run.wait(5.0)
            self.run.deleteLater()
        self.run = None

    def _on_finished(self, summary: BatchSummary) -> None:
        outdir = self.run.request.outdir if self.run is not None else Path()
        problems = list(self.run.problems) if self.run is not None else []
        self._end()
        text, details = summary_text(summary, outdir, problems)
        icon = QMessageBox.Icon.Warning if summary.failed or problems else QMessageBox.Icon.Information
        self._show(icon, text, details)

    def _on_failed(self, message: str) -> None:
        self._end()
        self._show(QMessageBox.Icon.Warning, f"The folder export could not start: {message}", "")

    def _show(self, icon: QMessageBox.Icon, text: str, details: str) -> None:
        box = QMessageBox(icon, "Export Folder", text, QMessageBox.StandardButton.Ok, self._window)
        if details:
            box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(box.deleteLater)
        self.summary_box = box
        box.open()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
