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
import sys
import time
from pathlib import Path

from window import open_window, peak_gib, resident_gib  # docs/analysis/window.py


def main(photos: list[Path]) -> None:
    w = open_window()
    win = w.win
    for i, photo in enumerate(photos):
        t0 = time.monotonic()
        if i == 0:
            win.start(photo)
        else:
            win.controller.open(photo)

        def shown(p: Path = photo) -> bool:
            return win.view.photo is not None and win.view.photo.path == p and win.view.is_settled()

        w.wait(shown)
        w.zoom_centre(4.0)
        w.wait(lambda: win.view.is_settled("liif"))
        w.wait(lambda: False, 1.0)  # let the worker threads settle
        print(
            f"{photo.name}: {time.monotonic() - t0:.1f} s, resident {resident_gib():.2f} GiB, peak {peak_gib():.2f} GiB"
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
    w.wait(lambda: False, 1.0)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(p) for p in sys.argv[1:]])
