"""The display's own profile as the colour target: read from X11's root window (for real, under Xvfb),
converted to as ImageCms converts, switched back to sRGB from View ▸ Display Colour without stale
tiles, and a damaged display profile falls back to sRGB with one notice."""

from __future__ import annotations

import ctypes
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from _data import on_ci
from PIL import Image, ImageCms
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QMenu

from viewer.app.display_colour import DisplayTarget, display_target, display_transform
from viewer.app.display_profile import read_display_profile, x11_icc_profile
from viewer.app.main_window import MainWindow
from viewer.app.settings import AppSettings

from .helpers import make_tiny_engine, textured
from .icc import display_p3_icc, prophoto_icc
from .test_window import CANVAS, TIMEOUT, grab_rgb

TOLERANCE = 6
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
XA_CARDINAL = 6


def convert(rgb: np.ndarray, src: bytes | None, dst: bytes | None) -> np.ndarray:
    """ImageCms's own conversion of `rgb` (uint8) between two profiles (None: sRGB): the reference."""
    a, b = (SRGB if icc is None else ImageCms.ImageCmsProfile(io.BytesIO(icc)) for icc in (src, dst))
    out = ImageCms.profileToProfile(Image.fromarray(np.ascontiguousarray(rgb), "RGB"), a, b, outputMode="RGB")
    assert out is not None
    return np.asarray(out)


def off_by(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# -- a real X server ---------------------------------------------------------------------------------------
@pytest.fixture
def xvfb() -> Iterator[str]:
    """A private Xvfb server (it picks a free display number); skips without Xvfb, fails under CI."""
    exe = shutil.which("Xvfb")
    if exe is None:
        reason = "Xvfb is not installed (apt install xvfb) to test reading the X11 display profile"
        if on_ci():
            pytest.fail(f"{reason} (CI is set, so it is required)", pytrace=False)
        pytest.skip(reason)
    r, w = os.pipe()
    # -noreset: the server keeps the root window's properties when the setting client disconnects.
    proc = subprocess.Popen(
        [exe, "-displayfd", str(w), "-noreset", "-nolisten", "tcp", "-screen", "0", "64x64x24"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    number = b""
    with os.fdopen(r, "rb") as f:
        number = f.readline().strip()  # written once the server accepts connections
    try:
        assert number, "Xvfb did not start"
        yield f":{number.decode()}"
    finally:
        proc.terminate()
        proc.wait(10)


def set_root_property(display: str, name: str, data: bytes, fmt: int = 8) -> None:
    """Set a property on the root window as colord does for `_ICC_PROFILE` (a test-side Xlib client)."""
    x = ctypes.CDLL("libX11.so.6")  # its own function objects: the reader's signatures stay its own
    vp, ul = ctypes.c_void_p, ctypes.c_ulong
    x.XOpenDisplay.argtypes, x.XOpenDisplay.restype = [ctypes.c_char_p], vp
    x.XDefaultRootWindow.argtypes, x.XDefaultRootWindow.restype = [vp], ul
    x.XInternAtom.argtypes, x.XInternAtom.restype = [vp, ctypes.c_char_p, ctypes.c_int], ul
    x.XChangeProperty.argtypes = [vp, ul, ul, ul, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    x.XSync.argtypes = [vp, ctypes.c_int]
    x.XCloseDisplay.argtypes = [vp]
    dpy = x.XOpenDisplay(display.encode())
    assert dpy
    try:
        atom = x.XInternAtom(dpy, name.encode(), 0)
        # Format 32 data is passed as C longs: one per 4 bytes given.
        items = len(data) if fmt == 8 else len(data) // 4
        payload = data if fmt == 8 else bytes(ctypes.sizeof(ctypes.c_long) * items)
        x.XChangeProperty(dpy, x.XDefaultRootWindow(dpy), atom, XA_CARDINAL, fmt, 0, payload, items)
        x.XSync(dpy, 0)
    finally:
        x.XCloseDisplay(dpy)


def test_the_x11_reader_reads_the_root_windows_profile(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert x11_icc_profile(xvfb) is None  # nothing set: the platform does not say
    p3, prophoto = display_p3_icc(), prophoto_icc()
    set_root_property(xvfb, "_ICC_PROFILE", p3)
    set_root_property(xvfb, "_ICC_PROFILE_1", prophoto)
    assert x11_icc_profile(xvfb) == p3
    assert x11_icc_profile(xvfb, screen=1) == prophoto
    assert x11_icc_profile(xvfb, screen=2) is None
    monkeypatch.setenv("DISPLAY", xvfb)
    assert read_display_profile("xcb") == p3  # what the app reads under Qt's X11 platform
    for platform in ("offscreen", "wayland", "cocoa", "minimal"):
        assert read_display_profile(platform) is None
    # What was read is a usable target, and converts as ImageCms does.
    target, notice = display_target(x11_icc_profile(xvfb))
    assert notice is None and target is not None and target.name == "Display P3 (test)"
    rgb = textured(32, 24)
    t, _ = display_transform(None, target)
    assert t is not None and off_by(t.rgb(rgb), convert(rgb, None, p3)) <= TOLERANCE
    # Not 8-bit data, and no server at all: not said, never an error.
    set_root_property(xvfb, "_ICC_PROFILE", bytes(16), fmt=32)
    assert x11_icc_profile(xvfb) is None
    assert x11_icc_profile(":9999") is None


# -- the conversion -----------------------------------------------------------------------------------------
def test_conversion_to_a_display_profile_equals_imagecms() -> None:
    p3, prophoto = display_p3_icc(), prophoto_icc()
    target, notice = display_target(p3)
    assert target is not None and notice is None
    rgb = textured(64, 48)
    for src in (None, prophoto):  # untagged photos are sRGB, and are converted for the display too
        t, note = display_transform(src, target)
        assert t is not None and note is None and t.target == "Display P3 (test)"
        want = convert(rgb, src, p3)
        assert off_by(t.rgb(rgb), want) <= TOLERANCE
        assert off_by(want, convert(rgb, src, None)) > 10  # the target matters
    # Keyed by the target: the same photo profile converts differently for another target.
    to_srgb, _ = display_transform(prophoto, None)
    assert to_srgb is not None and to_srgb is not display_transform(prophoto, target)[0]
    assert to_srgb.target == "sRGB"
    # An sRGB screen is sRGB: no target, so untagged photos cost nothing.
    assert display_target(SRGB.tobytes()) == (None, None)
    assert display_target(None) == (None, None)
    other = DisplayTarget(prophoto, "wide")
    assert display_transform(None, other)[0] is not display_transform(None, target)[0]


# -- in the window ------------------------------------------------------------------------------------------
def window(qtbot: Any, settings: AppSettings, profile: Callable[[], bytes | None]) -> MainWindow:
    w = MainWindow(settings, engine_factory=lambda c: make_tiny_engine(), display_profile=profile)
    qtbot.addWidget(w)
    w.nav_dock.hide()
    w.canvas.setFixedSize(*CANVAS)
    w.show()
    qtbot.waitExposed(w)
    return w


def shown(qtbot: Any, w: MainWindow, zoom: float = 4.0) -> np.ndarray:
    """The canvas once every tile of the view at `zoom` (about the photo's centre) is refined."""
    w.view.zoom_to(zoom)
    w.view.flush()
    qtbot.waitUntil(w.view.is_settled, timeout=TIMEOUT)
    qtbot.wait(50)
    return grab_rgb(w.canvas)


def open_photo(qtbot: Any, w: MainWindow, path: Path) -> None:
    if w.view.photo is None:
        w.start(path)
    else:
        w.controller.open(path)
    qtbot.waitUntil(
        lambda: (
            w.view.photo is not None and w.view.photo.path == path and w.controller.encode.seconds is not None
        ),
        timeout=TIMEOUT,
    )


def choose(qtbot: Any, w: MainWindow, mode: str) -> None:
    """View ▸ Display Colour ▸ `mode`, and wait for the open photo to be converted again."""
    with qtbot.waitSignal(w.controller.display_changed, timeout=TIMEOUT):
        w.act_display_colour[mode].trigger()


def pyramid_rgb(w: MainWindow) -> np.ndarray:
    """The full-size preview level as shown (what the navigator and the fit view draw from)."""
    assert w.view.photo is not None
    return grab_pixmap(w.view.photo.levels[0])


def grab_pixmap(pm: Any) -> np.ndarray:
    img = pm.toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, wd, bpl = img.height(), img.width(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8).reshape(h, bpl)[:, : wd * 3].reshape(h, wd, 3).copy()


def test_the_display_profile_is_the_target_and_srgb_can_be_chosen_again(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    p3, prophoto = display_p3_icc(), prophoto_icc()
    rgb = textured(96, 80)
    plain, tagged = tmp_path / "plain.png", tmp_path / "tagged.png"
    Image.fromarray(rgb).save(plain)
    Image.fromarray(rgb).save(tagged, icc_profile=prophoto)
    settings.set_display_colour("srgb")
    w = window(qtbot, settings, lambda: p3)
    assert w.act_display_colour["srgb"].isChecked()
    view_menu = w._walk(cast(QMenu, w.menuBar().actions()[2].menu()))
    assert all(a in view_menu for a in w.act_display_colour.values())  # View ▸ Display Colour
    open_photo(qtbot, w, plain)
    raw = shown(qtbot, w)  # an untagged photo on an sRGB target: its own values
    assert w.view.viewport is not None and w.view.viewport.refinable

    choose(qtbot, w, "auto")  # the display says Display P3: even the untagged photo is converted
    assert settings.display_colour() == "auto"
    assert w.controller.display_target is not None
    got = shown(qtbot, w)
    assert off_by(got, convert(raw, None, p3)) <= TOLERANCE
    assert off_by(got, raw) > 10
    assert off_by(pyramid_rgb(w), convert(rgb, None, p3)) <= TOLERANCE

    open_photo(qtbot, w, tagged)  # a ProPhoto photo, opened while the target is the display
    got = shown(qtbot, w)
    assert off_by(got, convert(raw, prophoto, p3)) <= TOLERANCE
    assert "ProPhoto RGB (test), shown as Display P3 (test)" in w.nav_panel.info.text()

    choose(qtbot, w, "srgb")  # back to sRGB: the same photo and model, every tile converted again
    assert settings.display_colour() == "srgb" and w.act_display_colour["srgb"].isChecked()
    got = shown(qtbot, w)
    assert off_by(got, convert(raw, prophoto, None)) <= TOLERANCE
    assert off_by(convert(raw, prophoto, None), convert(raw, prophoto, p3)) > 10  # not the P3 pixels
    assert off_by(pyramid_rgb(w), convert(rgb, prophoto, None)) <= TOLERANCE
    assert "ProPhoto RGB (test), shown as sRGB" in w.nav_panel.info.text()
    w.close()


def test_a_damaged_display_profile_falls_back_to_srgb_with_one_notice(
    qtbot: Any, settings: AppSettings, tmp_path: Path
) -> None:
    prophoto = prophoto_icc()
    rgb = textured(96, 80)
    plain, tagged = tmp_path / "plain.png", tmp_path / "tagged.png"
    Image.fromarray(rgb).save(plain)
    Image.fromarray(rgb).save(tagged, icc_profile=prophoto)
    w = window(qtbot, settings, lambda: b"not an ICC profile at all, only bytes" * 4)
    notices: list[str] = []
    w.controller.notice.connect(lambda message, _dialog: notices.append(message))
    assert settings.display_colour() == "auto" and w.act_display_colour["auto"].isChecked()
    open_photo(qtbot, w, plain)
    raw = shown(qtbot, w)
    assert w.controller.display_target is None
    photo = w.view.photo
    assert photo is not None and photo.display is None  # untagged, for sRGB: shown as its values
    open_photo(qtbot, w, tagged)  # the photo's own profile still converts, to sRGB
    got = shown(qtbot, w)
    assert off_by(got, convert(raw, prophoto, None)) <= TOLERANCE
    photo = w.view.photo
    assert photo is not None and photo.display is not None and photo.display.target == "sRGB"
    assert [n for n in notices if "colour profile" in n] == [
        "The display's colour profile is damaged or unreadable: photos are shown in sRGB."
    ]
    assert not w.open_messages()  # a notice in the status bar, not a dialog
    w.close()
