"""Memory of the compare view and of Inspect's difference view on a big photo, in the real window
offscreen (usage: xvfb-run -a python docs/analysis/compare_big.py PHOTO).

Opens PHOTO with the viewer's default model and an empty disk cache of its own, zooms to 400% about the
centre, then turns compare mode on, then off and Inspect's "what the model adds" layer on, and prints,
after each step has settled, the seconds it took, the resident memory and the peak so far.
"""

from __future__ import annotations

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


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(photo: Path) -> None:
    os.environ["LIIF_VIEWER_CACHE"] = tempfile.mkdtemp(prefix="liif-compare-cache-")
    from PySide6.QtCore import QSettings

    from viewer.app.inspect_panel import InspectOptions
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

    def report(what: str, since: float) -> None:
        print(
            f"{what}: {time.monotonic() - since:.1f} s, resident {resident_gib():.2f} GiB, peak {peak_gib():.2f} GiB"
        )

    win.start(photo)
    wait(lambda: win.view.photo is not None and win.view.is_settled())
    opened = win.view.photo
    assert opened is not None
    t0 = time.monotonic()
    win.view.zoom_to(4.0)
    win.view.centre_on(opened.width / 2, opened.height / 2)
    win.view.flush()
    wait(lambda: win.view.is_settled("liif"))
    report("400%, refined", t0)
    t1 = time.monotonic()
    win.act_compare.setChecked(True)
    win.view.flush()
    wait(lambda: win.view.is_settled("liif") and win.view.is_settled("bicubic"))
    report("compare mode on, settled", t1)
    win.act_compare.setChecked(False)
    said: list[str] = []
    win.inspect.status.connect(said.append)
    win.act_inspect.setChecked(True)
    t2 = time.monotonic()
    win.inspect.set_options(InspectOptions(layer="difference"))
    wait(lambda: any("up to date" in s for s in said), 300.0)
    report("Inspect's difference view, up to date", t2)
    win.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
