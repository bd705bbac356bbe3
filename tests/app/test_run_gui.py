"""`run_gui`, the `liif-viewer` entry point, in a fresh process: qasync loop, sample photo, clean quit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CODE = """
import sys
import viewer.app.worker as worker
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, sys.argv[1])
from helpers import make_tiny_engine

worker.default_engine_factory = lambda config: make_tiny_engine()
from viewer.app.main import make_application, run_gui

app = make_application()
state = {}

def check():
    w = next(w for w in QApplication.topLevelWidgets() if w.objectName() == 'main-window')
    c = w.controller
    if c.photo is not None and c.encode.seconds is not None:
        state['ok'] = (w.isVisible(), c.photo.path.name, c.engine.model_name)
        w.close()
    else:
        QTimer.singleShot(50, check)

QTimer.singleShot(50, check)
rc = run_gui(None)
print(rc, state.get('ok'))
"""


def test_run_gui_opens_the_sample_and_quits_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_CONFIG_HOME": str(tmp_path),
        "HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=300, env=env, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "0 (True, 'sample.png', 'tiny')", (
        out.stdout + out.stderr[-2000:]
    )
