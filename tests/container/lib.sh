# Shared by tests/container/*.sh and deploy/lb/*.sh: a Docker engine that builds with BuildKit, and the
# stand-in base images used where no image registry can be reached.
# shellcheck shell=bash

# A docker CLI that builds with BuildKit. Docker CLI 23+ needs the buildx plugin for that; Debian 12's
# CLI (docker.io 20.10, /usr/bin/docker) has BuildKit built in (DOCKER_BUILDKIT=1). The legacy builder
# would build every stage, including the cuda one, whose base cannot be had here.
pick_docker() {
  if [ -n "${DOCKER:-}" ]; then return; fi
  if docker buildx version >/dev/null 2>&1; then DOCKER=docker; return; fi
  local v
  for cli in /usr/bin/docker "$(command -v docker || true)"; do
    [ -x "$cli" ] || continue
    v=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null || true)
    case "$v" in 1[89].*|20.*) DOCKER=$cli; return ;; esac
  done
  echo "no docker CLI that builds with BuildKit (need buildx, or Debian's docker.io 20.10 CLI)" >&2
  return 1
}

# Starts dockerd (Debian's docker.io) when no engine answers: no iptables, no bridge, so containers
# use --network host. Leaves an engine that was already running alone.
ensure_dockerd() {
  pick_docker
  if "$DOCKER" info >/dev/null 2>&1; then return; fi
  command -v dockerd >/dev/null || { echo "dockerd not installed (apt-get install docker.io)" >&2; return 1; }
  echo "== starting dockerd (--iptables=false --bridge=none), log: /var/log/dockerd-rinserve.log"
  nohup dockerd --iptables=false --bridge=none >/var/log/dockerd-rinserve.log 2>&1 &
  for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && return; sleep 1; done
  echo "dockerd did not start:" >&2; tail -20 /var/log/dockerd-rinserve.log >&2; return 1
}

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# Prints one line per step, with the seconds it took.
step() { local t=$SECONDS; echo "== $1"; shift; "$@"; echo "   ($((SECONDS - t)) s)"; }
