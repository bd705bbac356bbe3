"""Inspect mode's feature image on a big photo, in the real window offscreen (usage: xvfb-run -a python
docs/analysis/inspect_big.py PHOTO [--whole]).

Opens PHOTO with the viewer's default model and an empty disk cache of its own, turns Inspect mode on with the PCA layer, and prints what the
panel says at fit, how long after a zoom to 400% (about the centre) the view's feature image arrives, and
how long after a pan of 2000 canvas pixels the new view is covered; then the peak resident memory. With
`--whole`, it first times the feature image of the whole photo in a lazily encoded store of its own
(`pca_rgb` of the whole box, 256 MB of tiles in memory, no disk cache): what Inspect mode made before it
followed the view.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from window import open_window, peak_gib  # docs/analysis/window.py


def whole(photo: Path) -> None:
    """The whole photo's feature image from a fresh store, and this process's peak memory so far."""
    from viewer.engine import inspect as ins
    from viewer.engine.imageio import load_image
    from viewer.engine.render import Engine

    engine = Engine.from_name("auto")
    store = engine.open_store(load_image(photo).rgb8(), budget_bytes=256 << 20)
    t0 = time.perf_counter()
    image = ins.pca_rgb(store, ins.whole_box(store))
    print(
        f"whole-photo feature image {image.shape}: {time.perf_counter() - t0:.1f} s, peak {peak_gib():.2f} GiB"
    )


def window(photo: Path) -> None:
    w = open_window()
    from viewer.app.inspect_panel import InspectOptions

    win = w.win
    said: list[str] = []
    win.inspect.status.connect(said.append)

    def covered() -> bool:
        photo_now = win.view.photo
        layer = win.inspect._features.get((photo_now.content, "pca", 0)) if photo_now else None
        return layer is not None and win.inspect._covers_view(layer)

    t0 = time.monotonic()
    win.start(photo)
    w.wait(lambda: win.view.photo is not None and win.view.is_settled())
    print(f"photo ready {time.monotonic() - t0:.1f} s")
    win.act_inspect.setChecked(True)
    win.inspect.set_options(InspectOptions(layer="pca"))
    w.wait(lambda: bool(said), 5.0)
    print(f"at fit the panel says: {said[-1] if said else '(nothing)'}")
    t1 = time.monotonic()
    w.zoom_centre(4.0)
    ok = w.wait(covered)
    pixels = win.inspect.feature_pixels("pca")
    shape = pixels.shape if pixels is not None else None
    print(f"at 400%: the view's feature image {shape} after {time.monotonic() - t1:.1f} s; {said[-1]}")
    t2 = time.monotonic()
    win.view.pan_by(2000, 0)
    win.view.flush()
    ok = w.wait(covered) and ok
    print(f"after a pan of 2000 canvas px: covered after {time.monotonic() - t2:.1f} s; {said[-1]}")
    print(f"peak {peak_gib():.2f} GiB{'' if ok else ' (a feature image did not arrive)'}")
    win.close()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if "--whole" in sys.argv[2:]:
        whole(Path(sys.argv[1]))
    else:
        window(Path(sys.argv[1]))
