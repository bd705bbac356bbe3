"""The shiboken6 refcount workaround: many void Qt calls and signal emissions must not abort CPython."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import os, sys
os.environ['QT_QPA_PLATFORM'] = 'offscreen'
import viewer.app
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter
app = QGuiApplication([])
img = QImage(16, 16, QImage.Format.Format_ARGB32_Premultiplied)
p = QPainter(img)
timer = QTimer()
for _ in range(300_000):
    p.setBrush(QColor(1, 2, 3))
    timer.timeout.emit()
    timer.isActive()
p.end()
print('ok')
"""


def test_many_qt_calls_and_signals_do_not_abort() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
