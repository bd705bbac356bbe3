"""The viewer's memory as it opens one big photo after another, in the real window offscreen (usage:
xvfb-run -a python docs/analysis/photo_switch_memory.py PHOTO [PHOTO ...]).

Opens each photo in turn (File ▸ Open's path, with the viewer's default model and an empty disk cache of its
own), zooms to 400% about its centre, waits for the view to refine, and prints the seconds that took, the
resident memory and the peak so far; at the end, what Python's cyclic collector and glibc's `malloc_trim`
would still give back (both should be small: a closed photo is freed when it is closed).
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def resident_gib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def main(photos: list[Path]) -> None:
    os.environ["LIIF_VIEWER_CACHE"] = tempfile.mkdtemp(prefix="liif-switch-cache-")
    from PySide6.QtCore import QSettings

    from viewer.app.main import make_application
    from viewer.app.main_window import MainWindow
    from viewer.app.settings import AppSettings

    app = make_application()
    settings = AppSettings(QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat))
    win = MainWindow(settings)
    win.setGeometry(0, 0, 1400, 900)
    win.show()

    def wait(cond: Callable[[], bool], limit: float = 600.0) -> None:
        end = time.monotonic() + limit
        while not cond() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    for i, photo in enumerate(photos):
        t0 = time.monotonic()
        if i == 0:
            win.start(photo)
        else:
            win.controller.open(photo)

        def shown(p: Path = photo) -> bool:
            return win.view.photo is not None and win.view.photo.path == p and win.view.is_settled()

        wait(shown)
        opened = win.view.photo
        assert opened is not None
        win.view.zoom_to(4.0)
        win.view.centre_on(opened.width / 2, opened.height / 2)
        win.view.flush()
        wait(lambda: win.view.is_settled("liif"))
        wait(lambda: False, 1.0)  # let the worker threads settle
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(
            f"{photo.name}: {time.monotonic() - t0:.1f} s, resident {resident_gib():.2f} GiB, peak {peak:.2f} GiB"
        )
    before = resident_gib()
    gc.collect()
    collected = resident_gib()
    ctypes.CDLL(None).malloc_trim(0)  # as viewer.heap.give_back (not in older code measured with this)
    print(
        f"at the end: the cyclic collector gives back {before - collected:.2f} GiB, "
        f"then malloc_trim {collected - resident_gib():.2f} GiB"
    )
    win.close()
    wait(lambda: False, 1.0)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(p) for p in sys.argv[1:]])
