"""Colour-managed display: a ProPhoto-tagged photo is shown as ImageCms converts it to sRGB, at fit and
zoomed in and refined; the model and exports keep the photo's own values; a damaged profile falls back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from viewer.app.display_colour import display_transform
from viewer.app.export_dialog import ExportDialog
from viewer.app.main_window import MainWindow
from viewer.app.settings import AppSettings
from viewer.engine.export import plan_export
from viewer.engine.printsize import PixelSize

from .helpers import make_tiny_engine, textured
from .icc import grey_icc, prophoto_icc
from .test_window import TIMEOUT, grab_rgb, make_window, open_and_encode

TOLERANCE = 6
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(rgb: np.ndarray, icc: bytes) -> np.ndarray:
    """ImageCms's own conversion of `rgb` (uint8) from the profile `icc` to sRGB: the reference."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    out = ImageCms.profileToProfile(Image.fromarray(rgb, "RGB"), src, SRGB, outputMode="RGB")
    assert out is not None
    return np.asarray(out)


def smooth(w: int, h: int) -> np.ndarray:
    """Saturated, smooth colours (no grain, so a downscale commutes with the conversion)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / w, y / h, 0.5 + 0.4 * np.sin(x / 37.0) * np.cos(y / 29.0)], axis=2)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def photos(tmp_path: Path, rgb: np.ndarray, icc: bytes | None) -> tuple[Path, Path]:
    """The same pixels twice: tagged with `icc`, and untagged (shown as its raw values)."""
    tagged, plain = tmp_path / "tagged.png", tmp_path / "plain.png"
    Image.fromarray(rgb).save(tagged, icc_profile=icc)
    Image.fromarray(rgb).save(plain)
    return tagged, plain


def shown(
    qtbot: Any, settings: AppSettings, photo: Path, zoom: float | None
) -> tuple[np.ndarray, MainWindow]:
    """The canvas's pixels for `photo` at fit (zoom None) or at `zoom`, once every tile is refined."""
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    open_and_encode(qtbot, w, photo)
    if zoom is not None:
        w.view.zoom_to(zoom)
    w.view.flush()
    qtbot.waitUntil(w.view.is_settled, timeout=TIMEOUT)
    if w.view.compare:
        qtbot.waitUntil(lambda: w.view.is_settled("bicubic"), timeout=TIMEOUT)
    qtbot.wait(50)
    return grab_rgb(w.canvas), w


@pytest.mark.parametrize(("size", "zoom"), [((640, 480), None), ((96, 80), 4.0)], ids=["fit", "refined"])
def test_a_prophoto_photo_is_shown_as_imagecms_converts_it(
    qtbot: Any, settings: AppSettings, tmp_path: Path, size: tuple[int, int], zoom: float | None
) -> None:
    icc = prophoto_icc()
    rgb = smooth(*size) if zoom is None else textured(*size)
    tagged, plain = photos(tmp_path, rgb, icc)
    raw, w0 = shown(qtbot, settings, plain, zoom)
    vp0 = w0.view.viewport
    w0.close()
    got, w1 = shown(qtbot, settings, tagged, zoom)
    assert w1.view.viewport == vp0
    if zoom is None:
        assert vp0 is not None and not vp0.refinable  # the preview pyramid, not model tiles
    else:
        assert w1.view.viewport is not None and w1.view.viewport.refinable and w1.view.is_settled()
    want = to_srgb(raw, icc)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= TOLERANCE, diff.max()
    assert np.abs(raw.astype(int) - want.astype(int)).max() > 20  # the conversion does change colours
    assert "ProPhoto RGB (test), shown as sRGB" in w1.nav_panel.info.text()
    w1.close()


def test_compare_tiles_are_converted(qtbot: Any, settings: AppSettings, tmp_path: Path) -> None:
    icc = prophoto_icc()
    tagged, plain = photos(tmp_path, textured(96, 80), icc)
    settings.set_flag("compare", True)
    settings.set_compare_method("nearest")
    raw, w0 = shown(qtbot, settings, plain, 4.0)
    w0.close()
    got, w1 = shown(qtbot, settings, tagged, 4.0)
    right = (slice(40, 230), slice(172, 318))  # the source pixels' side, clear of the divider and labels
    diff = np.abs(got[right].astype(int) - to_srgb(np.ascontiguousarray(raw[right]), icc).astype(int))
    assert diff.max() <= TOLERANCE
    w1.close()


def test_the_navigator_and_the_export_preview_are_converted(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    icc = prophoto_icc()
    colour = np.array([[[200, 60, 40]]], np.uint8)
    tagged, _ = photos(tmp_path, np.tile(colour, (80, 96, 1)), icc)
    want = to_srgb(colour, icc)[0, 0].astype(int)
    assert np.abs(want - colour[0, 0]).max() > 20
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    w.nav_dock.show()
    open_and_encode(qtbot, w, tagged)
    qtbot.wait(50)
    w.view.zoom_to(8.0)  # the viewport's outline shrinks to the middle; a corner shows the photo alone
    qtbot.wait(50)
    nav = grab_rgb(w.navigator)
    thumb = w.navigator._image_rect()
    corner = nav[int(thumb.top()) + 6, int(thumb.left()) + 6].astype(int)
    assert np.abs(corner - want).max() <= TOLERANCE, (corner, want)
    photo = w.view.photo
    assert photo is not None
    dlg = ExportDialog((96, 80), {"image": (0.0, 0.0, 96.0, 80.0)}, settings, preview=photo.levels)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    assert dlg.crop_preview is not None
    pre = grab_rgb(dlg.crop_preview)
    centre = pre[pre.shape[0] // 2, pre.shape[1] // 2].astype(int)
    assert np.abs(centre - want).max() <= TOLERANCE, (centre, want)
    dlg.close()
    w.close()


def test_the_model_and_the_export_keep_the_photos_own_values(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    icc = prophoto_icc()
    tagged, plain = photos(tmp_path, textured(48, 40), icc)
    outs = []
    for src in (plain, tagged):
        w = make_window(qtbot, settings, lambda c: make_tiny_engine())
        open_and_encode(qtbot, w, src)
        done: list[str] = []
        w.controller.export_finished.connect(lambda _id, path, _s, done=done: done.append(path))
        w.start_export(
            plan_export(48, 40, None, PixelSize(96, 80), None, "stretch"), tmp_path / f"out-{src.stem}.png"
        )
        qtbot.waitUntil(lambda done=done: bool(done), timeout=TIMEOUT)
        w.close()
        with Image.open(tmp_path / f"out-{src.stem}.png") as im:
            outs.append((np.asarray(im), im.info.get("icc_profile")))
    (plain_px, plain_icc), (tagged_px, tagged_icc) = outs
    np.testing.assert_array_equal(tagged_px, plain_px)  # the same values: nothing was converted
    assert tagged_icc == icc and plain_icc is None


def test_a_damaged_profile_opens_as_srgb_with_one_notice(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    rgb = textured(96, 80)
    tagged, plain = photos(tmp_path, rgb, b"not an ICC profile at all, only bytes" * 4)
    raw, w0 = shown(qtbot, settings, plain, None)
    w0.close()
    w = make_window(qtbot, settings, lambda c: make_tiny_engine())
    notices: list[str] = []
    w.controller.notice.connect(lambda message, _dialog: notices.append(message))
    open_and_encode(qtbot, w, tagged)
    qtbot.waitUntil(w.view.is_settled, timeout=TIMEOUT)
    qtbot.wait(50)
    assert w.view.photo is not None and w.view.photo.display is None
    assert [n for n in notices if "colour profile" in n] == [
        "tagged.png: The photo's colour profile is damaged or unreadable: it is shown as sRGB."
    ]
    assert not w.open_messages()
    np.testing.assert_array_equal(grab_rgb(w.canvas), raw)  # shown as its values, like an untagged photo
    w.close()


def test_transforms_for_srgb_grey_and_unusable_profiles() -> None:
    srgb_bytes = SRGB.tobytes()
    assert display_transform(srgb_bytes) == (None, None)  # already sRGB: nothing to convert
    assert display_transform(None) == (None, None)
    grey, note = display_transform(grey_icc(1.0))
    assert grey is not None and grey.grey and note is None
    g = np.full((2, 3, 3), 64, np.uint8)
    out = grey.rgb(g)
    assert out.shape == (2, 3, 3) and 120 < int(out[0, 0, 0]) < 150  # linear 25% grey looks light in sRGB
    bgra = np.dstack([g[..., ::-1], np.full((2, 3), 77, np.uint8)])
    converted = grey.bgra(bgra)
    np.testing.assert_array_equal(converted[..., 3], 77)  # the opacity of a partial tile stays
    np.testing.assert_array_equal(converted[..., 2::-1], out)
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    t, note = display_transform(lab)
    assert t is None and note is not None and "LAB" in note
