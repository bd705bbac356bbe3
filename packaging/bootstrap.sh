#!/usr/bin/env bash
# Sets up .venv for LIIF Viewer on this machine: a torch build that suits it (never the multi-gigabyte
# CUDA build on a machine without an NVIDIA GPU), the app, optionally the dev tools, and the official
# LIIF weights (verified download, see `liif-viewer fetch-weights`). Safe to run again: it skips what is done.
#
#   packaging/bootstrap.sh          app only
#   packaging/bootstrap.sh --dev    app + pytest, pytest-qt, hypothesis, ruff, mypy, and Ray (the cluster
#                                   extra, so the tests can run `batch --cluster` on a local Ray head)
#
# Environment: PYTHON (interpreter for the venv, default python3), TORCH_VERSION (default 2.13.0),
# TORCH_INDEX_URL (a wheel index to take torch from, overriding the automatic choice).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
CPU_INDEX=https://download.pytorch.org/whl/cpu
VENV=.venv
PIP=(env PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip)

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PY" -m venv "$VENV"
fi
"${PIP[@]}" install -q --upgrade "pip>=25.1"   # pip 25.1 reads [dependency-groups]

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    echo "bootstrap: torch $TORCH_VERSION from $TORCH_INDEX_URL"
    "${PIP[@]}" install -q "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "bootstrap: NVIDIA GPU found: torch $TORCH_VERSION with CUDA"
    "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  else
    # No NVIDIA GPU. See which build pip would take; on Linux the registry's default is the CUDA one,
    # so unless a CPU build is offered (a local wheel, or macOS/Windows), take PyTorch's CPU index.
    url=$("${PIP[@]}" install --dry-run --no-deps --quiet --report - "torch==$TORCH_VERSION" 2>/dev/null |
      "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["install"][0]["download_info"]["url"])' || true)
    if [ "$(uname -s)" != "Linux" ] || [[ "$url" == *"%2Bcpu"* || "$url" == *"+cpu"* ]]; then
      echo "bootstrap: no NVIDIA GPU: torch $TORCH_VERSION, CPU build (${url##*/})"
      "${PIP[@]}" install -q "torch==$TORCH_VERSION"
    else
      echo "bootstrap: no NVIDIA GPU: torch $TORCH_VERSION from the CPU-only index"
      "${PIP[@]}" install -q "torch==$TORCH_VERSION" --index-url "$CPU_INDEX"
    fi
  fi
fi

if [ "${1:-}" = "--dev" ]; then
  "${PIP[@]}" install -q -e '.[cluster]' --group dev
else
  "${PIP[@]}" install -q -e .
fi
"$VENV/bin/liif-viewer" fetch-weights
