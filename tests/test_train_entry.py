"""`python -m viewer.train` stands on its own: the trainer never imports the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_trainer_does_not_import_the_cli(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from viewer.train import trainer\n"
        "rc = trainer.main(['--recipe', 'fast', '--name', 'x', '--out', sys.argv[1], '--data', sys.argv[2],\n"
        "                    '--work', sys.argv[3]])\n"
        "print('cli imported' if 'viewer.cli' in sys.modules else 'cli not imported', rc)\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "x.safetensors"),
            str(tmp_path / "no-such-data"),
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.splitlines()[-1].split() == ["cli", "not", "imported", "2"], out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("liif-viewer train: error:"), out.stderr
