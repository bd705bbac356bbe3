"""File ▸ Export Folder…: the dialog collects parameters only; the batch runs in its own thread with the
engine's batch (mirrored outputs, a bad photo fails alone), with progress, Cancel and a summary."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtWidgets import QDialog, QMenu, QPushButton

from viewer.app.export_folder_dialog import ExportFolderDialog, FolderExport, FolderExportRequest
from viewer.app.settings import AppSettings
from viewer.engine.batch import LOG_NAME, BatchOptions, Scale
from viewer.engine.printsize import PRESETS, PixelSize, PrintSize

from .helpers import Gated, make_tiny_engine, textured
from .test_window import TIMEOUT, make_window

OPTIONS = BatchOptions(PrintSize(4, 6, "in"), 10.0)  # 40x60 px, or 60x40 for a landscape photo


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "scans"
    (src / "box").mkdir(parents=True)
    Image.fromarray(textured(40, 30, seed=3)).save(src / "a.png")
    Image.fromarray(textured(30, 40, seed=4)).save(src / "box" / "b.jpg")
    whole = (src / "box" / "b.jpg").read_bytes()
    (src / "bad.jpg").write_bytes(whole[: len(whole) // 2])
    return src


def files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


class Recording:
    """Delegates to a real engine and notes the thread each render runs on."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.threads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def render(self, *args: Any, **kwargs: Any) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        return self._engine.render(*args, **kwargs)


def test_the_dialog_collects_parameters(
    qtbot: Any, settings: AppSettings, folder: Path, tmp_path: Path
) -> None:
    dlg = ExportFolderDialog(settings)
    qtbot.addWidget(dlg)
    assert not dlg.export_button.isEnabled() and "folder of photos" in dlg.error_label.text()
    dlg.source.setText(str(folder))
    assert not dlg.export_button.isEnabled()
    dlg.outdir.setText(str(folder))
    assert not dlg.export_button.isEnabled() and "must not be the photos' folder" in dlg.error_label.text()
    dlg.outdir.setText(str(tmp_path / "prints"))
    assert dlg.export_button.isEnabled() and dlg.error_label.text() == ""

    dlg.recursive.setChecked(True)
    dlg.kind.setCurrentIndex(dlg.kind.findData("print"))
    dlg.preset.setCurrentIndex(dlg.preset.findData("5x7in"))
    dlg.dpi.setValue(150)
    dlg.format.setCurrentIndex(dlg.format.findData("jpg"))
    req = dlg.request()
    assert req.source == folder and req.outdir == tmp_path / "prints" and req.recursive
    assert req.options == BatchOptions(PRESETS["5x7in"], 150.0, "crop", "jpg", 92)
    assert req.model == "auto"
    dlg.kind.setCurrentIndex(dlg.kind.findData("scale"))
    dlg.scale.setValue(2.5)
    assert dlg.request().options.size == Scale(2.5) and dlg.request().options.dpi is None
    assert not dlg.fit.isEnabled()
    dlg.kind.setCurrentIndex(dlg.kind.findData("pixels"))
    dlg.width_px.setValue(800)
    dlg.height_px.setValue(600)
    assert dlg.request().options.size == PixelSize(800, 600)
    dlg.accept()

    again = ExportFolderDialog(settings)  # remembers what was used last
    qtbot.addWidget(again)
    assert again.source.text() == str(folder) and again.recursive.isChecked()
    assert again.kind.currentData() == "pixels" and again.format.currentData() == "jpg"


def test_the_export_runs_in_the_background_with_progress_and_a_summary(
    qtbot: Any, settings: AppSettings, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Recording(make_tiny_engine())
    loaded_on: list[str] = []

    def factory(config: Any) -> Any:
        loaded_on.append(threading.current_thread().name)
        return engine

    progress: list[tuple[int, int]] = []
    real = FolderExport._on_progress

    def on_progress(self: FolderExport, done: int, total: int) -> None:
        progress.append((done, total))
        real(self, done, total)

    monkeypatch.setattr(FolderExport, "_on_progress", on_progress)
    w = make_window(qtbot, settings, factory)
    file_menu = w.menuBar().actions()[0].menu()
    assert isinstance(file_menu, QMenu)
    assert w.act_export_folder in file_menu.actions() and w.act_export_folder.text() == "Export &Folder…"
    out = tmp_path / "prints"
    fe = w.folder_export
    fe.start(FolderExportRequest(folder, out, True, OPTIONS, "auto"))
    assert fe.running and fe.progress_dialog is not None and fe.progress_dialog.isVisible()
    qtbot.waitUntil(lambda: fe.summary_box is not None and fe.summary_box.isVisible(), timeout=TIMEOUT)
    assert fe.summary_box is not None
    text, details = fe.summary_box.text(), fe.summary_box.detailedText()
    assert "2 written" in text and "1 failed" in text
    assert "bad.jpg" in details and "truncated" in details and LOG_NAME in details
    assert files(out) == {"a.png", "box/b.jpg", LOG_NAME}
    with Image.open(out / "a.png") as im:
        assert im.size == (60, 40)
    assert loaded_on == ["liif-batch"] and engine.threads == {"liif-batch"}  # never the GUI thread
    assert progress and progress[-1] == (4800, 4800)
    assert not fe.running and fe.progress_dialog is None


def test_cancel_stops_the_export_and_leaves_no_partial_file(
    qtbot: Any, settings: AppSettings, folder: Path, tmp_path: Path
) -> None:
    gate = threading.Event()
    gated = Gated(make_tiny_engine(), gate)
    w = make_window(qtbot, settings, lambda config: gated)
    out = tmp_path / "prints"
    fe = w.folder_export
    fe.start(FolderExportRequest(folder, out, True, OPTIONS, "auto"))
    assert gated.entered.wait(30)
    assert fe.progress_dialog is not None
    button = fe.progress_dialog.findChild(QPushButton)
    assert button is not None and button.text() == "Cancel"
    button.click()
    gate.set()
    qtbot.waitUntil(lambda: fe.summary_box is not None and fe.summary_box.isVisible(), timeout=TIMEOUT)
    assert fe.summary_box is not None
    assert "cancelled" in fe.summary_box.text() and "No partial file" in fe.summary_box.text()
    assert files(out) == {LOG_NAME}  # the photo being rendered left nothing, not even a temporary file
    assert not fe.running


def test_the_menu_entry_opens_the_dialog_then_runs(
    qtbot: Any, settings: AppSettings, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "prints"

    def fake_exec(self: ExportFolderDialog) -> QDialog.DialogCode:
        self.source.setText(str(folder))
        self.outdir.setText(str(out))
        self.kind.setCurrentIndex(self.kind.findData("scale"))
        self.scale.setValue(2.0)
        self.format.setCurrentIndex(self.format.findData("png"))
        self.accept()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(ExportFolderDialog, "exec", fake_exec)
    w = make_window(qtbot, settings, lambda config: make_tiny_engine())
    w.act_export_folder.trigger()
    fe = w.folder_export
    qtbot.waitUntil(lambda: fe.summary_box is not None and fe.summary_box.isVisible(), timeout=TIMEOUT)
    assert files(out) == {"a.png", LOG_NAME}  # not recursive: box/ is left alone; bad.jpg failed
    with Image.open(out / "a.png") as im:
        assert im.size == (80, 60)


def test_a_folder_that_cannot_be_written_is_said_at_once(
    qtbot: Any, settings: AppSettings, folder: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    w = make_window(qtbot, settings, lambda config: make_tiny_engine())
    fe = w.folder_export
    fe.start(FolderExportRequest(folder, blocker / "prints", False, OPTIONS, "auto"))
    qtbot.waitUntil(lambda: fe.summary_box is not None and fe.summary_box.isVisible(), timeout=TIMEOUT)
    assert fe.summary_box is not None
    assert (
        "could not start" in fe.summary_box.text()
        and "cannot create the output folder" in fe.summary_box.text()
    )
    assert not fe.running
