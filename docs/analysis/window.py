"""The real viewer window for the analysis scripts (`inspect_big.py`, `compare_big.py`,
`photo_switch_memory.py`): offscreen under xvfb-run, with throw-away settings and an empty disk cache of its
own (so every tile is really encoded), and the process's memory."""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from viewer.app.main_window import MainWindow


def resident_gib() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_gib() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@dataclass
class Window:
    app: QApplication
    win: MainWindow

    def wait(self, cond: Callable[[], bool], limit: float = 600.0) -> bool:
        """Run the event loop until `cond` holds or `limit` seconds pass; whether it holds."""
        end = time.monotonic() + limit
        while not cond() and time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)
        return cond()

    def zoom_centre(self, magnification: float) -> None:
        """Zoom to `magnification` about the open photo's centre."""
        photo = self.win.view.photo
        assert photo is not None
        self.win.view.zoom_to(magnification)
        self.win.view.centre_on(photo.width / 2, photo.height / 2)
        self.win.view.flush()


def open_window() -> Window:
    """A 1400 x 900 main window, shown (call before anything else imports the viewer's app)."""
    os.environ["LIIF_VIEWER_CACHE"] = tempfile.mkdtemp(prefix="liif-analysis-cache-")
    from PySide6.QtCore import QSettings

    from viewer.app.main import make_application
    from viewer.app.main_window import MainWindow
    from viewer.app.settings import AppSettings

    app = make_application()
    settings = AppSettings(
        QSettings(str(os.path.join(tempfile.mkdtemp(), "s.ini")), QSettings.Format.IniFormat)
    )
    win = MainWindow(settings)
    win.setGeometry(0, 0, 1400, 900)
    win.show()
    return Window(app, win)
