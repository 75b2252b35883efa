#!/usr/bin/env bash
# Creates (or refreshes) a virtual environment for the trainer with the pinned requirements.
# usage: scripts/setup-python.sh [VENV_DIR]   (default .venv)   env: PYTHON (default python3)
# GPU users: install a CUDA build of torch into the venv afterwards (docs/python.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PY=${PYTHON:-python3}
LOCK=trainer/requirements.lock
want=$(sha256sum "$LOCK" | cut -c1-16)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.setup-stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi
echo "[setup] python venv $VENV from $LOCK" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP_RETRIES=0 PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install -q --retries 0 -r "$LOCK" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
"$VENV/bin/python" -c "import torch, transformers, peft, onnxruntime" || { echo "[setup] python packages failed to install" >&2; exit 1; }
echo "$want" > "$VENV/.setup-stamp"
