#!/usr/bin/env bash
# The test command: installs what is missing, type-checks, then runs every
# test (unit, integration against real Nix and storage servers, end to end
# with real clients) in one run of Node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
# Nix is offline here: without this every Nix command spends 5 s trying cache.nixos.org.
export NIX_CONFIG="${NIX_CONFIG:-substituters =}"
tsc -p .
if [ -f edge/tsconfig.json ]; then tsc -p edge; fi
if [ $# -gt 0 ]; then
  exec node --test --test-concurrency=2 "$@"
fi
exec node --test --test-concurrency=2 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts'
