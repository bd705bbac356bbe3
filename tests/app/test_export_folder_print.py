"""File ▸ Export Folder…'s print options (the Export dialog's sharpening and border or bleed): they reach
the batch job, the exported files have them, and the dialog remembers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from viewer.app.export_folder_dialog import ExportFolderDialog, FolderExport
from viewer.app.settings import AppSettings
from viewer.engine.batch import LOG_NAME, BatchOptions, render_photo
from viewer.engine.printsize import PRESETS, Length
from viewer.engine.sharpen import Sharpen

from .helpers import make_tiny_engine, textured
from .test_window import TIMEOUT

BORDER_PX = 20  # 5 mm at 100 DPI: 5 / 25.4 * 100 = 19.7


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "scans"
    src.mkdir()
    Image.fromarray(textured(40, 60, seed=5)).save(src / "a.png")
    return src


def test_the_dialog_offers_the_export_dialogs_print_options_and_remembers_them(
    qtbot: Any, settings: AppSettings, folder: Path, tmp_path: Path
) -> None:
    dlg = ExportFolderDialog(settings)
    qtbot.addWidget(dlg)
    dlg.source.setText(str(folder))
    dlg.outdir.setText(str(tmp_path / "prints"))
    dlg.kind.setCurrentIndex(dlg.kind.findData("print"))
    opts = dlg.request().options
    assert (opts.sharpen, opts.border, opts.bleed) == (None, None, None)  # off by default
    assert not dlg.finish.sharpen_strength.isEnabled() and not dlg.finish.margin_mm.isEnabled()

    dlg.finish.sharpen.setCurrentIndex(dlg.finish.sharpen.findData("matte"))
    dlg.finish.margin.setCurrentIndex(dlg.finish.margin.findData("bleed"))
    assert dlg.finish.margin_mm.value() == 3.0  # a bleed starts at its usual width
    assert dlg.request().options.bleed == Length(3, "mm")
    dlg.finish.margin.setCurrentIndex(dlg.finish.margin.findData("border"))
    assert dlg.finish.margin_mm.value() == 5.0 and dlg.finish.margin_mm.isEnabled()
    opts = dlg.request().options
    assert opts.sharpen == Sharpen("matte", "standard") and opts.border == Length(5, "mm")
    assert opts.bleed is None

    dlg.finish.margin_mm.setValue(80)  # more border than a 4x6 in page: said in the dialog, no Export
    dlg.preset.setCurrentIndex(dlg.preset.findData("4x6in"))
    assert not dlg.export_button.isEnabled() and "leaves no room" in dlg.error_label.text()
    dlg.finish.margin_mm.setValue(4)
    assert dlg.export_button.isEnabled()

    dlg.kind.setCurrentIndex(dlg.kind.findData("scale"))  # a scaled photo has no page to border
    assert not dlg.finish.margin.isEnabled() and dlg.finish.sharpen.isEnabled()
    opts = dlg.request().options
    assert opts.border is None and opts.sharpen == Sharpen("matte", "standard")
    dlg.kind.setCurrentIndex(dlg.kind.findData("print"))
    dlg.finish.sharpen_strength.setCurrentIndex(dlg.finish.sharpen_strength.findData("high"))
    dlg.accept()

    again = ExportFolderDialog(settings)
    qtbot.addWidget(again)
    opts = again.request().options
    assert opts.sharpen == Sharpen("matte", "high") and opts.border == Length(4, "mm")
    assert settings.export_value("sharpen", "none") == "none"  # the Export dialog's own choices are apart


def test_the_options_reach_the_files_the_folder_export_writes(
    qtbot: Any, settings: AppSettings, folder: Path, tmp_path: Path
) -> None:
    dlg = ExportFolderDialog(settings)
    qtbot.addWidget(dlg)
    out = tmp_path / "prints"
    dlg.source.setText(str(folder))
    dlg.outdir.setText(str(out))
    dlg.kind.setCurrentIndex(dlg.kind.findData("print"))
    dlg.preset.setCurrentIndex(dlg.preset.findData("4x6in"))
    dlg.dpi.setValue(100)
    dlg.format.setCurrentIndex(dlg.format.findData("png"))
    dlg.finish.sharpen.setCurrentIndex(dlg.finish.sharpen.findData("glossy"))
    dlg.finish.margin.setCurrentIndex(dlg.finish.margin.findData("border"))
    dlg.accept()
    request = dlg.request()

    fe = FolderExport(settings, lambda config: make_tiny_engine())
    fe.start(request)
    qtbot.waitUntil(lambda: fe.summary_box is not None and fe.summary_box.isVisible(), timeout=TIMEOUT)
    assert fe.summary_box is not None and "1 written" in fe.summary_box.text()
    with Image.open(out / "a.png") as im:
        assert im.size == (400, 600)  # the 4x6 in page at 100 DPI, border included
        got = np.asarray(im.convert("RGB"), np.int16)
    frame = np.ones(got.shape[:2], bool)
    frame[BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX] = False
    assert (got[frame] == 255).all()
    assert "sharpen glossy:standard; border 5mm" in (out / LOG_NAME).read_text()
    fe.summary_box.close()

    # The same photo exported with the options given directly: the dialog changed nothing on the way.
    direct = tmp_path / "direct.png"
    options = BatchOptions(
        PRESETS["4x6in"], 100.0, fmt="png", sharpen=Sharpen("glossy"), border=Length(5, "mm")
    )
    render_photo(make_tiny_engine(), folder / "a.png", direct, options)
    with Image.open(direct) as im:
        assert np.abs(got - np.asarray(im.convert("RGB"), np.int16)).max() <= 1
