"""`liif-viewer bench --gui`: drive the real window offscreen and time what a person feels.

Measured on a 1280x800 canvas with the chosen model (default: the viewer's, `auto`):
- after a zoom step: the time to the first refined tile and to the fully refined viewport;
- event-loop latency (a 5 ms timer) while those refines run;
- interaction repaint times: pans over settled tiles, zooms that show scaled placeholders, and the
  interpolated preview.
Settings go to a temporary file; the person's own are not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from viewer import paths
from viewer.errors import ArgumentError

GOALS_CPU = {"repaint_ms": 16.0, "first_tile_s": 0.5, "full_viewport_s": 5.0}
GOAL_GPU_FULL_S = 0.05


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ArgumentError(f"invalid canvas size '{text}': expected WxH, e.g. 1280x800") from None
    if w < 64 or h < 64:
        raise ArgumentError(f"invalid canvas size '{text}': at least 64x64")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liif-viewer bench --gui", description=__doc__.split("\n\n")[0])
    p.add_argument("--gui", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--model",
        default=None,
        help="model name, weights file or auto (default: the viewer's default, auto: liif-lm on a CPU)",
    )
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--precision", default="auto", help="auto, fp32, bf16 or fp16 (default: auto)")
    p.add_argument("--photo", type=Path, default=None, help="photo to open (default: the bundled sample)")
    p.add_argument("--size", type=_parse_size, default=(1280, 800), help="canvas size WxH (default 1280x800)")
    p.add_argument(
        "--zooms",
        default="2,4,8,16",
        help="magnifications to step to, in order, about the centre (default: 2,4,8,16)",
    )
    p.add_argument(
        "--tiny", action="store_true", help="use a tiny random model (a smoke test of the machinery)"
    )
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for one refine (default 600)"
    )
    p.add_argument(
        "--cold",
        action="store_true",
        help="drop the photo's encoded tiles once the view at fit is refined, so the zoomed view finds "
        "nothing encoded, as on a big photo (on a small one the refine at fit encodes all of it)",
    )
    p.add_argument(
        "--spot",
        default=None,
        help="zoom into this spot instead of the centre: X,Y as fractions of the photo (0.5,0.5 is the "
        "centre), or random[:SEED] for a seeded random spot",
    )
    p.add_argument(
        "--feature-memory", type=int, default=0, metavar="MB", help="memory for encoded tiles (0: automatic)"
    )
    p.add_argument(
        "--disk-cache",
        type=int,
        default=0,
        metavar="MB",
        help="disk cache of encoded tiles (default 0: off, so every tile is encoded in the run)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    return p


def parse_spot(text: str | None) -> tuple[float, float] | None:
    """--spot: None (the centre), X,Y fractions, or random[:SEED] (a seeded spot away from the edges)."""
    if text is None:
        return None
    if text.startswith("random"):
        _, _, seed = text.partition(":")
        try:
            rng = np.random.default_rng(int(seed) if seed else 0)
        except ValueError:
            raise ArgumentError(f"invalid --spot '{text}': the seed must be an integer") from None
        return float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.1, 0.9))
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ArgumentError(f"invalid --spot '{text}': expected X,Y fractions or random[:SEED]") from None
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise ArgumentError(f"invalid --spot '{text}': fractions must be within 0 to 1")
    return x, y


def _pct(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    return {
        "n": len(a),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def _tiny_factory(config: Any) -> Any:
    """Worker thread: a tiny random model, for smoke runs without the weights."""
    import torch

    from viewer.engine.render import Engine
    from viewer.liif.liif import make_liif

    dev = config.device if config.device != "auto" else "cpu"
    return Engine(
        make_liif(n_resblocks=1, n_feats=8, hidden=(16,)), torch.device(dev), "fp32", model_name="tiny"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GUI benchmark; prints a report and returns 0 (2 for bad arguments or missing weights)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from viewer.startup import defer_unused_torch_modules

    defer_unused_torch_modules()  # as the window's start does (viewer/entry.py), where torch is not in yet
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    zooms = [float(z) for z in args.zooms.split(",") if z.strip()]
    spot = parse_spot(args.spot)
    photo = args.photo or paths.sample_photo()
    if not photo.is_file():
        raise ArgumentError(f"{photo}: no such photo")

    from viewer.engine.weights import AUTO_MODEL, VIEWER_DEFAULT_MODEL, auto_model, resolve_model_path

    model = args.model or VIEWER_DEFAULT_MODEL
    if not args.tiny:
        # `auto` is the viewer's default: the fast model on a CPU, the official one on a GPU.
        base = args.device.split(":")[0]
        resolve_model_path(
            auto_model("cpu" if base in ("cpu", "auto") else base) if model == AUTO_MODEL else model
        )

    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.app.main import make_application
    from viewer.app.main_window import MainWindow
    from viewer.app.settings import AppSettings

    _app = make_application()  # kept alive for the whole run
    results: dict[str, Any] = {"canvas": list(args.size), "photo": str(photo)}
    results["cpu_load_before"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory(prefix="liif-bench-gui-") as tmp:
        settings = AppSettings(QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat))
        settings.set_model(model)
        settings.set_device(args.device)
        settings.set_feature_memory_mb(args.feature_memory)
        settings.set_disk_cache_mb(args.disk_cache)
        qs = settings.qsettings
        qs.setValue("engine/precision", args.precision)
        window = MainWindow(settings, engine_factory=_tiny_factory if args.tiny else None)
        window.nav_dock.hide()
        window.canvas.setFixedSize(*args.size)
        window.show()
        view = window.view

        def wait(cond: Callable[[], bool], timeout: float) -> bool:
            """Run the real event loop until `cond` holds (checked every 2 ms) or `timeout` passes.

            Not a processEvents/sleep loop: polling keeps the GUI thread busy and costs the render threads
            CPU time that the app's own idle event loop does not.
            """
            if cond():
                return True
            deadline = time.perf_counter() + timeout
            loop = QEventLoop()
            check = QTimer()
            check.setTimerType(Qt.TimerType.PreciseTimer)
            check.setInterval(2)
            check.timeout.connect(lambda: loop.quit() if cond() or time.perf_counter() > deadline else None)
            check.start()
            loop.exec()
            check.stop()
            return cond()

        errors: list[str] = []
        window.controller.error.connect(lambda t, m: errors.append(f"{t}: {m}"))
        window.controller.missing_weights.connect(errors.append)
        t0 = time.perf_counter()
        window.start(photo)
        if not wait(lambda: window.controller.encode.seconds is not None or bool(errors), args.timeout):
            print("the photo was not encoded in time", file=sys.stderr)
            return 2
        if errors:
            print("\n".join(errors), file=sys.stderr)
            return 2
        eng = window.controller.engine
        assert eng is not None
        results["engine"] = {"model": eng.model_name, "device": eng.device, "precision": eng.precision}
        results["open_to_encoded_s"] = time.perf_counter() - t0
        results["encode_s"] = window.controller.encode.seconds
        results["cold"] = bool(args.cold)
        wait(view.is_settled, args.timeout)
        if args.cold:
            window.controller.render_worker.forget_encoded()

        # Event-loop latency, sampled by a 5 ms timer for the whole zoom sequence.
        ticks: list[float] = []
        last = [time.perf_counter()]
        sampling = [False]

        def tick() -> None:
            now = time.perf_counter()
            if sampling[0]:
                ticks.append((now - last[0]) * 1000)
            last[0] = now

        timer = QTimer()
        timer.setTimerType(Qt.TimerType.PreciseTimer)
        timer.setInterval(5)
        timer.timeout.connect(tick)
        timer.start()

        steps = []
        first_tile: list[float] = []
        view.tile_applied.connect(
            lambda kind, key, gen: (
                first_tile.append(time.perf_counter())
                if kind == "liif" and view.viewport is not None and key.zoom == view.viewport.device_zoom
                else None
            )
        )
        for z in zooms:
            first_tile.clear()
            last[0] = time.perf_counter()
            sampling[0] = True
            t_step = time.perf_counter()
            view.zoom_to(z / view.viewport.dpr if view.viewport else z)
            if spot is not None and view.photo is not None:  # in the same turn: one request, at the spot
                view.centre_on(spot[0] * view.photo.width, spot[1] * view.photo.height)
            ok = wait(view.is_settled, args.timeout)
            t_done = time.perf_counter()
            sampling[0] = False
            vp = view.viewport
            assert vp is not None
            steps.append(
                {
                    "magnification": vp.device_zoom,
                    "tiles": len(vp_tiles(vp, view.tile_size)),
                    "first_tile_s": (first_tile[0] - t_step) if first_tile else None,
                    "full_viewport_s": (t_done - t_step) if ok else None,
                }
            )
        timer.stop()
        results["zoom_steps"] = steps
        results["event_loop_latency_ms"] = _pct(ticks)

        # Interaction repaints: settled pans, scaled placeholders after a zoom, and the preview at fit.
        def frames(action: Callable[[], None], n: int) -> list[float]:
            out = []
            for _ in range(n):
                action()
                t = time.perf_counter()
                window.canvas.repaint()
                out.append((time.perf_counter() - t) * 1000)
            return out

        flip = [1.0]

        def pan() -> None:
            flip[0] = -flip[0]
            view.pan_by(7 * flip[0], 3 * flip[0])

        # The prefetch ring is still rendering now: pans within it repaint from the cache meanwhile.
        results["repaint_ms"] = {"pan_while_rendering": _pct(frames(pan, 60))}
        window.controller.render_worker.cancel_tiles()
        results["repaint_ms"]["pan_idle"] = _pct(frames(pan, 60))
        view.zoom_by(1.15)
        results["repaint_ms"]["zoom_placeholders"] = _pct(frames(lambda: view.zoom_by(1.01), 30))
        view.fit()
        results["repaint_ms"]["fit_preview"] = _pct(frames(pan, 30))
        window.close()
        QApplication.processEvents()
    results["spot"] = list(spot) if spot is not None else None
    results["peak_rss_bytes"] = _peak_rss()

    _report(results, on_gpu=eng.device_type != "cpu")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _peak_rss() -> int | None:
    """This process's peak resident memory in bytes (Linux and macOS), or None."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def vp_tiles(vp: Any, tile: int) -> list[tuple[int, int]]:
    """The visible tiles of a viewport (for the report)."""
    from viewer.app.planning import visible_range

    return visible_range(vp, tile).cells()


def _fmt(v: float | None, unit: str) -> str:
    return "—" if v is None else f"{v:.3f} {unit}" if unit == "s" else f"{v:.1f} {unit}"


def _report(r: dict[str, Any], on_gpu: bool) -> None:
    e = r["engine"]
    print(
        f"LIIF Viewer GUI benchmark — {e['model']} on {e['device']} ({e['precision']}), canvas {r['canvas'][0]}x{r['canvas'][1]}"
    )
    print(f"open → ready to refine: {r['open_to_encoded_s']:.2f} s (store opened in {r['encode_s']:.2f} s)")
    if r.get("spot") is not None:
        print(f"zoomed into the spot at {r['spot'][0]:.3f}, {r['spot'][1]:.3f} of the photo")
    if r.get("cpu_load_before") is not None:
        print(f"(system load average before the run: {r['cpu_load_before']:.1f} on {os.cpu_count()} CPUs)")
    print("zoom step → first refined tile / full viewport:")
    for s in r["zoom_steps"]:
        print(
            f"  ×{s['magnification']:<6g} {s['tiles']:3d} tiles   first {_fmt(s['first_tile_s'], 's'):>9}   "
            f"full {_fmt(s['full_viewport_s'], 's'):>9}"
        )
    lat = r["event_loop_latency_ms"]
    if lat.get("n"):
        print(
            f"event-loop latency during refines (5 ms timer, {lat['n']} ticks): p50 {lat['p50']:.1f} ms, "
            f"p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms"
        )
    if r.get("peak_rss_bytes"):
        print(f"peak resident memory: {r['peak_rss_bytes'] / 2**30:.2f} GiB")
    for name, st in r["repaint_ms"].items():
        print(f"repaint {name:18s} p50 {st['p50']:.1f} ms  p95 {st['p95']:.1f} ms  max {st['max']:.1f} ms")
    if on_gpu:
        print(f"goal on a GPU: full viewport ≤ {GOAL_GPU_FULL_S * 1000:.0f} ms")
    else:
        g = GOALS_CPU
        print(
            f"goals on the CPU: repaint ≤ {g['repaint_ms']:.0f} ms, first tile ≤ {g['first_tile_s']} s, "
            f"full viewport ≤ {g['full_viewport_s']:.0f} s"
        )


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
