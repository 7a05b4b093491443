#!/usr/bin/env bash
# `npm run test:fresh`: the README's promise, proved on the machine at hand
# as close to a fresh one as it can be made without a new machine:
#   1. a clean clone of the committed HEAD in a temporary directory (no
#      node_modules, no var/, nothing uncommitted);
#   2. Nix sees no configuration: NIX_CONF_DIR and NIX_USER_CONF_FILES point
#      into an empty directory, so /etc/nix/nix.conf and ~/.config/nix are
#      hidden for this run only, and NIX_CONFIG is unset;
#   3. `npm test` in the clone;
#   4. `npm start` in the clone, then skopeo pulls shell/hello through the
#      edge, umoci unpacks it and its programs run in a chroot.
# What it cannot hide: packages installed on this machine (apt) and the Nix
# store's contents. A fresh machine installs the first through
# scripts/setup.sh and starts with an empty store, which only makes builds
# slower, never different.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/nixery-edge-fresh.XXXXXX")"
stack_pid=""

cleanup() {
  status=$?
  if [ -n "$stack_pid" ]; then
    # npm start runs in its own process group: stop the origin and the edge with it.
    kill -TERM -- "-$stack_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 -- "-$stack_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$stack_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

say() { echo "test:fresh: $*" >&2; }

if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  say "note: the working tree has uncommitted changes; this proves the committed HEAD only"
fi
git clone --quiet --no-hardlinks "$repo" "$work/repo"
cd "$work/repo"

mkdir -p "$work/no-nix-conf"
export NIX_CONF_DIR="$work/no-nix-conf"
export NIX_USER_CONF_FILES="$work/no-nix-conf/nix.conf"
unset NIX_CONFIG
if getent group nixbld >/dev/null 2>&1; then
  say "note: this machine has a nixbld group, which a fresh one lacks"
fi
say "clean clone of $(git rev-parse --short HEAD) in $work/repo; Nix sees no nix.conf"

say "npm test"
npm test

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
origin_port="$(free_port)"
edge_port="$(free_port)"
say "npm start (origin on $origin_port, edge on $edge_port)"
PORT="$origin_port" EDGE_PORT="$edge_port" setsid npm start >"$work/start.log" 2>&1 &
stack_pid=$!

ready=""
for _ in $(seq 1 300); do
  if node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "http://127.0.0.1:$edge_port/v2/"; then ready=yes; break; fi
  kill -0 "$stack_pid" 2>/dev/null || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  say "the stack did not come up; its output:"
  cat "$work/start.log" >&2
  exit 1
fi

say "skopeo pulls shell/hello through the edge"
skopeo copy --quiet --src-tls-verify=false "docker://127.0.0.1:$edge_port/shell/hello:latest" "oci:$work/image:latest" \
  || { cat "$work/start.log" >&2; exit 1; }
umoci unpack --image "$work/image:latest" "$work/bundle" >/dev/null
greeting="$(chroot "$work/bundle/rootfs" /bin/hello)"
answer="$(chroot "$work/bundle/rootfs" /bin/bash -c 'echo $((6 * 7))')"
if [ "$greeting" != "Hello, world!" ] || [ "$answer" != "42" ]; then
  say "the pulled image did not run: hello said '$greeting', bash said '$answer'"
  exit 1
fi
say "ok: npm test passed, and npm start served shell/hello through the edge, which ran in a chroot"
