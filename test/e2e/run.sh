#!/usr/bin/env bash
# End-to-end tests in a real VS Code (code-server) driven by playwright-core + Debian's chromium.
# Called by scripts/test.sh; on its own: `bash test/e2e/run.sh [scenario-name-filter...]`.
# Flow: harness (installed once into the cache, reused) -> .vsix (npm run package) -> fresh state + demo workspace
# -> code-server on a free 127.0.0.1 port -> scenarios (screenshots in test-results/e2e/) -> stop (always).
# env: BLOOM_PEFT_E2E_HOME (cache), E2E_VSIX (use this .vsix instead of packaging), E2E_HEADED=1 (needs a display),
#      E2E_KEEP=1 (leave the state dir for inspection; it is wiped at the next run anyway)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
cd "$REPO"
RESULTS=$REPO/test-results/e2e
STATE=$E2E_HOME/state-test
WORKSPACE=$STATE/workspace
t() { local s=$(date +%s); "$@"; e2e_log "$(( $(date +%s) - s ))s: ${*:1:3}"; }

t bash "$HERE/setup.sh"
[ -x "$PYTHON_FOR_TRAINER" ] || { e2e_log "no trainer Python at $PYTHON_FOR_TRAINER: run npm run setup first"; exit 1; }

VSIX=${E2E_VSIX:-}
if [ -z "$VSIX" ]; then
  package() { npm run --silent package >"$E2E_HOME/package.log" 2>&1 || { cat "$E2E_HOME/package.log" >&2; return 1; }; }
  t package
  VSIX=$REPO/dist/bloom-peft-studio.vsix
fi

rm -rf "$RESULTS"; mkdir -p "$RESULTS"
t e2e_fresh_state "$VSIX"
e2e_fill_workspace
PORT=$(e2e_free_port)

cleanup() {
  local rc=$?
  local running left i
  running=$(e2e_trainer_pids)
  e2e_stop
  # No trainer may outlive VS Code for good. Runs belong to detached run supervisors and survive window reloads
  # by design (docs/host.md), so closing VS Code for good here means what it means for a user with the default
  # settings: stop the runs, with the shipped CLI (`bloom-peft stop` asks each run's owner through its
  # stop-requested file: checkpoint, then exit; bounded by 30 s, then the tree is killed). A trainer or run
  # supervisor left after that is a bug: report it, then end it.
  local cli
  cli=$(ls "$STATE"/extensions/*/dist/cli.js 2>/dev/null | head -1 || true)
  if [ -n "$running" ] && [ -n "$cli" ]; then
    for d in "$WORKSPACE"/.bloom-peft/runs/*/; do
      [ -f "$d/run.json" ] || continue
      node "$cli" stop "$(basename "$d")" --runs-dir "$WORKSPACE/.bloom-peft/runs" --timeout 30 >>"$STATE/stop.log" 2>&1 || e2e_log "bloom-peft stop $(basename "$d") failed: $(tail -2 "$STATE/stop.log")"
    done
  fi
  if [ -n "$running" ]; then
    for i in $(seq 1 60); do left=$(e2e_trainer_pids); [ -z "$left" ] && break; sleep 0.5; done
    if [ -z "$left" ]; then e2e_log "trainer(s) $(echo $running) running at shutdown ended within $(( i / 2 )) s"; fi
  fi
  left=$(e2e_trainer_pids)
  if [ -n "$left" ]; then
    e2e_log "FAIL: trainer processes left after VS Code stopped and its runs were stopped: $(echo $left)"
    kill -KILL $left 2>/dev/null || true
    [ $rc -ne 0 ] || rc=1
  fi
  mkdir -p "$RESULTS/logs"
  cp "$STATE/server.log" "$RESULTS/logs/" 2>/dev/null || true
  cp -r "$STATE/user-data/logs/." "$RESULTS/logs/" 2>/dev/null || true
  find "$WORKSPACE/.bloom-peft/runs" -maxdepth 2 \( -name trainer.log -o -name events.jsonl -o -name run.json \) 2>/dev/null |
    while read -r f; do d=$RESULTS/logs/runs/$(basename "$(dirname "$f")"); mkdir -p "$d"; cp "$f" "$d/"; done
  [ "${E2E_KEEP:-0}" = 1 ] || rm -rf "$STATE"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# one CPU thread per trainer: code-server, the extension host and chromium share these 2 cores
TORCH_NUM_THREADS=1 OMP_NUM_THREADS=1 e2e_start
CS_URL=http://127.0.0.1:$PORT WORKSPACE=$WORKSPACE RESULTS=$RESULTS REPO=$REPO STATE=$STATE \
  node "$HERE/driver.mjs" "$@"
