"""Session restore: the app reopens the last photo at the zoom and position it was left at.

The window saves the session when it closes and asks, when it starts, which photo to open; the view is
restored once that photo has opened (the canvas size is known by then). File ▸ Reopen Last Photo at Start
turns it off, and then nothing is kept. GUI thread only.
"""

from __future__ import annotations

from pathlib import Path

from viewer.app.settings import AppSettings
from viewer.app.view_controller import ViewController


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


class SessionRestore:
    """Saves the open photo and its view, and brings them back at the next start."""

    def __init__(self, settings: AppSettings, view: ViewController) -> None:
        self._settings = settings
        self._view = view
        self._pending: tuple[Path, float, float, float, bool] | None = None

    @property
    def enabled(self) -> bool:
        return self._settings.restore_session()

    def set_enabled(self, on: bool) -> None:
        """Turn restoring on or off; off forgets the saved session at once."""
        self._settings.set_restore_session(on)
        if not on:
            self._settings.clear_session()
            self._pending = None

    def photo_to_open(self, given: Path | None) -> Path | None:
        """At start: `given` when there is one, else the last session's photo if it still exists.

        When the photo to open is the session's, its zoom and position are restored once it has opened."""
        session = self._settings.session() if self.enabled else None
        target = given
        if target is None and session is not None and session[0].is_file():
            target = session[0]
        if session is not None and target is not None and _same_file(target, session[0]):
            self._pending = session
        return target

    def on_photo_changed(self) -> None:
        """A photo opened: if it is the session's, put the view back where it was (once)."""
        pending, self._pending = self._pending, None
        view = self._view
        if pending is None or view.photo is None or not _same_file(view.photo.path, pending[0]):
            return
        _, zoom, cx, cy, fit = pending
        if fit:
            view.fit()
            return
        try:
            view.zoom_to(zoom)
        except ValueError:  # a zoom that is not a positive number: leave the view at fit
            return
        view.centre_on(cx, cy)

    def save(self) -> None:
        """At close: remember the open photo and its view (or nothing, when restoring is off)."""
        if not self.enabled:
            self._settings.clear_session()
            return
        photo, vp = self._view.photo, self._view.viewport
        if photo is None or vp is None:
            return  # nothing open: the last session stays
        self._settings.set_session(photo.path, vp.zoom, vp.cx, vp.cy, self._view.fit_mode)
