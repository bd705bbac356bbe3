"""Memory of the compare view and of Inspect's difference view on a big photo, in the real window
offscreen (usage: xvfb-run -a python docs/analysis/compare_big.py PHOTO).

Opens PHOTO with the viewer's default model and an empty disk cache of its own, zooms to 400% about the
centre, then turns compare mode on, then off and Inspect's "what the model adds" layer on, and prints,
after each step has settled, the seconds it took, the resident memory and the peak so far.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from window import open_window, peak_gib, resident_gib  # docs/analysis/window.py


def main(photo: Path) -> None:
    w = open_window()
    from viewer.app.inspect_panel import InspectOptions

    win = w.win

    def report(what: str, since: float) -> None:
        print(
            f"{what}: {time.monotonic() - since:.1f} s, resident {resident_gib():.2f} GiB, peak {peak_gib():.2f} GiB"
        )

    win.start(photo)
    w.wait(lambda: win.view.photo is not None and win.view.is_settled())
    t0 = time.monotonic()
    w.zoom_centre(4.0)
    w.wait(lambda: win.view.is_settled("liif"))
    report("400%, refined", t0)
    t1 = time.monotonic()
    win.act_compare.setChecked(True)
    win.view.flush()
    w.wait(lambda: win.view.is_settled("liif") and win.view.is_settled("bicubic"))
    report("compare mode on, settled", t1)
    win.act_compare.setChecked(False)
    said: list[str] = []
    win.inspect.status.connect(said.append)
    win.act_inspect.setChecked(True)
    t2 = time.monotonic()
    win.inspect.set_options(InspectOptions(layer="difference"))
    w.wait(lambda: any("up to date" in s for s in said), 300.0)
    report("Inspect's difference view, up to date", t2)
    win.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
