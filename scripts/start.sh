#!/usr/bin/env bash
# The whole stack locally, with the embedded defaults: the origin on
# 127.0.0.1:${PORT:-8080} building from the bundled package set into
# filesystem storage under var/, and the Worker in workerd on
# 127.0.0.1:${EDGE_PORT:-8787} in front of it. Pull through the edge.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PORT="${PORT:-8080}" HOST="${HOST:-127.0.0.1}"
export ORIGIN_URL="${ORIGIN_URL:-http://127.0.0.1:$PORT}"
# One secret for this run, so the origin answers only the local edge.
export ORIGIN_SECRET="${ORIGIN_SECRET:-$(node -e 'process.stdout.write(require("crypto").randomBytes(24).toString("hex"))')}"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

bash scripts/origin.sh &
pids+=($!)
if [ -f scripts/edge.ts ]; then
  node_modules/.bin/node scripts/edge.ts &
  pids+=($!)
fi
echo "nixery-edge: origin on $ORIGIN_URL, edge on http://127.0.0.1:${EDGE_PORT:-8787}; try:" >&2
echo "  skopeo copy --src-tls-verify=false docker://127.0.0.1:${EDGE_PORT:-8787}/shell/hello:latest oci:hello:latest" >&2
wait -n "${pids[@]}"
