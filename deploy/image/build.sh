#!/usr/bin/env bash
# Builds the origin's image with the Docker daemon at DOCKER_HOST (or the
# default one).
#
#   deploy/image/build.sh [TAG]              # default TAG: nixery-edge/origin:dev
#
# BUILD_CA_CERTS names a PEM file of certificates npm should trust while the
# image is built, behind a TLS-intercepting proxy (a few certificates: it
# travels as a build argument, at most 128 KiB). By default these are the
# certificates this machine's administrator added to
# /usr/local/share/ca-certificates, if any. They stay out of the final image.
#
# BASE_IMAGE picks the Debian base (default debian:bookworm-slim). Where that
# cannot be pulled (no registry but Debian's and npm's reachable) and is not
# already present, the base is made here: debootstrap (root, Debian's
# debootstrap package) writes a minimal bookworm and `docker import` turns it
# into nixery-edge/debian-base:bookworm, which is then used.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
tag="${1:-nixery-edge/origin:dev}"
base="${BASE_IMAGE:-debian:bookworm-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if ! docker image inspect "$base" > /dev/null 2>&1 && ! docker pull "$base" > /dev/null 2>&1; then
  if [[ -n "${BASE_IMAGE:-}" ]]; then
    echo "base image $base is neither present nor pullable" >&2
    exit 1
  fi
  base="nixery-edge/debian-base:bookworm"
  if ! docker image inspect "$base" > /dev/null 2>&1; then
    command -v debootstrap > /dev/null || { echo "cannot pull debian:bookworm-slim and debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    echo "making $base with debootstrap (about a minute)" >&2
    rootfs="$(mktemp -d)"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
      || { echo "debootstrap failed; see $rootfs.log" >&2; exit 1; }
    # What debian:bookworm-slim does too: no apt caches or docs in the layer.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    # mktemp made the directory 0700; it becomes the image's /, which every user must traverse.
    chmod 755 "$rootfs"
    tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$base" > /dev/null
    rm -f "$rootfs.log"
  fi
fi

# Only what the image needs goes into the build context (not node_modules,
# tests or the edge), straight from the work tree.
cd "$repo"
ca_pem=""
if [[ -n "${BUILD_CA_CERTS:-}" ]]; then
  ca_pem="$(cat "$BUILD_CA_CERTS")"
elif compgen -G '/usr/local/share/ca-certificates/*.crt' > /dev/null; then
  ca_pem="$(cat /usr/local/share/ca-certificates/*.crt)"
fi
tar -c package.json package-lock.json origin shared deploy/image/Dockerfile \
  | docker build --network host --build-arg "BASE_IMAGE=$base" --build-arg "BUILD_CA_PEM=$ca_pem" \
      -f deploy/image/Dockerfile -t "$tag" -
echo "built $tag (base $base)" >&2
