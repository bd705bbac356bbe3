"""Entry point of the bundled app (PyInstaller): `liif-viewer`, exactly like the installed console script
(`viewer.entry`), including its restart with huge pages on Linux.

One hidden mode exists for `packaging/build.sh`, so the bundle can prove it works as a whole:

    liif-viewer --smoke-test [--photo PHOTO] [--model MODEL] [--device DEV] [--out PNG] [--timeout S]

starts the real window (headless with QT_QPA_PLATFORM=offscreen), opens PHOTO (default: the bundled
sample), waits until the first viewport is fully rendered by LIIF, checks the canvas is not blank, prints
one `smoke:` line with the timings, and exits 0. Any failure (an error dialog, missing weights, a timeout,
a blank canvas) prints one line on stderr and exits 1. It lives here, not in `viewer/cli.py`, because it
tests the bundle rather than being a feature of the app.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

_T0 = time.monotonic()


def _smoke(argv: list[str]) -> int:
    """Open a photo in the real window, wait for one LIIF-refined viewport, exit 0 (see the module doc)."""
    parser = argparse.ArgumentParser(prog="liif-viewer --smoke-test")
    parser.add_argument("--photo", default=None, help="photo to open (default: the bundled sample)")
    parser.add_argument("--model", default=None, help="model name or weights file (default: the setting)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="save the canvas to this PNG")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QImage

    from viewer import paths
    from viewer.app.main import make_application
    from viewer.app.main_window import MainWindow
    from viewer.app.settings import AppSettings

    photo = Path(args.photo) if args.photo else paths.sample_photo()
    app = make_application([sys.argv[0]])
    settings = AppSettings(QSettings())
    if args.model:
        settings.set_model(args.model)
    settings.set_device(args.device)
    window = MainWindow(settings)
    window.resize(800, 600)
    window.show()
    shown = time.monotonic() - _T0
    outcome: dict[str, str] = {}

    def fail(message: str) -> None:
        if not outcome:
            outcome["error"] = " ".join(message.split())
            window.close()
            app.quit()

    window.controller.error.connect(lambda title, msg: fail(f"{title}: {msg}"))
    window.controller.missing_weights.connect(lambda msg: fail(f"missing weights: {msg}"))

    def poll() -> None:
        if outcome:
            return
        view, enc = window.view, window.controller.encode
        if time.monotonic() - _T0 > args.timeout:
            fail(f"no refined viewport after {args.timeout:g} s (encoded: {enc.seconds is not None})")
            return
        if view.photo is None or enc.seconds is None or view.viewport is None:
            return
        if view.refine.running or not view.is_settled("liif"):
            return
        image = window.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        if args.out:
            image.save(args.out)
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
        if len(colours) < 16:
            fail(f"the canvas is blank ({len(colours)} colours)")
            return
        vp = view.viewport
        outcome["ok"] = (
            f"smoke: opened {photo.name}, window shown {shown:.2f} s after start, encoded in "
            f"{enc.seconds:.2f} s, {vp.device_size[0]}x{vp.device_size[1]} viewport refined "
            f"{time.monotonic() - _T0:.2f} s after start ({window.controller.config.model})"
        )
        window.close()
        app.quit()

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    QTimer.singleShot(0, lambda: window.start(photo))
    app.exec()
    if "ok" in outcome:
        print(outcome["ok"], flush=True)
        return 0
    print(f"liif-viewer --smoke-test: {outcome.get('error', 'the window closed early')}", file=sys.stderr)
    return 1


def main() -> int:
    """Restart with huge pages where that helps (as the installed script does), then dispatch to the smoke
    test or to `viewer.cli.main`."""
    multiprocessing.freeze_support()
    from viewer.hugepages import reexec_with_hugepages

    reexec_with_hugepages()
    if sys.argv[1:2] == ["--smoke-test"]:
        return _smoke(sys.argv[2:])
    from viewer.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
