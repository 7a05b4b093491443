#!/usr/bin/env bash
# Makes this machine build and run arm64 images of the bundled package set,
# where the machine allows it:
#   - qemu-user-static, registered with the kernel's binfmt_misc with flag F
#     (the kernel opens the emulator at registration, so an arm64 program runs
#     in a chroot that holds no qemu), so arm64 programs run here;
#   - Debian's arm64 packages that bundled-pkgs builds its
#     aarch64-linux packages from, extracted into the tree its arm64.nix names.
# Nix itself also needs `extra-platforms = aarch64-linux` to build them; that
# is the origin's setting (its NIX_CONFIG), not this machine's.
# Idempotent and quiet: prints one line saying what it did, or why it could not.
set -euo pipefail

# arm64.nix is a single Nix string: the absolute path of the tree.
DEBIAN_ARM64_ROOT=$(sed -n 's|^"\(/[^"]*\)"$|\1|p' "$(dirname "$0")/../bundled-pkgs/arm64.nix")
if [ -z "$DEBIAN_ARM64_ROOT" ]; then
  echo "setup-arm64: could not read the tree's path from bundled-pkgs/arm64.nix" >&2
  exit 0
fi
# What the arm64 set is made from (bundled-pkgs/README.md); the
# fixture's coreutils is busybox, as on amd64.
ARM64_PACKAGES=(libc6 libtinfo6 libncursesw6 bash busybox-static hello nano)

did=()
failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

finish() {
  local line done_ could_not
  done_=$(IFS=,; echo "${did[*]:-}" | sed 's/,/, /g')
  could_not=$(IFS=';'; echo "${failed[*]:-}" | sed 's/;/; /g')
  if [ -z "$could_not" ]; then line=${done_:-"nothing to do, arm64 is ready"}
  else line="${done_:+$done_; }arm64 is not ready, could not: $could_not"; fi
  echo "setup-arm64: $line" >&2
  exit 0
}

# The last line of what a failed command printed, as the reason.
reason() { tail -n 1 "$log" | tr -d '\r'; }

# Each step runs only when needed; without root (or password-less sudo) a
# needed step is reported, not attempted.
SUDO=""
privileged=1
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else privileged=""; fi
fi
may() {
  [ -n "$privileged" ] && return 0
  failed+=("$1 (needs root or password-less sudo)")
  return 1
}
APT=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300)
updated=""
apt_update() {
  [ -n "$updated" ] && return 0
  "${APT[@]}" update >"$log" 2>&1 && updated=1
}

# 1. The emulator.
if ! dpkg-query -W -f='${Status}' qemu-user-static 2>/dev/null | grep -q "install ok installed"; then
  if may "install qemu-user-static"; then
    if apt_update && "${APT[@]}" install -y --no-install-recommends qemu-user-static >"$log" 2>&1; then
      did+=("installed qemu-user-static")
    else
      failed+=("install qemu-user-static ($(reason))")
    fi
  fi
fi

# 2. The kernel's binfmt_misc, and qemu-aarch64 registered in it.
BINFMT=/proc/sys/fs/binfmt_misc
CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
if [ ! -e "$BINFMT/register" ] && may "mount binfmt_misc"; then
  if $SUDO mount -t binfmt_misc binfmt_misc "$BINFMT" >"$log" 2>&1; then
    did+=("mounted binfmt_misc")
  else
    failed+=("mount binfmt_misc ($(reason))")
  fi
fi
if [ -e "$BINFMT/register" ] && [ ! -e "$BINFMT/qemu-aarch64" ]; then
  if [ ! -f "$CONF" ]; then
    failed+=("register qemu-aarch64 ($CONF is missing)")
  elif may "register qemu-aarch64"; then
    if grep -v '^#' "$CONF" | $SUDO tee "$BINFMT/register" >/dev/null 2>"$log"; then
      did+=("registered qemu-aarch64")
    else
      failed+=("register qemu-aarch64 ($(reason))")
    fi
  fi
fi
if [ -e "$BINFMT/qemu-aarch64" ]; then
  if ! grep -qx enabled "$BINFMT/qemu-aarch64" && may "enable qemu-aarch64"; then
    if echo 1 | $SUDO tee "$BINFMT/qemu-aarch64" >/dev/null 2>"$log"; then did+=("enabled qemu-aarch64"); else failed+=("enable qemu-aarch64 ($(reason))"); fi
  fi
  grep -q '^flags:.*F' "$BINFMT/qemu-aarch64" || failed+=("run arm64 programs in a chroot (qemu-aarch64 is registered without flag F)")
fi

# 3. Debian's arm64 packages, extracted into a private tree: installing them
# would replace the host's amd64 programs (hello:arm64 and hello:amd64 both
# own /usr/bin/hello). The tree is merged-/usr like the host, built beside
# the old one and renamed into place, so Nix never sees half of it.
if ! dpkg --print-foreign-architectures | grep -qx arm64 && may "add arm64 to dpkg"; then
  if $SUDO dpkg --add-architecture arm64 >"$log" 2>&1; then
    did+=("added arm64 to dpkg")
    updated=""
  else
    failed+=("add arm64 to dpkg ($(reason))")
  fi
fi

# Prints the failure's reason and returns non-zero on the first failure.
extract_tree() {
  local work=$1 p deb dir
  # Package lists already fetched are usually enough; update only if not.
  if ! (cd "$work" && "${APT[@]}" download "${ARM64_PACKAGES[@]/%/:arm64}") >"$log" 2>&1 &&
    ! { apt_update && (cd "$work" && "${APT[@]}" download "${ARM64_PACKAGES[@]/%/:arm64}"); } >"$log" 2>&1; then
    echo "download the arm64 packages ($(reason))"; return 1
  fi
  $SUDO mkdir -p "$work/root/usr/bin" "$work/root/usr/sbin" "$work/root/usr/lib"
  for dir in bin sbin lib; do $SUDO ln -s "usr/$dir" "$work/root/$dir"; done
  for p in "${ARM64_PACKAGES[@]}"; do
    deb=$(ls "$work/${p}_"*_arm64.deb 2>/dev/null | head -n 1)
    if [ -z "$deb" ] || ! { dpkg-deb --fsys-tarfile "$deb" | $SUDO tar -x --keep-directory-symlink -C "$work/root"; } >"$log" 2>&1; then
      echo "extract $p:arm64 ($(reason))"; return 1
    fi
    printf '%s=%s\n' "$p" "$(dpkg-deb -f "$deb" Version)" | $SUDO tee -a "$work/root/.packages" >/dev/null
  done
  if [ -e "$DEBIAN_ARM64_ROOT" ]; then $SUDO mv "$DEBIAN_ARM64_ROOT" "$work/old"; fi
  $SUDO mv "$work/root" "$DEBIAN_ARM64_ROOT"
}

STAMP="$DEBIAN_ARM64_ROOT/.packages"
if [ "$(cut -d= -f1 "$STAMP" 2>/dev/null | tr '\n' ' ')" != "${ARM64_PACKAGES[*]} " ] && may "extract Debian's arm64 packages"; then
  parent=$(dirname "$DEBIAN_ARM64_ROOT")
  if ! $SUDO mkdir -p "$parent" 2>"$log" || ! work=$($SUDO mktemp -d "$parent/.debian-arm64.XXXXXX" 2>"$log"); then
    failed+=("create $parent ($(reason))")
  else
    # apt-get download drops root for _apt, which must be able to write here.
    if id -u _apt >/dev/null 2>&1; then $SUDO chown _apt "$work"; fi
    if problem=$(extract_tree "$work"); then
      did+=("extracted ${#ARM64_PACKAGES[@]} arm64 packages into $DEBIAN_ARM64_ROOT")
    else
      failed+=("$problem")
    fi
    $SUDO rm -rf "$work"
  fi
fi

finish
