#!/usr/bin/env bash
# Runs every RinServe test. Installs what the tests need first (Debian 12 packages:
# redis-server for the queue tests, Debian's PyTorch/ONNX for the trainer's tests,
# Debian's chromium for the playground's browser tests, Debian's docker.io and debootstrap for the
# container test).
set -euo pipefail
cd "$(dirname "$0")"

packages=(redis-server python3-torch python3-onnx python3-numpy python3-tqdm python3-pytest python3-pil
          libopenblas0 dataset-fashion-mnist python3-fonttools fonts-dejavu-core chromium docker.io debootstrap)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Redocly CLI for the OpenAPI lint (tests/RinServe.WebApi.Tests/OpenApiLintTests.cs), from npm into .tools/ (ignored):
# 2.77.0 where Node is 20 or newer, else 1.34.20, the last 1.x that installs (Debian 12's own nodejs is 18).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing nodejs npm"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends nodejs npm
fi
redocly_version=1.34.20; [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] && redocly_version=2.77.0
if [ "$(cat .tools/redocly/version 2>/dev/null)" != "$redocly_version" ]; then
  echo "== installing @redocly/cli@$redocly_version (npm) into .tools/redocly"
  rm -rf .tools/redocly && mkdir -p .tools/redocly
  npm install --prefix .tools/redocly --no-audit --no-fund --loglevel=error "@redocly/cli@$redocly_version" >/dev/null
  echo "$redocly_version" > .tools/redocly/version
fi

# Debian's OpenMP threads spin and fight over the cores without this.
export OMP_WAIT_POLICY=PASSIVE DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

echo "== trainer tests (pytest)"
/usr/bin/python3 -m pytest -q -p no:cacheprovider training/tests

echo "== .NET tests"
dotnet test WebApi.sln -c Release --nologo

# Builds the cpu image from the Dockerfile and runs it, alone and as the load-balanced deployment of
# deploy/lb (starts dockerd if none runs; stand-in base images where no registry is reachable). RINSERVE_SKIP_CONTAINER_TEST=1 skips it, and says so.
if [ "${RINSERVE_SKIP_CONTAINER_TEST:-0}" = 1 ]; then
  echo "== container test SKIPPED (RINSERVE_SKIP_CONTAINER_TEST=1)"
else
  echo "== container test (tests/container/image-test.sh)"
  tests/container/image-test.sh
  echo "== load-balancer test (tests/container/lb-test.sh)"
  tests/container/lb-test.sh
fi
