#!/usr/bin/env bash
# RinServe behind a load balancer on one Docker host, host network:
#
#   HAProxy  https :${LB_TLS_PORT:-8443} (plain :${LB_PORT:-8080} redirects to it)  -> api1 :${API1_PORT:-18081}, api2 :${API2_PORT:-18082}  (health check /healthz/ready)
#   workers  :${WORKER1_PORT:-18091}, :${WORKER2_PORT:-18092}  (/healthz, /metrics only)
#   Redis    :${REDIS_PORT:-16379}, AOF (appendfsync everysec) on the volume rinserve-redis-data, password
#
# All RinServe containers run one image (IMAGE, default rinserve:cpu: docker build --target cpu -t rinserve:cpu .).
#   deploy/lb/rinserve-lb.sh up        start (or re-create) everything, wait until the LB has both APIs up
#   deploy/lb/rinserve-lb.sh status    containers, health, HAProxy's view of the APIs
#   deploy/lb/rinserve-lb.sh down      remove the containers (the Redis volume and its jobs stay)
#   deploy/lb/rinserve-lb.sh purge     down, and delete the Redis volume and the saved password
# Settings (environment): PROJECT (name prefix, default rinserve) IMAGE REDIS_IMAGE HAPROXY_IMAGE LB_PORT API1_PORT API2_PORT WORKER1_PORT WORKER2_PORT
#   REDIS_PORT ONNX_THREADS (ONNX Runtime threads per container, default 1) STATE_DIR (password file, certificate)
#   LB_TLS_PORT LB_CERT (a PEM with your certificate chain and key; default: a self-signed one for localhost and
#   127.0.0.1, made once in STATE_DIR, whose certificate STATE_DIR/lb.crt clients trust).
# Why host networking: it works on any engine, including one run without a bridge or iptables
# (dockerd --iptables=false --bridge=none); every port binds to 127.0.0.1 except the LB's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DOCKER=${DOCKER:-docker}
IMAGE=${IMAGE:-rinserve:cpu}
REDIS_IMAGE=${REDIS_IMAGE:-redis:7.4}
HAPROXY_IMAGE=${HAPROXY_IMAGE:-haproxy:2.6}
LB_PORT=${LB_PORT:-8080}
LB_TLS_PORT=${LB_TLS_PORT:-8443}
API1_PORT=${API1_PORT:-18081}
API2_PORT=${API2_PORT:-18082}
WORKER1_PORT=${WORKER1_PORT:-18091}
WORKER2_PORT=${WORKER2_PORT:-18092}
REDIS_PORT=${REDIS_PORT:-16379}
STATS_PORT=${STATS_PORT:-18404}
ONNX_THREADS=${ONNX_THREADS:-1}
STATE_DIR=${STATE_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/rinserve-lb}
P=${PROJECT:-rinserve}   # prefix of the container and volume names

password() {
  mkdir -p "$STATE_DIR"
  if [ ! -s "$STATE_DIR/redis-password" ]; then
    (umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$STATE_DIR/redis-password")
  fi
  cat "$STATE_DIR/redis-password"
}

# The PEM HAProxy serves: LB_CERT, else a self-signed certificate made once (key and certificate in one file).
certificate() {
  if [ -n "${LB_CERT:-}" ]; then echo "$LB_CERT"; return; fi
  mkdir -p "$STATE_DIR"
  if [ ! -s "$STATE_DIR/lb.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=rinserve-lb" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$STATE_DIR/lb.key" -out "$STATE_DIR/lb.crt" 2>/dev/null
    cat "$STATE_DIR/lb.crt" "$STATE_DIR/lb.key" > "$STATE_DIR/lb.pem"
    rm -f "$STATE_DIR/lb.key"
    chmod 644 "$STATE_DIR/lb.pem"   # HAProxy reads it as its own user in the container
  fi
  echo "$STATE_DIR/lb.pem"
}

redis() {
  "$DOCKER" run -d --name $P-redis --network host --restart unless-stopped \
    -v $P-redis-data:/data -e REDISCLI_AUTH="$1" "$REDIS_IMAGE" \
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir /data \
      --appendonly yes --appendfsync everysec --maxmemory 1536mb --maxmemory-policy noeviction \
      --requirepass "$1" >/dev/null
}

# One RinServe container: name role port [extra docker run args]
app() {
  local name=$1 role=$2 port=$3 grace=$4; shift 4
  "$DOCKER" run -d --name "$P-$name" --network host --restart unless-stopped --stop-timeout "$grace" \
    -e RinServe__Role="$role" -e RinServe__Redis="127.0.0.1:$REDIS_PORT,password=$pw" \
    -e ASPNETCORE_HTTP_PORTS="$port" -e ASPNETCORE_URLS="http://127.0.0.1:$port" \
    -e Onnx__IntraOpThreads="$ONNX_THREADS" -e DOTNET_SHUTDOWNTIMEOUTSECONDS=$((grace - 10)) \
    "$@" "$IMAGE" >/dev/null
}

redis_ping() { "$DOCKER" exec $P-redis redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

lb() {
  "$DOCKER" run -d --name $P-lb --network host --restart unless-stopped \
    -v "$here/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" -v "$(certificate):/usr/local/etc/haproxy/tls/rinserve.pem:ro" \
    -e LB_BIND=":$LB_PORT" -e LB_TLS_BIND=":$LB_TLS_PORT" -e LB_TLS_PORT="$LB_TLS_PORT" -e STATS_BIND="127.0.0.1:$STATS_PORT" -e API1_PORT="$API1_PORT" -e API2_PORT="$API2_PORT" \
    "$HAPROXY_IMAGE" haproxy -f /usr/local/etc/haproxy/haproxy.cfg >/dev/null
}

# The LB's view of its servers: "api1 UP" lines, from HAProxy's stats CSV.
lb_servers() {
  curl -fsS "http://127.0.0.1:$STATS_PORT/;csv" 2>/dev/null | awk -F, '$1 == "api" && $2 != "BACKEND" {print $2, $18}'
}

lb_both_up() { [ "$(lb_servers | grep -c ' UP$')" = 2 ]; }

wait_until() { # seconds description command...
  local n=$1 what=$2; shift 2
  for _ in $(seq "$((n * 2))"); do "$@" && return 0; sleep 0.5; done
  echo "timed out after $n s waiting for: $what" >&2; return 1
}

down() {
  for c in lb api1 api2 worker1 worker2 redis; do "$DOCKER" rm -f "$P-$c" >/dev/null 2>&1 || true; done
}

case "${1:-}" in
  up)
    "$DOCKER" image inspect "$IMAGE" >/dev/null || { echo "no image $IMAGE: docker build --target cpu -t $IMAGE ." >&2; exit 1; }
    down
    pw=$(password)
    redis "$pw"
    wait_until 30 "redis answers PING" redis_ping
    # Workers: 300 s to finish a batch on SIGTERM (as k8s/base/worker.yaml); APIs: 45 s.
    app worker1 worker "$WORKER1_PORT" 300
    app worker2 worker "$WORKER2_PORT" 300
    # The APIs believe X-Forwarded-For from HAProxy only (host network: it connects from 127.0.0.1).
    app api1 api "$API1_PORT" 45 -e RinServe__TrustedProxies__0=127.0.0.1
    app api2 api "$API2_PORT" 45 -e RinServe__TrustedProxies__0=127.0.0.1
    lb
    for port in "$API1_PORT" "$API2_PORT" "$WORKER1_PORT" "$WORKER2_PORT"; do
      wait_until 120 "ready on :$port" curl -fs -o /dev/null "http://127.0.0.1:$port/healthz/ready"
    done
    wait_until 30 "HAProxy has api1 and api2 UP" lb_both_up
    echo "up: https://127.0.0.1:$LB_TLS_PORT (certificate: ${LB_CERT:-$STATE_DIR/lb.crt}; http://127.0.0.1:$LB_PORT redirects; HAProxy stats: http://127.0.0.1:$STATS_PORT/)"
    lb_servers | sed 's/^/  /'
    ;;
  status)
    "$DOCKER" ps -a --filter name=^/$P- --format '{{.Names}}\t{{.Status}}'
    lb_servers | sed 's/^/LB: /'
    ;;
  down) down ;;
  purge)
    down
    "$DOCKER" volume rm $P-redis-data >/dev/null 2>&1 || true
    rm -f "$STATE_DIR/redis-password" "$STATE_DIR/lb.pem" "$STATE_DIR/lb.crt"
    ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
