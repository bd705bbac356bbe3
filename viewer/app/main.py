"""Starting the GUI: `liif-viewer` (the bundled sample) or `liif-viewer PHOTO`.

The window is shown first; the render worker then imports torch and loads the model in the background,
so the person sees the window (and the interpolated photo) before torch has finished importing. The Qt
event loop is qasync's, so asyncio code can run on it as well.
"""

from __future__ import annotations

import asyncio
import logging
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


def run_gui(photo: Path | None = None) -> int:
    """Open the viewer on `photo` (default: the bundled sample) and run until the window closes."""
    import qasync

    app = make_application()
    _install_excepthooks()
    settings = AppSettings(QSettings())
    window = MainWindow(settings)
    window.show()
    target = Path(photo) if photo is not None else paths.sample_photo()
    # Start after the first paint: the window is on screen before the worker imports torch.
    QTimer.singleShot(0, lambda: window.start(target))

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    with loop:
        loop.run_until_complete(closed.wait())
    return 0
