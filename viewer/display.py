"""Whether the viewer's window can open here, checked before Qt is loaded: Qt aborts the whole process
(no exception to catch) where it finds no display or its X11 plugin cannot load, so these checks turn
those cases into one-line errors."""

from __future__ import annotations

import os
import sys

from viewer.errors import ViewerError

GUI_OPTIONS = ("--feature-memory", "--disk-cache")
"""The window's own command-line options (`liif-viewer [PHOTO] [--feature-memory MB] [--disk-cache MB]`)."""


def check_display() -> None:
    """Refuse in one line to open the window where Qt would abort for want of a display: on Linux and
    other X11/Wayland systems with neither DISPLAY nor WAYLAND_DISPLAY set, unless QT_QPA_PLATFORM names a
    platform that needs neither (offscreen, eglfs, vnc, ...)."""
    if sys.platform in ("win32", "darwin", "cygwin"):
        return
    wanted = [p.split(":")[0].strip() for p in os.environ.get("QT_QPA_PLATFORM", "").split(";") if p.strip()]
    if any(not p.startswith(("xcb", "wayland")) for p in wanted):
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        _check_x11_libraries(wanted)
        return
    if os.environ.get("XDG_SESSION_TYPE") in ("x11", "wayland"):
        _check_x11_libraries(wanted)
        return
    raise ViewerError(
        "no display found (DISPLAY and WAYLAND_DISPLAY are not set): open the viewer in a desktop session, "
        "or use the render, export or batch commands (liif-viewer --help)"
    )


_X11_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11-xcb.so.1": "libx11-xcb1",
}
"""System libraries that Qt's X11 platform plugin (`libqxcb.so`) links and some Linux systems lack, with
their Debian and Ubuntu package names. Qt aborts the process when one is missing."""


def _check_x11_libraries(wanted: list[str]) -> None:
    """Refuse in one line where Qt would open an X11 window without a system library its xcb platform
    links, naming the packages to install (Qt would abort the process instead, with a message that names
    only libxcb-cursor0 whatever is missing). Qt opens X11 when it is asked for first, or when nothing is
    asked and the session is not Wayland's. Each library is looked up as Qt's loader would find it."""
    import ctypes

    if not sys.platform.startswith("linux"):
        return
    if wanted:
        if not wanted[0].startswith("xcb"):
            return
    elif os.environ.get("XDG_SESSION_TYPE") == "wayland" and os.environ.get("WAYLAND_DISPLAY"):
        return
    missing = []
    for soname, package in _X11_LIBRARIES.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    if missing:
        raise ViewerError(
            f"the window needs X11 libraries that are not installed: install them (Debian and Ubuntu: sudo "
            f"apt install {' '.join(missing)}), or use the render, export or batch commands (liif-viewer --help)"
        )
