"""Session restore: the next start brings back the last photo, its zoom and position; a setting turns it off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from viewer.app.main_window import MainWindow
from viewer.app.settings import AppSettings

from .helpers import make_tiny_engine, textured
from .test_window import TIMEOUT, make_window


def _start(qtbot: Any, settings: AppSettings, photo: Path | None, fallback: Path | None = None) -> MainWindow:
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    w.start(photo, fallback=fallback)
    return w


def _wait_photo(qtbot: Any, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: w.view.photo is not None and w.view.viewport is not None, timeout=TIMEOUT)


@pytest.fixture
def other_photo(tmp_path: Path) -> Path:
    p = tmp_path / "other.png"
    Image.fromarray(textured(64, 48, seed=5)).save(p)
    return p


def test_the_last_photo_comes_back_at_its_zoom_and_position(
    qtbot: Any, settings: AppSettings, photo_path: Path, other_photo: Path
) -> None:
    w = _start(qtbot, settings, photo_path)
    _wait_photo(qtbot, w)
    w.view.zoom_to(4.0)
    w.view.centre_on(30.0, 21.5)
    vp = w.view.viewport
    assert vp is not None and not w.view.fit_mode
    w.close()

    again = _start(qtbot, settings, None, fallback=other_photo)
    _wait_photo(qtbot, again)
    assert again.view.photo is not None and again.view.photo.path.resolve() == photo_path.resolve()
    back = again.view.viewport
    assert back is not None and not again.view.fit_mode
    assert (back.zoom, back.cx, back.cy) == pytest.approx((vp.zoom, vp.cx, vp.cy))
    assert back.zoom == pytest.approx(4.0)
    again.close()


def test_a_photo_left_at_fit_comes_back_at_fit(
    qtbot: Any, settings: AppSettings, photo_path: Path, other_photo: Path
) -> None:
    w = _start(qtbot, settings, photo_path)
    _wait_photo(qtbot, w)
    w.close()
    again = _start(qtbot, settings, None, fallback=other_photo)
    _wait_photo(qtbot, again)
    assert again.view.photo is not None and again.view.photo.path.name == photo_path.name
    assert again.view.fit_mode
    again.close()


def test_turned_off_the_next_start_opens_the_fallback_and_nothing_is_kept(
    qtbot: Any, settings: AppSettings, photo_path: Path, other_photo: Path
) -> None:
    w = _start(qtbot, settings, photo_path)
    _wait_photo(qtbot, w)
    w.view.zoom_to(3.0)
    assert w.act_restore_session.isChecked()
    w.act_restore_session.setChecked(False)
    w.close()
    assert settings.session() is None and not settings.restore_session()

    again = _start(qtbot, settings, None, fallback=other_photo)
    _wait_photo(qtbot, again)
    assert not again.act_restore_session.isChecked()
    assert again.view.photo is not None and again.view.photo.path.name == other_photo.name
    assert again.view.fit_mode
    again.close()


def test_a_photo_given_on_the_command_line_wins_and_a_deleted_one_is_not_sought(
    qtbot: Any, settings: AppSettings, photo_path: Path, other_photo: Path
) -> None:
    w = _start(qtbot, settings, photo_path)
    _wait_photo(qtbot, w)
    w.view.zoom_to(4.0)
    w.close()

    given = _start(qtbot, settings, other_photo)  # another photo asked for: opened at fit
    _wait_photo(qtbot, given)
    assert given.view.photo is not None and given.view.photo.path.name == other_photo.name
    assert given.view.fit_mode
    given.close()

    other_photo.unlink()  # the session now names other.png, which is gone: the fallback opens instead
    fallback = photo_path
    last = _start(qtbot, settings, None, fallback=fallback)
    _wait_photo(qtbot, last)
    assert last.view.photo is not None and last.view.photo.path.name == photo_path.name
    assert last.open_messages() == []
    last.close()
