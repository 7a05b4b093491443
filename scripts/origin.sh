#!/usr/bin/env bash
# Starts the origin alone. With no package source configured it builds from
# the bundled package set, and Nix stays offline unless NIX_CONFIG says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NIXERY_PKGS_PATH:-}${NIXERY_PKGS_REPO:-}${NIXERY_CHANNEL:-}" ]; then
  export NIXERY_PKGS_PATH="$PWD/test/fixtures/pkgs"
fi
export NIX_CONFIG="${NIX_CONFIG:-substituters =}"
exec node_modules/.bin/node origin/main.ts
