"""Screenshots of the real window for the README: the sample at fit, at 16x in compare mode, in Inspect
mode (latent lattice and a pixel probe at 32x), and the Export dialog over a selection.

    Xvfb :99 -screen 0 1400x900x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb python -m viewer.app.screenshots OUT_DIR [--device cpu]

Under X it grabs the screen (what a person sees); on the offscreen platform it renders the window
instead. Settings go to a temporary file. The refines use the default model, so the official weights
must be fetched first (`liif-viewer fetch-weights`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from viewer import paths

FACE = (222.0, 120.0)
"""The sample's eyes and smile: where the 16x compare shot looks."""
EYE = (204.0, 100.0)
"""The sample's left eye (as seen): where the Inspect shot looks."""
PROBE_OFFSET = (37.0, -23.0)
"""Where the Inspect shot's pointer rests, from the centre of the canvas (logical px)."""
EXPORT_SELECTION = (100.0, 24.0, 260.0, 260.0)
"""The head and shoulders, square: an 8x10 in print trims a fifth of its width, which the Export shot's
preview dims."""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m viewer.app.screenshots", description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default="1400x900", help="window size WxH")
    p.add_argument("--timeout", type=float, default=1800.0)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    w_px, h_px = (int(v) for v in args.size.split("x"))

    from PySide6.QtCore import QPoint, QSettings, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from viewer.app.main import make_application
    from viewer.app.main_window import MainWindow
    from viewer.app.settings import AppSettings

    app = make_application()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="liif-shots-") as tmp:
        settings = AppSettings(QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat))
        settings.set_device(args.device)
        window = MainWindow(settings)
        window.setGeometry(0, 0, w_px, h_px)
        window.show()
        window.start(paths.sample_photo())

        def wait(cond: Callable[[], bool]) -> bool:
            deadline = time.monotonic() + args.timeout
            while not cond() and time.monotonic() < deadline:
                app.processEvents()
                time.sleep(0.01)
            return cond()

        def shot(name: str) -> None:
            for _ in range(20):
                app.processEvents()
                time.sleep(0.01)
            screen = QApplication.primaryScreen()
            offscreen = QApplication.platformName() == "offscreen"
            pixmap = window.grab() if offscreen or screen is None else screen.grabWindow(0, 0, 0, w_px, h_px)
            target = args.out / name
            if not pixmap.save(str(target)):
                raise OSError(f"cannot write {target}")
            print(target)

        if not wait(
            lambda: window.controller.encode.seconds is not None or window.controller.engine_error is not None
        ):
            print("the sample was not encoded in time", file=sys.stderr)
            return 2
        if window.controller.engine_error is not None:
            print(window.controller.engine_error, file=sys.stderr)
            return 2
        wait(window.view.is_settled)
        shot("fit.png")
        window.act_compare.setChecked(True)
        window.view.zoom_to(16.0)
        window.view.centre_on(*FACE)
        window.view.flush()
        wait(lambda: window.view.is_settled("liif") and window.view.is_settled("bicubic"))
        shot("compare-16x.png")

        window.act_compare.setChecked(False)
        window.act_inspect.setChecked(True)
        window.view.zoom_to(32.0)
        window.view.centre_on(*EYE)
        window.view.flush()
        canvas = window.canvas
        pointer = QPoint(
            round(canvas.width() / 2 + PROBE_OFFSET[0]), round(canvas.height() / 2 + PROBE_OFFSET[1])
        )
        wait(lambda: window.view.is_settled("liif"))
        QTest.mouseMove(canvas, pointer)
        window.inspect.hover(float(pointer.x()), float(pointer.y()))
        wait(lambda: window.inspect.probe is not None)
        shot("inspect.png")

        window.act_inspect.setChecked(False)
        window.view.fit()
        window.view.set_selection(EXPORT_SELECTION)
        window.view.flush()
        wait(window.view.is_settled)

        def shoot_dialog() -> None:
            """Runs inside the dialog's own event loop: capture it, then close it as Cancel would."""
            dialog = QApplication.activeModalWidget()
            shot("export-dialog.png")
            if dialog is not None:
                dialog.close()

        QTimer.singleShot(1000, shoot_dialog)
        window.export_dialog()
        window.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
