"""Folder navigation: natural order, PageDown/PageUp in the window, ends, and unreadable photos skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from viewer.app.folder import list_photos, natural_key, step_from
from viewer.app.main_window import MainWindow
from viewer.app.photo import IMAGE_SUFFIXES
from viewer.app.settings import AppSettings

from .helpers import make_tiny_engine, textured
from .test_window import TIMEOUT, make_window


def test_natural_order_sorts_numbers_by_value() -> None:
    names = ["photo 10.png", "Photo 2.png", "photo 1.png", "photo 1b.png", "a.png", "photo 02.png"]
    assert sorted(names, key=natural_key) == [
        "a.png", "photo 1.png", "photo 1b.png", "Photo 2.png", "photo 02.png", "photo 10.png",
    ]  # fmt: skip


def test_listing_keeps_photos_only(tmp_path: Path) -> None:
    for name in ("b 10.jpg", "b 9.PNG", "notes.txt", ".hidden.png", "c.tif"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    assert [p.name for p in list_photos(tmp_path, IMAGE_SUFFIXES)] == ["b 9.PNG", "b 10.jpg", "c.tif"]


def test_steps_stop_at_the_ends_and_survive_a_deleted_current_photo(tmp_path: Path) -> None:
    photos = [tmp_path / n for n in ("p 1.png", "p 2.png", "p 10.png")]
    assert step_from(photos[0], photos, 1).target == photos[1]
    assert step_from(photos[2], photos, 1).target is None
    end = step_from(photos[0], photos, -1)
    assert end.target is None and (end.index, end.total) == (0, 3)
    gone = tmp_path / "p 5.png"  # not in the folder any more: steps go from where it sorted
    assert step_from(gone, photos, 1).target == photos[2]
    assert step_from(gone, photos, -1).target == photos[1]


def _folder(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    for i, name in enumerate(names):
        Image.fromarray(textured(40 + 8 * i, 32, seed=i + 1)).save(folder / name)
    return folder


def _press(qtbot: Any, w: MainWindow, key: Qt.Key, expect: str) -> None:
    qtbot.keyClick(w.canvas, key)
    qtbot.waitUntil(lambda: w.view.photo is not None and w.view.photo.path.name == expect, timeout=TIMEOUT)


def test_page_down_down_up_walks_the_folder_in_natural_order(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, ["photo 1.png", "photo 2.png", "photo 10.png"])
    (folder / "readme.txt").write_text("not a photo")
    made: list[object] = []

    def factory(config: object) -> object:
        made.append(make_tiny_engine())
        return made[-1]

    w = make_window(qtbot, settings, factory)
    w.start(folder / "photo 1.png")
    qtbot.waitUntil(lambda: w.view.photo is not None and w.controller.engine is not None, timeout=TIMEOUT)
    assert w.folder_label.text() == "1 / 3"
    shown = []
    for key, expect in (
        (Qt.Key.Key_PageDown, "photo 2.png"),
        (Qt.Key.Key_PageDown, "photo 10.png"),
        (Qt.Key.Key_PageUp, "photo 2.png"),
    ):
        _press(qtbot, w, key, expect)
        assert w.view.photo is not None
        shown.append((w.view.photo.path.name, w.view.photo.width, w.folder_label.text()))
    assert shown == [
        ("photo 2.png", 48, "2 / 3"),
        ("photo 10.png", 56, "3 / 3"),
        ("photo 2.png", 48, "2 / 3"),
    ]
    assert len(made) == 1, "the model was loaded again"
    qtbot.waitUntil(lambda: w.controller.encode.seconds is not None, timeout=TIMEOUT)  # the new photo encodes
    w.close()


def test_the_ends_are_announced_not_wrapped(qtbot: Any, settings: AppSettings, tmp_path: Path) -> None:
    folder = _folder(tmp_path, ["a.png", "b.png"])
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    w.start(folder / "b.png")
    qtbot.waitUntil(lambda: w.view.photo is not None, timeout=TIMEOUT)
    qtbot.keyClick(w.canvas, Qt.Key.Key_PageDown)
    assert "last photo in the folder (2 / 2)" in w.statusBar().currentMessage()
    qtbot.wait(200)
    assert w.view.photo is not None and w.view.photo.path.name == "b.png" and w.controller.loading is None
    _press(qtbot, w, Qt.Key.Key_PageUp, "a.png")
    qtbot.keyClick(w.canvas, Qt.Key.Key_PageUp)
    assert "first photo in the folder (1 / 2)" in w.statusBar().currentMessage()
    w.close()


@pytest.mark.parametrize("direction", [Qt.Key.Key_PageDown, Qt.Key.Key_PageUp])
def test_unreadable_photos_are_skipped_with_a_notice(
    qtbot: Any, settings: AppSettings, tmp_path: Path, direction: Qt.Key
) -> None:
    folder = _folder(tmp_path, ["s 1.png", "s 4.png"])
    (folder / "s 2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "s 3.jpg").write_bytes(b"")
    start, expect = ("s 1.png", "s 4.png") if direction == Qt.Key.Key_PageDown else ("s 4.png", "s 1.png")
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    w.start(folder / start)
    qtbot.waitUntil(lambda: w.view.photo is not None, timeout=TIMEOUT)
    messages: list[str] = []
    w.statusBar().messageChanged.connect(messages.append)
    _press(qtbot, w, direction, expect)
    assert any("s 2.png" in m and "s 3.jpg" in m and "cannot be opened" in m for m in messages), messages
    assert not w.open_messages(), "a skipped photo must not raise a dialog"
    assert w.folder_label.text() == ("4 / 4" if direction == Qt.Key.Key_PageDown else "1 / 4")
    w.close()


def test_a_step_uses_the_photo_decoded_ahead(
    qtbot: Any, settings: AppSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import viewer.app.controller as controller

    decoded: list[str] = []
    real = controller.load_photo

    def counting(request: int, path: Path, limit: float, target: Any = None) -> Any:
        decoded.append(path.name)
        return real(request, path, limit, target)

    monkeypatch.setattr(controller, "load_photo", counting)
    folder = _folder(tmp_path, ["n 1.png", "n 2.png"])
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    w.start(folder / "n 1.png")
    qtbot.waitUntil(lambda: w.controller._prefetched is not None, timeout=TIMEOUT)
    assert decoded == ["n 1.png", "n 2.png"]
    _press(qtbot, w, Qt.Key.Key_PageDown, "n 2.png")
    assert decoded == ["n 1.png", "n 2.png"], "the photo decoded ahead was decoded again"
    w.close()


def test_a_photo_changed_after_being_decoded_ahead_is_read_again(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    folder = _folder(tmp_path, ["m 1.png", "m 2.png"])
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    w.start(folder / "m 1.png")
    qtbot.waitUntil(lambda: w.controller._prefetched is not None, timeout=TIMEOUT)
    Image.fromarray(textured(72, 24, seed=9)).save(folder / "m 2.png")
    _press(qtbot, w, Qt.Key.Key_PageDown, "m 2.png")
    assert w.view.photo is not None and (w.view.photo.width, w.view.photo.height) == (72, 24)
    w.close()
