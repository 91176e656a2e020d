#!/usr/bin/env bash
# The load-balancer test (run by ./test.sh after image-test.sh, which builds rinserve:cpu): starts the
# deployment users start from (deploy/lb/rinserve-lb.sh: HAProxy, two API and two worker containers, Redis
# with AOF on a volume) under its own names and ports, runs bench/lb_faults.py (spread over both APIs,
# an API killed mid-load, a worker killed mid-batch, Redis restarted) and removes it all again.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
. tests/container/lib.sh
ensure_dockerd
export DOCKER PROJECT=rinserve-ci LB_PORT=18088 LB_TLS_PORT=18443 API1_PORT=18181 API2_PORT=18182 WORKER1_PORT=18191 \
       WORKER2_PORT=18192 REDIS_PORT=16479 STATS_PORT=18504 IMAGE=${IMAGE:-rinserve:cpu}
STATE_DIR=$(mktemp -d /tmp/rinserve-ci-lb.XXXXXX); export STATE_DIR
cleanup() {
  deploy/lb/rinserve-lb.sh purge || true
  rm -rf "$STATE_DIR"
}
trap cleanup EXIT
for image in "$IMAGE" redis:7.4 haproxy:2.6; do
  have_image "$image" || { echo "no image $image: run tests/container/image-test.sh first (it builds them)" >&2; exit 1; }
done
t=$SECONDS
deploy/lb/rinserve-lb.sh up
echo "   (up in $((SECONDS - t)) s)"
python3 bench/lb_faults.py --lb "https://127.0.0.1:$LB_TLS_PORT" --ca "$STATE_DIR/lb.crt" --plain "http://127.0.0.1:$LB_PORT"
