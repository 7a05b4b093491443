#!/usr/bin/env bash
# Starts (or stops) a private Docker daemon for building and trying the image
# on a machine without one running, such as a CI box: containerd and dockerd
# as root, under one state directory, with no networking features of their
# own (no bridge, no iptables). Containers then use --network host.
#
#   deploy/image/local-docker.sh start DIR   # prints DOCKER_HOST=unix://…
#   deploy/image/local-docker.sh stop DIR
#
# Needs Debian's docker.io and containerd packages (apt-get install docker.io containerd).
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

case "$cmd" in
  start)
    for tool in containerd dockerd docker; do
      command -v "$tool" > /dev/null || { echo "$tool not found: apt-get install docker.io containerd" >&2; exit 1; }
    done
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    cat > "$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$dir/containerd.sock"
TOML
    containerd --config "$dir/containerd.toml" > "$dir/containerd.log" 2>&1 &
    echo $! > "$dir/containerd.pid"
    for _ in $(seq 100); do [[ -S "$dir/containerd.sock" ]] && break; sleep 0.1; done
    dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
      --data-root "$dir/docker" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
      -H "unix://$dir/docker.sock" --containerd "$dir/containerd.sock" > "$dir/dockerd.log" 2>&1 &
    for _ in $(seq 300); do
      DOCKER_HOST="unix://$dir/docker.sock" docker version > /dev/null 2>&1 && { echo "DOCKER_HOST=unix://$dir/docker.sock"; exit 0; }
      sleep 0.1
    done
    echo "dockerd did not start; see $dir/dockerd.log" >&2
    exit 1
    ;;
  stop)
    for name in dockerd containerd; do
      if [[ -f "$dir/$name.pid" ]]; then
        pid="$(cat "$dir/$name.pid")"
        kill "$pid" 2> /dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
        rm -f "$dir/$name.pid"
      fi
    done
    # dockerd leaves its network namespace mounted; unmounted, DIR can be deleted.
    umount "$dir/exec/netns/default" 2> /dev/null || true
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
