"""The Export dialog never writes over the open photo (issue 25): the same path, a symlink or a hard link
to it is refused with a message while the dialog stays open; the engine refuses it too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from viewer.app import export_dialog as ed
from viewer.app import main_window as mw
from viewer.app.export_dialog import ExportChoice, ExportDialog
from viewer.app.main_window import MainWindow
from viewer.app.settings import AppSettings

from .test_window import TIMEOUT, make_window, open_and_encode


def aliases(photo: Path) -> dict[str, Path]:
    """The three names of the photo an export must refuse."""
    link = photo.with_name("link-to-photo.png")
    link.symlink_to(photo)
    hard = photo.with_name("hard-link.png")
    os.link(photo, hard)
    return {"same path": photo, "symlink": link, "hard link": hard}


@pytest.fixture
def warnings_shown(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The text of each warning box, instead of a modal box that would wait for a click."""
    shown: list[str] = []

    def warn(parent: object, title: str, text: str, *a: object) -> QMessageBox.StandardButton:
        shown.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(ed.QMessageBox, "warning", staticmethod(warn))
    return shown


def test_the_dialog_refuses_the_open_photo_and_stays_open(
    qtbot: Any, settings: AppSettings, photo_path: Path, tmp_path: Path, warnings_shown: list[str]
) -> None:
    names = aliases(photo_path)
    answers = [*names.values(), None, tmp_path / "print.png"]
    asked: list[ExportChoice] = []

    def choose(choice: ExportChoice) -> Path | None:
        asked.append(choice)
        return answers.pop(0)

    dlg = ExportDialog(
        (96, 80), {"image": (0.0, 0.0, 96.0, 80.0)}, settings, source=photo_path, choose_output=choose
    )
    qtbot.addWidget(dlg)
    dlg.show()
    for what, path in names.items():
        dlg.export_button.click()
        assert dlg.isVisible(), what
        assert dlg.result() != ExportDialog.DialogCode.Accepted and dlg.output_path() is None, what
        assert "open photo" in dlg.error_label.text() and path.name in dlg.error_label.text(), what
        assert path.name in warnings_shown[-1], what
    dlg.export_button.click()  # the save dialog cancelled: back to the Export dialog, no warning
    assert dlg.isVisible() and len(warnings_shown) == 3
    dlg.export_button.click()
    assert not dlg.isVisible() and dlg.result() == ExportDialog.DialogCode.Accepted
    assert dlg.output_path() == tmp_path / "print.png" and len(asked) == 5


@pytest.fixture
def window(qtbot: Any, settings: AppSettings, tiny_factory: Any, photo_path: Path) -> MainWindow:
    w = make_window(qtbot, settings, tiny_factory)
    open_and_encode(qtbot, w, photo_path)
    return w


def test_file_export_refuses_the_photo_then_exports_elsewhere(
    qtbot: Any,
    window: MainWindow,
    photo_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    warnings_shown: list[str],
) -> None:
    original = photo_path.read_bytes()
    out = tmp_path / "print.png"
    names = [str(photo_path), str(out)]
    monkeypatch.setattr(mw.QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (names.pop(0), "")))
    still_open: list[bool] = []

    def fake_exec(self: ExportDialog) -> int:
        self.set_custom(160, 200, "px")
        self.accept()  # the photo's own name: refused, the dialog stays
        still_open.append(self.result() != ExportDialog.DialogCode.Accepted)
        self.accept()  # another name
        return self.result()

    monkeypatch.setattr(ExportDialog, "exec", fake_exec)
    finished: list[str] = []
    window.controller.export_finished.connect(lambda i, p, s: finished.append(p))
    window.export_dialog()
    assert still_open == [True] and len(warnings_shown) == 1
    qtbot.waitUntil(lambda: bool(finished), timeout=TIMEOUT)
    assert finished == [str(out)] and out.is_file()
    assert photo_path.read_bytes() == original


def test_an_export_started_onto_the_photo_fails_and_writes_nothing(
    qtbot: Any, window: MainWindow, photo_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any other way to start an export (the engine's own guard): it fails with the reason."""
    from viewer.engine.export import plan_export
    from viewer.engine.printsize import PixelSize

    errors: list[str] = []
    monkeypatch.setattr(window, "show_error", lambda title, text: errors.append(text))
    original = photo_path.read_bytes()
    for path in aliases(photo_path).values():
        failed: list[str] = []
        window.controller.export_failed.connect(lambda i, m, f=failed: f.append(m))
        window.start_export(plan_export(96, 80, None, PixelSize(192, 160), 300, "crop"), path)
        qtbot.waitUntil(lambda f=failed: bool(f), timeout=TIMEOUT)
        assert "input photo" in failed[0], failed
        assert not window.exporting
    assert photo_path.read_bytes() == original
    assert len(errors) == 3
    assert not [p for p in photo_path.parent.iterdir() if p.name.endswith(".part")]
