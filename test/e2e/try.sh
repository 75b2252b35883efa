#!/usr/bin/env bash
# Try the extension in a real VS Code in your browser: the same code-server the end-to-end tests use, with the
# freshly packaged extension and a demo workspace (sample datasets, a scratch file). `npm run try`, then open the
# printed URL. Runs and settings are kept between sessions under $BLOOM_PEFT_E2E_HOME/try; Ctrl-C stops it.
# env: PORT (default 8080; listens on 127.0.0.1 only), BLOOM_PEFT_E2E_HOME, E2E_VSIX (skip packaging)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
cd "$REPO"
STATE=$E2E_HOME/try
WORKSPACE=$STATE/workspace
PORT=${PORT:-8080}

bash scripts/setup.sh                  # node modules, the trainer's .venv, bundles
bash "$HERE/setup.sh"                  # code-server, chromium/ripgrep (installed once, reused)
VSIX=${E2E_VSIX:-}
if [ -z "$VSIX" ]; then
  npm run --silent package
  VSIX=$REPO/dist/bloom-peft-studio.vsix
fi
e2e_prepare_state
e2e_install_vsix "$VSIX"
e2e_fill_workspace

trap 'e2e_stop' EXIT
trap 'exit 130' INT TERM
e2e_start
cat >&2 <<EOF

  Bloom PEFT Studio in VS Code: http://127.0.0.1:$PORT/?folder=$WORKSPACE

  Click the Bloom PEFT icon in the activity bar: the embedded model is selected; choose data/code-tasks/train.jsonl
  as the training file, set "Train for" to 200 optimizer steps, Start. When it finishes, accept "Use for
  Completions", open notes.txt and type two lines, e.g. "Convert to snake_case" then "Reset User": the tuned
  answer appears as ghost text (Tab accepts). Ctrl-C here stops VS Code (and any training it runs).

EOF
# wait for code-server (Ctrl-C ends this script; the EXIT trap stops the server and its process group)
while kill -0 "$(cat "$STATE/server.pid" 2>/dev/null)" 2>/dev/null; do sleep 1; done
e2e_log "code-server exited; its log: $STATE/server.log"
