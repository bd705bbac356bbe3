"""View ▸ Inspect Mode and Help ▸ How It Works for the main window.

`InspectDock` builds Inspect mode's pieces for a window: its controller (`InspectController`, GUI thread),
its link to the render worker (`InspectWorkerSide`: the model calls run on that worker, never here), its
panel in a dock, and the How It Works dialog illustrated with what Inspect mode computes. Every method runs
on the GUI thread. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QStyle

from viewer.app.canvas import Canvas
from viewer.app.controller import AppController
from viewer.app.how_it_works import ILLUSTRATION_MAGNIFICATION, HowItWorksDialog, Illustrations
from viewer.app.inspect_mode import (
    INSPECT_EVENTS,
    InspectController,
    InspectWorkerSide,
    describe_probe_wait,
)
from viewer.app.inspect_panel import InspectPanel
from viewer.app.messages import TileResult
from viewer.engine.inspect import Probe


class InspectDock(QObject):
    """Inspect mode in `window`: `inspect` (the controller), `link` (its side of the render worker), `panel`
    in `dock` (on the left, hidden until turned on), and `how` (Help ▸ How It Works, once opened)."""

    def __init__(self, window: QMainWindow, controller: AppController, canvas: Canvas) -> None:
        super().__init__(window)
        self._window = window
        self.controller = controller
        self.view = controller.view
        self.canvas = canvas
        self.link = InspectWorkerSide(controller.render_worker.wake)
        self.inspect = InspectController(self.view, self.link, window)
        self.panel = InspectPanel(self.inspect.options)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.panel)
        self.dock = QDockWidget("Inspect", window)
        self.dock.setObjectName("inspect")
        self.dock.setWidget(scroll)
        # On the left, at full height: the panel is tall, and the navigator keeps its place on the right.
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        self._content: int | None = None
        self._sized = False
        self._action: QAction | None = None
        self.how: HowItWorksDialog | None = None

    def wire(self, action: QAction) -> None:
        """Wire Inspect mode to the worker, the canvas and the panel; `action` is View ▸ Inspect Mode."""
        self._action = action
        ins, panel, canvas, c = self.inspect, self.panel, self.canvas, self.controller
        c.render_worker.add_extension(self.link)
        c.add_event_handler(self._on_worker_event)
        canvas.add_painter(ins.paint, device_pixels=True)
        canvas.add_painter(lambda p: ins.paint_cue(p, QRectF(canvas.rect())), device_pixels=False)
        canvas.pointer_moved.connect(ins.hover)
        canvas.pointer_left.connect(ins.leave)
        ins.changed.connect(canvas.update)
        ins.probe_changed.connect(self._on_probe)
        ins.status.connect(panel.set_status)
        ins.channels_known.connect(panel.set_channel_count)
        ins.feature_ready.connect(self._update_how_it_works)
        ins.illustration_probe.connect(self._on_illustration_probe)
        panel.options_changed.connect(ins.set_options)
        self.dock.visibilityChanged.connect(self._on_visibility)
        for sig in (c.photo_changed, c.encode_changed, c.engine_changed):
            sig.connect(self.sync)

    def _on_worker_event(self, ev: object) -> bool:
        """GUI thread: take Inspect mode's results; remember LIIF tiles for "what the model adds"."""
        if isinstance(ev, INSPECT_EVENTS):
            self.inspect.on_event(ev)
            return True
        # Only whole tiles: an edge tile's visible part or rest is not the tile the difference view asks for.
        whole = isinstance(ev, TileResult) and (ev.spec is None or ev.spec.part == "whole")
        if whole and isinstance(ev, TileResult) and ev.kind == "liif" and self.inspect.active:
            # The photo's own values: the difference view compares them with bicubic of the same values.
            self.link.remember_tile(ev.content, ev.key, ev.raw if ev.raw is not None else ev.pixels)
        return False

    def set_active(self, on: bool) -> None:
        """View ▸ Inspect Mode turned on or off."""
        self.inspect.set_active(on)
        self.dock.setVisible(on)
        if on and not self._sized:  # wide enough for the panel without a horizontal scroll bar
            self._sized = True
            extent = self._window.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
            width = self.panel.sizeHint().width() + extent + 4
            self._window.resizeDocks([self.dock], [width], Qt.Orientation.Horizontal)
        self.sync()

    def _on_visibility(self, visible: bool) -> None:
        """The dock's close button ends Inspect mode (not when the window is only minimised)."""
        w, action = self._window, self._action
        if (
            action is not None
            and not visible
            and w.isVisible()
            and not w.isMinimized()
            and action.isChecked()
        ):
            action.setChecked(False)

    def sync(self) -> None:
        """GUI thread: the photo, the model or the encoding changed: void stale results, say what we wait for."""
        photo = self.view.photo
        content = photo.content if photo is not None else None
        if content != self._content:
            self._content = content
            self.inspect.reset()
        if self.inspect.probe is None:
            c = self.controller
            encoded = not c.encode.running and c.encode.seconds is not None
            self.panel.set_status(
                "Open a photo to inspect it."
                if photo is None
                else describe_probe_wait(c.engine is not None, encoded)
            )

    def _on_probe(self, probe: Probe | None) -> None:
        """GUI thread: show a probe in the panel, with the photo's own pixel under it for comparison."""
        photo = self.view.photo
        source = None
        if probe is not None and photo is not None:
            x, y = int(probe.x), int(probe.y)
            if 0 <= x < photo.width and 0 <= y < photo.height:
                r, g, b = (int(v) for v in photo.rgb8[y, x])
                source = (r, g, b)
        self.panel.set_probe(probe, source)

    # -- Help ▸ How it works -----------------------------------------------------------------------------------
    def show_how_it_works(self) -> None:
        """Help ▸ How It Works, illustrated with the open photo around the centre of the view."""
        if self.how is None:
            self.how = HowItWorksDialog(self._window)
        photo, vp = self.view.photo, self.view.viewport
        if photo is None:
            self.how.set_illustrations(None)
        else:
            centre = (vp.cx, vp.cy) if vp is not None else (photo.width / 2, photo.height / 2)
            self.how.set_illustrations(
                Illustrations(
                    photo.path.name,
                    photo.rgb8,
                    centre,
                    self.inspect.feature_pixels("pca"),
                    display=photo.display,
                )
            )
            self.inspect.request_illustration(centre, ILLUSTRATION_MAGNIFICATION)
        self.how.show()
        self.how.raise_()

    def _update_how_it_works(self) -> None:
        ill = self.how.illustrations if self.how is not None else None
        if ill is not None and self.how is not None and self.how.isVisible():
            self.how.set_illustrations(replace(ill, pca=self.inspect.feature_pixels("pca")))

    def _on_illustration_probe(self, probe: Probe) -> None:
        ill = self.how.illustrations if self.how is not None else None
        if ill is not None and self.how is not None:
            self.how.set_illustrations(replace(ill, probe=probe))

    def on_display_changed(self) -> None:
        """GUI thread: the open photo is shown in new colours; so are How It Works' pictures of it."""
        photo = self.view.photo
        ill = self.how.illustrations if self.how is not None else None
        if self.how is not None and ill is not None and photo is not None and ill.rgb8 is photo.rgb8:
            self.how.set_illustrations(replace(ill, display=photo.display))
