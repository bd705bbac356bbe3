"""The display's own ICC profile, where the platform says what it is (no Qt, so it can be tested alone).

- **Windows**: the profile of the primary display, through Pillow (`ImageCms.get_display_profile`).
- **X11** (Qt's `xcb` platform): the `_ICC_PROFILE` property on the root window, as the "ICC Profiles in
  X" specification defines it and colord, GNOME and KDE set it (`_ICC_PROFILE_1` for screen 1, and so
  on). Read with ctypes from libX11, so no extra package is needed.
- **macOS** (Qt's `cocoa` platform): the main display's colour space from CoreGraphics
  (`CGDisplayCopyColorSpace`, then `CGColorSpaceCopyICCData`), through ctypes. Written to Apple's
  documented C API but not run on a Mac by this project (none was available); any failure means "not said".
- **Wayland and anything else**: not read (None): Wayland's colour management has no call Pillow or plain
  Xlib can make; photos are then shown as sRGB, which is what most screens and compositors expect.

Every reader returns the profile's bytes, None when the platform says nothing, and never raises: a
missing library, no X server or a property of the wrong type all mean "not said". The bytes are checked
and parsed by `viewer.app.display_colour.display_target`, which turns a damaged profile into a notice.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import sys

from PIL import ImageCms

log = logging.getLogger(__name__)

MAX_PROFILE_BYTES = 64 << 20
"""A longer property is not a display profile (display profiles are a few kB to a few MB)."""
_ANY_PROPERTY_TYPE = 0
_SUCCESS = 0


def read_display_profile(platform: str) -> bytes | None:
    """The display's profile for Qt's platform name (`QGuiApplication.platformName()`), or None.

    Empty bytes mean the platform names a profile that cannot be read (a notice then says so)."""
    if platform == "windows" or (platform == "" and sys.platform == "win32"):
        return windows_icc_profile()
    if platform == "xcb":
        return x11_icc_profile()
    if platform == "cocoa":
        return macos_icc_profile()
    return None  # Wayland, offscreen, ...: the platform does not say


def macos_icc_profile() -> bytes | None:
    """The main display's profile on macOS, from CoreGraphics (None elsewhere, or when it says none)."""
    if sys.platform != "darwin":
        return None
    try:
        frameworks = "/System/Library/Frameworks/"
        cg = ctypes.CDLL(frameworks + "CoreGraphics.framework/CoreGraphics")
        cf = ctypes.CDLL(frameworks + "CoreFoundation.framework/CoreFoundation")
        vp = ctypes.c_void_p
        cg.CGMainDisplayID.restype = ctypes.c_uint32
        cg.CGDisplayCopyColorSpace.argtypes = [ctypes.c_uint32]
        cg.CGDisplayCopyColorSpace.restype = vp
        cg.CGColorSpaceCopyICCData.argtypes = [vp]
        cg.CGColorSpaceCopyICCData.restype = vp
        cf.CFDataGetLength.argtypes = [vp]
        cf.CFDataGetLength.restype = ctypes.c_long
        cf.CFDataGetBytePtr.argtypes = [vp]
        cf.CFDataGetBytePtr.restype = vp
        cf.CFRelease.argtypes = [vp]
        space = cg.CGDisplayCopyColorSpace(cg.CGMainDisplayID())
        if not space:
            return None
        try:
            data = cg.CGColorSpaceCopyICCData(space)
            if not data:
                return None
            try:
                n = int(cf.CFDataGetLength(data))
                if not 0 < n <= MAX_PROFILE_BYTES:
                    return None
                return ctypes.string_at(cf.CFDataGetBytePtr(data), n)
            finally:
                cf.CFRelease(data)
        finally:
            cf.CFRelease(space)
    except (OSError, AttributeError, ValueError) as exc:
        log.info("no display profile from CoreGraphics: %s", exc)
        return None


def windows_icc_profile() -> bytes | None:
    """The primary display's profile on Windows (None elsewhere, or when none is set)."""
    try:
        profile = ImageCms.get_display_profile()
    except Exception as exc:  # a profile file the system names but LittleCMS cannot read
        log.info("unreadable display profile: %s", exc)
        return b""
    return None if profile is None else profile.tobytes()


class _XLib:
    """The few libX11 calls the reader needs, with their C signatures (so 64-bit handles stay whole)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        vp, ul, c_int, c_long = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long
        self.open = lib.XOpenDisplay
        self.open.argtypes, self.open.restype = [ctypes.c_char_p], vp
        self.close = lib.XCloseDisplay
        self.close.argtypes, self.close.restype = [vp], c_int
        self.root = lib.XDefaultRootWindow
        self.root.argtypes, self.root.restype = [vp], ul
        self.intern = lib.XInternAtom
        self.intern.argtypes, self.intern.restype = [vp, ctypes.c_char_p, c_int], ul
        self.get = lib.XGetWindowProperty
        self.get.argtypes = [
            vp, ul, ul, c_long, c_long, c_int, ul,
            ctypes.POINTER(ul), ctypes.POINTER(c_int), ctypes.POINTER(ul), ctypes.POINTER(ul),
            ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
        ]  # fmt: skip
        self.get.restype = c_int
        self.free = lib.XFree
        self.free.argtypes, self.free.restype = [vp], c_int


@functools.lru_cache(maxsize=1)
def _xlib() -> _XLib | None:
    """libX11, loaded once; None where it is not installed."""
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        return _XLib(ctypes.CDLL(name))
    except (OSError, AttributeError) as exc:
        log.info("libX11 not available: %s", exc)
        return None


def x11_icc_profile(display: str | None = None, screen: int = 0) -> bytes | None:
    """The `_ICC_PROFILE` (screen 0) or `_ICC_PROFILE_<screen>` property of the X server `display`
    (None: $DISPLAY), or None when there is no server, no such property, or it is not 8-bit data."""
    x = _xlib()
    name = display if display is not None else os.environ.get("DISPLAY")
    if x is None or not name:
        return None
    dpy = x.open(name.encode())
    if not dpy:
        return None
    try:
        atom_name = b"_ICC_PROFILE" if screen == 0 else f"_ICC_PROFILE_{screen}".encode()
        atom = x.intern(dpy, atom_name, 1)  # only if it exists: no property was ever set otherwise
        if not atom:
            return None
        actual_type, actual_format = ctypes.c_ulong(), ctypes.c_int()
        nitems, after = ctypes.c_ulong(), ctypes.c_ulong()
        data = ctypes.POINTER(ctypes.c_ubyte)()
        status = x.get(
            dpy, x.root(dpy), atom, 0, MAX_PROFILE_BYTES // 4, 0, _ANY_PROPERTY_TYPE,
            ctypes.byref(actual_type), ctypes.byref(actual_format), ctypes.byref(nitems),
            ctypes.byref(after), ctypes.byref(data),
        )  # fmt: skip
        if status != _SUCCESS or not data:
            return None
        try:
            if actual_format.value != 8 or after.value or not nitems.value:
                return None  # not bytes, longer than any display profile, or empty
            return ctypes.string_at(data, nitems.value)
        finally:
            x.free(data)
    except Exception as exc:  # never let a display query keep the window from opening
        log.info("cannot read the X display profile: %s", exc)
        return None
    finally:
        x.close(dpy)
