#!/usr/bin/env bash
# Idempotent setup for a fresh clone: node modules (no dependency install scripts), the trainer's Python
# virtual environment (.venv, pinned trainer/requirements.lock), and the bundles in dist/.
# Re-running only redoes what changed. Env: PYTHON (interpreter for the venv, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

# 1. node modules: npm ci from the lock file; onnxruntime-node's and vsce-sign's install scripts stay denied (package.json allowScripts)
if [ ! -f node_modules/.setup-stamp ] || [ "$(cat node_modules/.setup-stamp)" != "$(stamp package-lock.json)" ]; then
  echo "[setup] npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  stamp package-lock.json > node_modules/.setup-stamp
fi

# 2. python venv for the trainer. PIP_RETRIES=0: on offline machines pip falls through to the local index at once.
bash scripts/setup-python.sh .venv

# 3. bundles
node esbuild.mjs >/dev/null 2>&1 || node esbuild.mjs
