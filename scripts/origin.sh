#!/usr/bin/env bash
# Starts the origin alone. With no package source configured it builds from
# the bundled package set, and Nix stays offline unless NIX_CONFIG says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
nix_config="substituters ="
if [ -z "${NIXERY_PKGS_PATH:-}${NIXERY_PKGS_REPO:-}${NIXERY_CHANNEL:-}" ]; then
  export NIXERY_PKGS_PATH="$PWD/bundled-pkgs"
  # The bundled set builds its aarch64-linux packages with x86 tools
  # (bundled-pkgs/README.md), so arm64/ images build here. Not a default
  # for other package sets: real aarch64 builders need qemu or a remote builder.
  nix_config="$nix_config
extra-platforms = aarch64-linux"
fi
export NIX_CONFIG="${NIX_CONFIG:-$nix_config}"
exec node_modules/.bin/node origin/main.ts
