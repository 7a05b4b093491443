#!/usr/bin/env bash
# The test command: installs what is missing, type-checks, then runs every
# test (unit, integration against real Nix and storage servers, end to end
# with real clients) in one run of Node's test runner.
#
# A failing run ends fast: every test has a timeout (TEST_TIMEOUT_MS, 180 s
# by default: the slowest, the Docker daemon's, takes under a minute), every
# process a test starts is stopped in an after hook (test/support/cleanup.ts),
# and --test-force-exit ends a test file whose tests are done even if a
# forgotten handle would keep it alive.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
# Nix is offline here: without this every Nix command spends 5 s trying cache.nixos.org.
# The origin adds its own settings (origin/nix/settings.ts) in front of these.
export NIX_CONFIG="${NIX_CONFIG:-substituters =}"
tsc -p .
if [ -f edge/tsconfig.json ]; then tsc -p edge; fi
# The preload makes each test file's report reach the runner whole despite
# --test-force-exit (test/support/blocking-report.ts).
runner=(node --import ./test/support/blocking-report.ts --test --test-concurrency=2 --test-timeout="${TEST_TIMEOUT_MS:-180000}" --test-force-exit)
if [ $# -gt 0 ]; then
  exec "${runner[@]}" "$@"
fi
exec "${runner[@]}" 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts' 'test/e2e/**/*.test.ts'
