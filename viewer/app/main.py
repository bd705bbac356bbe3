"""Starting the GUI: `liif-viewer` (the last session's photo, else the bundled sample) or `liif-viewer PHOTO`.

The window is shown first; the render worker then imports torch and loads the model in the background,
so the person sees the window (and the interpolated photo) before torch has finished importing. The Qt
event loop is qasync's, so asyncio code can run on it as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from viewer import paths
from viewer.app.main_window import APP_NAME, MainWindow, app_icon
from viewer.app.settings import AppSettings

log = logging.getLogger(__name__)

EXPORT_STOP_TIMEOUT = 30.0
"""Seconds to wait at quit for cancelled exports to stop and remove their partial files."""


def _install_excepthooks() -> None:
    """Show an unexpected exception in a GUI slot as a message instead of only printing it."""

    def show(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unhandled exception\n%s", text)
        if sys.__stderr__ is not None:
            sys.__stderr__.write(text)
        app = QApplication.instance()
        if app is not None and threading.current_thread() is threading.main_thread():
            box = QMessageBox(
                QMessageBox.Icon.Critical, APP_NAME, f"Internal error: {exc_type.__name__}: {exc}"
            )
            box.setDetailedText(text)
            box.open()

    sys.excepthook = show


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication, named so QSettings and the desktop find the app."""
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName("liif-viewer")
    app.setApplicationName("liif-viewer")
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("liif-viewer")
    app.setWindowIcon(app_icon())
    return app


def run_gui(photo: Path | None = None, *, overrides: dict[str, int] | None = None) -> int:
    """Open the viewer on `photo` (default: the bundled sample) and run until the window closes.

    Returns 0 once every worker has stopped; if one cannot stop yet, the process ends here (see
    `_exit_if_workers_busy`).
    """
    import qasync

    app = make_application()
    _install_excepthooks()
    settings = AppSettings(QSettings())
    for key, value in (overrides or {}).items():
        settings.override(key, value)
    window = MainWindow(settings)
    window.show()
    given = Path(photo) if photo is not None else None
    # Start after the first paint: the window is on screen before the worker imports torch. Without a
    # photo: the last session's, else the bundled sample.
    QTimer.singleShot(0, lambda: window.start(given, fallback=paths.sample_photo()))

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    with loop:
        loop.run_until_complete(closed.wait())
    _exit_if_workers_busy(window)
    return 0


def _exit_if_workers_busy(window: MainWindow) -> None:
    """After the window has closed: end the process now if a worker is still running.

    The render worker can be inside an encode, which stops only between tiles (a small photo is one
    tile). If Python finalised while it computes, torch's threads would abort the process ("terminate
    called without an active exception", exit status 134). Cancelled exports are waited for, since they
    stop at their next chunk and remove their partial file; settings were saved when the window closed.
    """
    c = window.controller
    exports_done = c.render_worker.wait_exports(EXPORT_STOP_TIMEOUT)
    if exports_done and not c.render_worker.alive and not c.bicubic_worker.alive:
        return
    log.info("leaving while a worker is still busy")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(0)
