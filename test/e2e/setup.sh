#!/usr/bin/env bash
# Installs the end-to-end harness, offline apart from the npm registry and Debian apt, and reuses it when present:
#   - Debian packages (only the missing ones): compilers + headers for code-server's native modules, ripgrep, chromium, fonts-noto-cjk (Chinese in the screenshots)
#   - a real VS Code: code-server $CS_VERSION (= VS Code 1.100.3) from the npm registry, unpacked with install scripts
#     off and its native modules compiled here against /usr/include/node (its own postinstall would download from GitHub)
# The install goes to a temp folder that is renamed into place last, so an existing entry.js means a complete install.
# usage: test/e2e/setup.sh        env: BLOOM_PEFT_E2E_HOME (default ~/.cache/bloom-peft-e2e), CS_VERSION
set -euo pipefail
E2E_HOME=${BLOOM_PEFT_E2E_HOME:-$HOME/.cache/bloom-peft-e2e}
CS_VERSION=${CS_VERSION:-4.100.3}
CS_DIR=$E2E_HOME/code-server-$CS_VERSION
t() { local s=$(date +%s); "$@"; echo "[e2e setup] $(( $(date +%s) - s ))s: ${*:1:4}" >&2; }
mkdir -p "$E2E_HOME"

# 1. Debian packages, only when one is missing
PKGS=(build-essential python3 pkg-config libkrb5-dev libsecret-1-dev libx11-dev libxkbfile-dev ripgrep chromium curl fonts-noto-cjk)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  echo "[e2e setup] apt-get install ${missing[*]}" >&2
  t $SUDO apt-get update -qq
  t $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. code-server, only when its entry.js is missing
if [ -f "$CS_DIR/out/node/entry.js" ]; then
  echo "[e2e setup] code-server $CS_VERSION already installed in $CS_DIR" >&2
  exit 0
fi
TMP=$(mktemp -d "$E2E_HOME/.install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
NEW=$TMP/cs
mkdir -p "$NEW"
t bash -c "cd '$TMP' && npm pack --silent code-server@$CS_VERSION >/dev/null"
tar xzf "$TMP/code-server-$CS_VERSION.tgz" -C "$NEW" --strip-components=1

# JS dependencies from the shipped npm-shrinkwrap.json files, install scripts off
for d in "$NEW" "$NEW/lib/vscode" "$NEW/lib/vscode/extensions"; do
  t bash -c "cd '$d' && npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error"
done

# native modules from source with npm's bundled node-gyp; headers from /usr/include/node (nothing downloaded)
export npm_config_nodedir=/usr
export npm_config_node_gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
build() { # dir, command...: keep the output quiet unless the build fails
  local dir=$1; shift
  if ! (cd "$dir" && "$@") >"$TMP/build.log" 2>&1; then cat "$TMP/build.log" >&2; echo "[e2e setup] build failed in $dir" >&2; exit 1; fi
}
t build "$NEW/node_modules/argon2" node ../@mapbox/node-pre-gyp/bin/node-pre-gyp install --build-from-source
for m in @vscode/spdlog kerberos native-watchdog node-pty @vscode/deviceid; do
  t build "$NEW/lib/vscode/node_modules/$m" node "$npm_config_node_gyp" rebuild --nodedir=/usr -j "$(nproc)"
done
# @parcel/watcher's binary comes from the registry package @parcel/watcher-linux-x64-glibc: nothing to build

# what code-server's postinstall.sh does, minus downloads: Debian's rg instead of @vscode/ripgrep's GitHub download
mkdir -p "$NEW/lib/vscode/node_modules/@vscode/ripgrep/bin"
cp "$(command -v rg)" "$NEW/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"
ln -sfn node_modules "$NEW/lib/vscode/node_modules.asar"
(cd "$NEW/lib/vscode/bin/remote-cli" && ln -sfn code-linux.sh code-server)
(cd "$NEW/lib/vscode/bin/helpers" && ln -sfn browser-linux.sh browser.sh)
(cd "$NEW/lib/vscode/extensions" && node ./postinstall.mjs >/dev/null)

# smoke check: every native module loads and the server answers --version
(cd "$NEW" && node -e "require('argon2')")
(cd "$NEW/lib/vscode" && node -e "for (const m of ['@vscode/spdlog','kerberos','native-watchdog','node-pty','@parcel/watcher']) require(m)")
XDG_DATA_HOME=$TMP/xdg XDG_CONFIG_HOME=$TMP/xdg node "$NEW/out/node/entry.js" --version 2>/dev/null | head -1 >&2

rm -rf "$CS_DIR"
mv "$NEW" "$CS_DIR"
echo "[e2e setup] code-server $CS_VERSION installed in $CS_DIR ($(du -sh "$CS_DIR" | cut -f1))" >&2
