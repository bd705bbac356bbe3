"""A reader that stops early (`liif-viewer models | head -1`) ends the command quietly, without a traceback."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_gives_no_traceback() -> None:
    cmd = [sys.executable, "-c", "from viewer.entry import main; main()", "models", "--long"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command writes its first line
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 141, (code, err)
