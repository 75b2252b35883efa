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
# 2b. the trainer's lint and type-check tools (dev only: not part of a user's training environment)
if [ "$(cat .venv/.dev-stamp 2>/dev/null)" != "$(stamp trainer/requirements-dev.lock)" ]; then
  PIP_RETRIES=0 PIP_DISABLE_PIP_VERSION_CHECK=1 .venv/bin/python -m pip install -q --retries 0 -r trainer/requirements-dev.lock 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  .venv/bin/ruff --version >/dev/null && .venv/bin/mypy --version >/dev/null
  stamp trainer/requirements-dev.lock > .venv/.dev-stamp
fi

# 3. bundles
node esbuild.mjs >/dev/null 2>&1 || node esbuild.mjs

# 4. Debian's chromium for the browser tests (test/browser, driven by playwright-core) and CJK fonts (Chinese in
#    their screenshots); only what is missing
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] apt-get install ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; } \
    || echo "[setup] warning: could not install ${missing[*]}; the browser tests need /usr/bin/chromium (or CHROMIUM_PATH)" >&2
fi
