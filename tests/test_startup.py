"""Start-up of a CLI render: what it imports, and how."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_a_cli_render_imports_no_qt_and_no_torch_compiler(tmp_path: Path) -> None:
    """The render path must stay free of the GUI toolkit and of torch's compiler stack (seconds to import)."""
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(src)
    code = (
        "import json, sys\n"
        "from viewer.cli import main\n"
        f"rc = main(['render', {str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}, '--scale', '2', "
        "'--model', 'liif-fast'])\n"
        "heavy = ('PySide6', 'shiboken6', 'viewer.app', 'torch._dynamo', 'torch._inductor', 'matplotlib')\n"
        "import gc\n"
        "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules, 'gc': gc.isenabled(),\n"
        "    'frozen': gc.get_freeze_count(),\n"
        "    'heavy': sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy))}))\n"
    )
    env = {"LIIF_VIEWER_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["torch"]  # it did render, with the model
    assert got["heavy"] == []
    # torch was imported with the collector paused, and its objects frozen; the collector runs again.
    assert got["gc"] is True and got["frozen"] > 100_000
    assert (tmp_path / "out.png").is_file()


def test_imports_without_gc_pauses_the_collector_and_freezes_what_was_made() -> None:
    import gc

    from viewer.startup import imports_without_gc

    assert gc.isenabled()
    before = gc.get_freeze_count()
    try:
        with imports_without_gc():
            assert not gc.isenabled()
            made: list[list[int]] = [[] for _ in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= before + len(made)
        gc.disable()
        with pytest.raises(ValueError), imports_without_gc():
            raise ValueError("an import failed")
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
        gc.unfreeze()
