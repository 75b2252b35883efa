#!/usr/bin/env bash
# The whole test suite (README's second command runs setup first, then this).
# Stages: generated contract types up to date, type check, lint (Biome; ruff and mypy on the trainer), TypeScript unit/integration tests, Python tests, end-to-end in a real VS Code.
# SKIP_E2E=1 leaves out the end-to-end stage (development only; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
export TORCH_NUM_THREADS=${TORCH_NUM_THREADS:-2} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} TOKENIZERS_PARALLELISM=false
t() { local s=$(date +%s); echo "=== $*" >&2; "$@"; echo "=== $(( $(date +%s) - s ))s: $*" >&2; }
t node scripts/gen-types.mjs --check
t npx tsc --noEmit -p .
t npx biome lint
t bash -c 'cd trainer && ../.venv/bin/ruff check . && ../.venv/bin/mypy'
t .venv/bin/python -m pytest trainer/tests -q
t node scripts/run-ts-tests.mjs
if [ "${SKIP_E2E:-0}" != "1" ] && [ -f test/e2e/run.sh ]; then t bash test/e2e/run.sh; fi
