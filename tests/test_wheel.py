"""The wheel installs as an app: build it, install it into a fresh virtual environment, run it elsewhere.

The wheel is built by pip with the project's build backend (hatchling, fetched by pip into an isolated
build environment), installed with `--no-deps` into a new venv, and the heavy dependencies (torch,
PySide6, ...) are made importable there with a `.pth` line pointing at this interpreter's site-packages,
so nothing large is reinstalled. Plain path lines in a `.pth` do not run the `.pth` files of the folder
they add, so the checkout's editable install stays invisible: `viewer` must come from the wheel, and the
sample photo and model manifest must be found inside site-packages, from a working directory that is
neither the checkout nor the venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from viewer.liif.checkpoint import save_safetensors
from viewer.liif.liif import make_liif

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(out),
         str(ROOT)],
        cwd=out,
    )  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A new venv holding only the wheel (plus a .pth to this interpreter's dependencies); its bin folder."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    python = bindir / ("python.exe" if sys.platform == "win32" else "python")
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         "--disable-pip-version-check", str(wheel)],
        cwd=env_dir,
    )  # fmt: skip
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(_run([str(python), "-c", where], env_dir).strip())
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "_liif_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)), encoding="utf-8")
    return bindir


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["LIIF_VIEWER_DATA"] = str(tmp / "userdata")  # never the real user's weights
    return env


def test_wheel_contains_the_package_and_its_data(wheel: Path) -> None:
    assert wheel.name.startswith(f"{PROJECT['name'].replace('-', '_')}-{PROJECT['version']}-")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for required in (
        "viewer/__init__.py",
        "viewer/cli.py",
        "viewer/_data/models/manifest.json",
        "viewer/_data/resources/sample.png",
        "viewer/_data/resources/ATTRIBUTION.md",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    assert not any(n.startswith(("tests/", "packaging/", "models/", "resources/")) for n in names)


def test_installed_app_runs_from_another_directory(installed: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = _env(tmp_path)
    exe = str(installed / "liif-viewer")
    python = str(installed / "python")

    assert _run([exe, "--version"], cwd, env).strip() == f"liif-viewer {PROJECT['version']}"

    probe = "import viewer, viewer.paths as p; print(viewer.__file__); print(p.sample_photo()); print(p.models_dir())"
    pkg, sample, models = (Path(line) for line in _run([python, "-c", probe], cwd, env).splitlines())
    site = pkg.parent.parent
    assert site.name == "site-packages" and installed.parent in site.parents, f"viewer imported from {pkg}"
    assert sample == site / "viewer" / "_data" / "resources" / "sample.png" and sample.is_file()
    assert (models / "manifest.json").is_file() and site in models.parents

    assert "edsr-baseline-liif" in _run([exe, "models"], cwd, env)

    model = tmp_path / "tiny.safetensors"
    save_safetensors(make_liif(seed=7), model)
    render = [exe, "render", str(sample), "-o", "out.png", "--scale", "1.5", "--model", str(model)]
    out = _run([*render, "--device", "cpu"], cwd, env)
    assert "wrote out.png" in out
    with Image.open(sample) as src, Image.open(cwd / "out.png") as img:
        assert img.format == "PNG"
        assert img.size == (round(src.width * 1.5), round(src.height * 1.5))
        assert img.mode == "RGB" and img.getextrema() != ((0, 0), (0, 0), (0, 0))
