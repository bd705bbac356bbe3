"""Shared test setup: Qt runs headless (offscreen platform), set once before any Qt import."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Importing the app package first applies its guard against shiboken6 6.12's refcount bug on CPython
# < 3.12 (see viewer/app/__init__.py), so no test process aborts after many Qt calls.
import viewer.app  # noqa: F401
