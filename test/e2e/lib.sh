# Shared by run.sh (tests) and try.sh (a person): paths, a fresh VS Code state with the extension installed,
# start/stop of code-server. Source it; every function takes its inputs from the variables below.
#   E2E_HOME   cache (code-server install, states):  ${BLOOM_PEFT_E2E_HOME:-~/.cache/bloom-peft-e2e}
#   STATE      one VS Code's user data, extensions, XDG dirs, logs
#   WORKSPACE  the folder VS Code opens
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_HOME=${BLOOM_PEFT_E2E_HOME:-$HOME/.cache/bloom-peft-e2e}
CS_VERSION=${CS_VERSION:-4.100.3}
CS_DIR=$E2E_HOME/code-server-$CS_VERSION
PYTHON_FOR_TRAINER=${BLOOM_PEFT_E2E_PYTHON:-$REPO/.venv/bin/python}

e2e_log() { echo "[e2e] $*" >&2; }

e2e_free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Same isolation for every code-server call: nothing written to ~/.config or ~/.local, no extension gallery
# (its default is open-vsx.org), so only loopback is ever contacted.
e2e_cs() {
  XDG_CONFIG_HOME=$STATE/xdg/config XDG_DATA_HOME=$STATE/xdg/data XDG_CACHE_HOME=$STATE/xdg/cache EXTENSIONS_GALLERY='{}' \
    node "$CS_DIR/out/node/entry.js" --config "$STATE/config.yaml" --user-data-dir "$STATE/user-data" \
    --extensions-dir "$STATE/extensions" "$@"
}

# A state dir with user settings (trainer's Python, no telemetry/updates/tips); kept settings are left alone.
e2e_prepare_state() {
  mkdir -p "$STATE"/{user-data/User,extensions,xdg/config,xdg/data,xdg/cache} "$WORKSPACE"
  printf 'bind-addr: 127.0.0.1:0\nauth: none\ncert: false\n' > "$STATE/config.yaml"
  [ -f "$STATE/user-data/User/settings.json" ] || cat > "$STATE/user-data/User/settings.json" <<JSON
{
  "bloomPeft.pythonPath": "$PYTHON_FOR_TRAINER",
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "extensions.ignoreRecommendations": true,
  "editor.inlineSuggest.enabled": true,
  "files.autoSave": "off",
  "files.hotExit": "off",
  "git.enabled": false
}
JSON
}

e2e_install_vsix() { # vsix
  e2e_cs --force --install-extension "$1" >"$STATE/install.log" 2>&1 || { cat "$STATE/install.log" >&2; return 1; }
  e2e_log "installed $(basename "$1") into $STATE/extensions"
}

e2e_fresh_state() { # vsix
  rm -rf "$STATE"
  e2e_prepare_state
  e2e_install_vsix "$1"
}

# The demo workspace: the sample datasets and a scratch file to type into.
e2e_fill_workspace() {
  mkdir -p "$WORKSPACE/data"
  cp -r "$REPO/examples/code-tasks" "$REPO/examples/code-corpus" "$REPO/examples/zh-tasks" "$WORKSPACE/data/"
  [ -f "$WORKSPACE/notes.txt" ] || printf 'Scratch file: type an instruction and its input on two lines, e.g.\n\n' > "$WORKSPACE/notes.txt"
}

# Starts code-server on 127.0.0.1:$PORT in its own process group (PGID = its PID) and waits for /healthz.
# BLOOM_PEFT_PYTHON (the lookup's first choice) names the trainer's Python besides the pythonPath user setting: in
# two of three fresh-clone CI runs the first window of a new profile asked for parameter counts with neither the
# setting nor a later configuration change in sight for 90 s, so the system python3 (no torch) answered
# (docs/e2e.md, "Known issues").
e2e_start() {
  BLOOM_PEFT_PYTHON=$PYTHON_FOR_TRAINER XDG_CONFIG_HOME=$STATE/xdg/config XDG_DATA_HOME=$STATE/xdg/data XDG_CACHE_HOME=$STATE/xdg/cache EXTENSIONS_GALLERY='{}' \
    setsid node "$CS_DIR/out/node/entry.js" --bind-addr "127.0.0.1:$PORT" --auth none \
    --disable-telemetry --disable-update-check --disable-workspace-trust --disable-getting-started-override \
    --config "$STATE/config.yaml" --user-data-dir "$STATE/user-data" --extensions-dir "$STATE/extensions" \
    "$WORKSPACE" >"$STATE/server.log" 2>&1 < /dev/null &
  echo $! > "$STATE/server.pid"
  local i
  for i in $(seq 1 150); do
    if curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null; then e2e_log "code-server (pid $(cat "$STATE/server.pid")) on http://127.0.0.1:$PORT"; return 0; fi
    kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null || { cat "$STATE/server.log" >&2; return 1; }
    sleep 0.2
  done
  e2e_log "code-server did not answer /healthz in 30 s"; cat "$STATE/server.log" >&2; return 1
}

# Ends exactly the process group e2e_start made (code-server and its extension host; trainers have groups of their
# own). SIGTERM to the server first, so it shuts its extension host down as when a window closes; then SIGTERM to
# the group after 10 s, SIGKILL after 20 s.
e2e_stop() {
  [ -f "$STATE/server.pid" ] || return 0
  local pid i
  pid=$(cat "$STATE/server.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 -- "-$pid" 2>/dev/null || { rm -f "$STATE/server.pid"; return 0; }
    [ "$i" = 50 ] && kill -TERM -- "-$pid" 2>/dev/null
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$STATE/server.pid"
}

# Trainers the extension started for this workspace (their own process groups) that are still alive: pids.
e2e_trainer_pids() {
  # trainers and their detached run supervisors (dist/run-supervisor.js --runs-dir <workspace>/...)
  pgrep -f "bloom_peft (train|resume|export).*$WORKSPACE|run-supervisor.js .*$WORKSPACE" || true
}
