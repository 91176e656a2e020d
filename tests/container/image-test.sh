#!/usr/bin/env bash
# The container test (run by ./test.sh): builds the image for real and runs it.
#   1. stand-in base images where no registry is reachable (tests/container/standins.sh; cached once built)
#   2. `docker build --target cpu` from the repo's Dockerfile as it is (BuildKit: only the cpu target's stages),
#      and `--target build-cuda` (the cuda target's restore and publish; its nvidia/cuda base is not available)
#   3. checks the image: runs as the non-root UID 1654 with read-only app files; the shipped models are
#      inside, byte for byte; the image's own HEALTHCHECK turns the container healthy (and fails when it
#      asks a port nothing listens on); /healthz/ready answers 200; POST /generate answers a PNG of the
#      requested size; the tag is the one the rendered k8s cpu-only overlay runs.
# Needs root, docker.io (dockerd is started when none runs), debootstrap, the .NET 10 SDK, kubectl.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
. tests/container/lib.sh
ensure_dockerd
export DOCKER_BUILDKIT=1

IMAGE=${IMAGE:-rinserve:cpu}
PORT=${PORT:-18080}
name=rinserve-image-test-$$
failures=0
ok()   { echo "   ok   $*"; }
bad()  { echo "   FAIL $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
cleanup() { "$DOCKER" rm -f "$name" >/dev/null 2>&1 || true; rm -f /tmp/$name.*; }
trap cleanup EXIT

tests/container/standins.sh >/tmp/rinserve-standins.log 2>&1 || { cat /tmp/rinserve-standins.log; exit 1; }
sed -n 's/^== /== stand-in: /p' /tmp/rinserve-standins.log

# Builds a target; removes the image the tag named before, when the build replaced it (no pile of old images).
build() {
  local target=$1 tag=$2 old t=$SECONDS
  old=$("$DOCKER" image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)
  echo "== $DOCKER build --network host --target $target -t $tag .   (BuildKit)"
  if ! "$DOCKER" build --progress=plain --network host --target "$target" -t "$tag" . >/tmp/$name.build 2>&1; then
    tail -40 /tmp/$name.build; exit 1
  fi
  grep -E '^#[0-9]+ \[' /tmp/$name.build | sed 's/^#[0-9]* /   /' | grep -v internal | sort -V -u || true
  echo "   built in $((SECONDS - t)) s: $("$DOCKER" image inspect -f '{{.Id}} {{.Size}} bytes' "$tag")"
  if [ -n "$old" ] && [ "$old" != "$("$DOCKER" image inspect -f '{{.Id}}' "$tag")" ]; then "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; fi
}

# The cuda target's build stages (restore and publish with the GPU ONNX Runtime). The cuda stage itself
# is not built: its base, nvidia/cuda, cannot be had without a registry.
build build-cuda rinserve-build-cuda:test
check "the build ran only build-base and build-cuda stages" bash -c "! grep -E '^#[0-9]+ \[' /tmp/$name.build | grep -v internal | grep -qvE '\[(build-base|build-cuda) '"
check "the GPU publish holds the CUDA execution provider (libonnxruntime_providers_cuda.so)" \
  "$DOCKER" run --rm --network host --entrypoint test rinserve-build-cuda:test -f /app/publish/libonnxruntime_providers_cuda.so

build cpu "$IMAGE"
# Only the cpu target's stages: the cuda stage (whose base is not here) must not have been built.
check "the build ran no stage of the cuda target" bash -c "! grep -qE '\[(cuda|build-cuda) ' /tmp/$name.build"

echo "== image configuration"
user=$("$DOCKER" image inspect -f '{{.Config.User}}' "$IMAGE")
check "Config.User is 1654 (got '$user')" test "$user" = 1654
check "the process runs as uid 1654 / gid 1654, not root" \
  test "$("$DOCKER" run --rm --network host --entrypoint id "$IMAGE" -u):$("$DOCKER" run --rm --network host --entrypoint id "$IMAGE" -g)" = 1654:1654
check "the app files are root-owned and not writable by the app user" \
  "$DOCKER" run --rm --network host --entrypoint sh "$IMAGE" -c \
  'test "$(stat -c %U /app/RinServe.WebApi.dll)" = root && ! test -w /app/RinServe.WebApi.dll && ! test -w /app/models && ! touch /app/x 2>/dev/null'
hc=$("$DOCKER" image inspect -f '{{json .Config.Healthcheck.Test}}' "$IMAGE")
check "HEALTHCHECK asks /healthz/live on \$ASPNETCORE_HTTP_PORTS ($hc)" grep -q 'localhost:${ASPNETCORE_HTTP_PORTS}/healthz/live' <<<"$hc"

echo "== models inside the image"
(cd models && sha256sum -- *.onnx) | sort >/tmp/$name.repo-models
"$DOCKER" run --rm --network host --entrypoint sh "$IMAGE" -c 'cd /app/models && sha256sum -- *.onnx' | sort >/tmp/$name.image-models
sed 's/^/   /' /tmp/$name.image-models
check "/app/models holds the repo's models/*.onnx, byte for byte ($(wc -l </tmp/$name.repo-models) files)" \
  cmp -s /tmp/$name.repo-models /tmp/$name.image-models

echo "== run: role all, port $PORT, the image's HEALTHCHECK command on a 2 s interval"
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then echo "port $PORT is in use: PORT=... tests/container/image-test.sh" >&2; exit 1; fi
t=$SECONDS
"$DOCKER" run -d --name "$name" --network host -e ASPNETCORE_HTTP_PORTS="$PORT" -e Onnx__IntraOpThreads=1 \
  --health-interval 2s --health-start-period 120s "$IMAGE" >/dev/null
status=starting
for _ in $(seq 120); do
  status=$("$DOCKER" inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || echo gone)
  [ "$status" = starting ] || break
  sleep 1
done
echo "   health: $status after $((SECONDS - t)) s; exit codes of its checks so far: $("$DOCKER" inspect -f '{{range .State.Health.Log}}{{.ExitCode}} {{end}}' "$name" 2>/dev/null)"
check "HEALTHCHECK reports healthy" test "$status" = healthy
if [ "$status" != healthy ]; then "$DOCKER" logs --tail 40 "$name" 2>&1; fi
check "the HEALTHCHECK command fails when nothing listens on its port" \
  bash -c "! '$DOCKER' exec -e ASPNETCORE_HTTP_PORTS=1 '$name' sh -c 'curl -fsS \"http://localhost:\${ASPNETCORE_HTTP_PORTS}/healthz/live\"' 2>/dev/null"
ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz/ready")
check "GET /healthz/ready answers 200 (got $ready)" test "$ready" = 200

echo "== POST /generate"
for res in 64 512; do
  code=$(curl -s -D /tmp/$name.h -o /tmp/$name.png -w '%{http_code}' -X POST -H 'Prefer: wait=120' \
    "http://127.0.0.1:$PORT/generate?class=7&res=$res&steps=10&seed=1")
  ctype=$(tr -d '\r' </tmp/$name.h | awk -F': ' 'tolower($1) == "content-type" {print $2}')
  size=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print(*struct.unpack(">II", d[16:24]) if d[:8]==b"\x89PNG\r\n\x1a\n" else ("not-a-png",))' /tmp/$name.png)
  echo "   res=$res: HTTP $code, $ctype, $(stat -c %s /tmp/$name.png) bytes, PNG ${size/ /x}"
  check "res=$res answers 200 image/png with a ${res}x${res} PNG" test "$code $ctype $size" = "200 image/png $res $res"
done

echo "== the image is the one the rendered k8s cpu-only overlay runs"
images=$(kubectl kustomize k8s/overlays/cpu-only | awk '$1 == "image:" && $2 ~ /^rinserve/ {print $2}' | sort -u)
check "kubectl kustomize k8s/overlays/cpu-only runs only $IMAGE (got: $(echo $images))" test "$images" = rinserve:cpu

"$DOCKER" stop -t 30 "$name" >/dev/null
code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' "$name")
check "SIGTERM stops the app cleanly (exit code $code)" test "$code" = 0

if ((failures)); then echo "== container test: $failures check(s) failed"; exit 1; fi
echo "== container test: all checks passed ($SECONDS s)"
