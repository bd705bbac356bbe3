#!/usr/bin/env bash
# Builds LIIF Viewer as a one-folder app with PyInstaller (dist/liif-viewer/), smoke-tests the bundle, and
# prints its size, its start-up times and how long the build took. Takes minutes; not part of `make test`.
#
#   packaging/build.sh                build, then smoke-test
#   packaging/build.sh --smoke-only   smoke-test the existing dist/liif-viewer
#
# PyInstaller runs on the project venv's own interpreter (packaging/bootstrap.sh makes it: a CPU-only torch on
# a machine without an NVIDIA GPU), so the bundle carries exactly the torch and Qt found there, laid out as in
# site-packages. PyInstaller itself comes from the package registry into build/packaging/pyinstaller (pip
# --target, on PYTHONPATH for the build only): the project venv is not modified. If the project venv's torch
# is a CUDA build, a throwaway venv (build/packaging/venv-cpu) with the CPU-only torch of the same version and
# the other dependencies is used instead (BUNDLE_TORCH=as-installed keeps the CUDA one).
#
# Smoke tests, run from an empty folder with a throwaway HOME (no settings, no downloaded weights):
#   1. `liif-viewer --version` (start-up time of the bundled Python alone);
#   2. `liif-viewer models` finds the model manifest inside the bundle;
#   3. `liif-viewer render <bundled sample> --size 64x64` with a tiny random model (torch, the engine and
#      the PNG writer in the bundle);
#   4. `liif-viewer --smoke-test` with QT_QPA_PLATFORM=offscreen: the real window opens the bundled sample,
#      renders one viewport with LIIF, checks the canvas is not blank and exits 0.
#
# Environment: PYINSTALLER_VERSION (default 6.22.3), BUNDLE_TORCH (cpu | as-installed, default cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PYINSTALLER_VERSION=${PYINSTALLER_VERSION:-6.22.3}
BUNDLE_TORCH=${BUNDLE_TORCH:-cpu}
CPU_INDEX=https://download.pytorch.org/whl/cpu
NAME=liif-viewer
PY=.venv/bin/python
PYI=build/packaging/pyinstaller
CPU_VENV=build/packaging/venv-cpu
DIST=dist
APPDIR=$DIST/$NAME
EXE=$ROOT/$APPDIR/$NAME
SMOKE_ONLY=0
[ "${1:-}" = "--smoke-only" ] && SMOKE_ONLY=1
PIP=(-m pip install -q --disable-pip-version-check)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
say() { echo "build: $*"; }

if [ "$SMOKE_ONLY" = 0 ]; then
  start=$(now)
  [ -x "$PY" ] || bash packaging/bootstrap.sh
  read -r torch_version torch_cuda < <("$PY" -c \
    'import torch; print(torch.__version__.split("+")[0], torch.version.cuda or "cpu")')
  if [ "$torch_cuda" != cpu ] && [ "$BUNDLE_TORCH" = cpu ]; then
    say "the project venv has torch $torch_version with CUDA $torch_cuda; bundling from $CPU_VENV (CPU-only)"
    if [ ! -x "$CPU_VENV/bin/python" ]; then
      "$PY" -m venv "$CPU_VENV"
      "$CPU_VENV/bin/python" "${PIP[@]}" "torch==$torch_version" --index-url "$CPU_INDEX"
      "$CPU_VENV/bin/python" "${PIP[@]}" $("$PY" -c 'import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(d for d in deps if not d.startswith("torch")))')
    fi
    PY=$CPU_VENV/bin/python
  fi
  # certifi rides along so the bundle carries a CA bundle: weights.py trusts it beside the system store,
  # which the bundled OpenSSL may look for in the wrong place on another distribution (or on macOS).
  if [ ! -f "$PYI/.installed-$PYINSTALLER_VERSION" ]; then
    say "installing PyInstaller $PYINSTALLER_VERSION and certifi into $PYI"
    rm -rf "$PYI"
    "$PY" "${PIP[@]}" --target "$PYI" "pyinstaller==$PYINSTALLER_VERSION" certifi
    touch "$PYI/.installed-$PYINSTALLER_VERSION"
  fi
  say "bundling $("$PY" -c 'import torch; print("torch", torch.__version__, f"(CUDA {torch.version.cuda})" if torch.version.cuda else "(CPU-only)")') from $PY"

  say "running PyInstaller (minutes)"
  PYTHONPATH=$ROOT/$PYI "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath build/pyinstaller packaging/liif-viewer.spec
  build_s=$(since "$start")
  say "built $APPDIR in $build_s s"
fi

[ -x "$EXE" ] || { echo "build: $EXE is missing; run packaging/build.sh" >&2; exit 1; }
sample=$ROOT/$APPDIR/_internal/viewer/_data/resources/sample.png
[ -f "$sample" ] || { echo "build: the bundle has no $sample" >&2; exit 1; }

smoke=$(mktemp -d "${TMPDIR:-/tmp}/liif-viewer-smoke.XXXXXX")
trap 'rm -rf "$smoke"' EXIT
mkdir -p "$smoke/home" "$smoke/cwd"
run() {  # the bundle, from an empty folder, with no user settings or downloaded weights
  (cd "$smoke/cwd" && env -u PYTHONPATH -u VIRTUAL_ENV HOME="$smoke/home" XDG_CONFIG_HOME="$smoke/home/.config" \
    XDG_DATA_HOME="$smoke/home/.local/share" XDG_CACHE_HOME="$smoke/home/.cache" LIIF_VIEWER_DATA="$smoke/data" \
    "$@")
}

t=$(now); run "$EXE" --version >/dev/null; first_version_s=$(since "$t")
t=$(now); version=$(run "$EXE" --version); version_s=$(since "$t")
say "$version: --version in $version_s s ($first_version_s s the first time)"

run "$EXE" models | grep -q '^edsr-baseline-liif' || { echo "build: 'models' does not list the manifest" >&2; exit 1; }

"$PY" -c "import sys; sys.path.insert(0, '$ROOT')
from viewer.liif.checkpoint import save_safetensors
from viewer.liif.liif import make_liif
save_safetensors(make_liif(), '$smoke/tiny.safetensors')"
t=$(now)
run "$EXE" render "$sample" -o "$smoke/render.png" --size 64x64 --model "$smoke/tiny.safetensors" --device cpu
render_s=$(since "$t")
"$PY" -c "from PIL import Image; im = Image.open('$smoke/render.png'); assert im.size == (64, 64), im.size"
say "render of the bundled sample to 64x64 (start-up, torch import, model load, encode, render, write): $render_s s"

t=$(now)
gui=$(run env QT_QPA_PLATFORM=offscreen "$EXE" --smoke-test --model "$smoke/tiny.safetensors" --device cpu \
  --out "$smoke/canvas.png" 2> >(grep -v 'propagateSizeHints' >&2))
gui_s=$(since "$t")
say "$gui"
say "GUI smoke test (window, open the sample, one refined viewport, exit 0): $gui_s s"

size=$(du -sh "$APPDIR" | cut -f1)
bytes=$(du -sb "$APPDIR" | cut -f1)
cuda_libs=$(find "$APPDIR" -name 'libcudart*' -o -name 'libcublas*' -o -name 'libcudnn*' | wc -l)
echo
echo "bundle:     $ROOT/$APPDIR ($size, $bytes bytes; CUDA libraries: $cuda_libs)"
[ -n "${build_s:-}" ] && echo "build time: $build_s s"
echo "start-up:   --version $version_s s; render 64x64 $render_s s; GUI smoke $gui_s s"
echo "smoke test: passed"
