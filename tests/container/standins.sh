#!/usr/bin/env bash
# Builds stand-ins for the base images the Dockerfile and deploy/lb/rinserve-lb.sh use, for machines that
# reach no image registry (Docker Hub, MCR), and tags them with the official names:
#   rinserve-standin/debian:bookworm   debootstrap --variant=minbase bookworm, docker import
#   mcr.microsoft.com/dotnet/aspnet:10.0  Debian + this host's ASP.NET Core 10 runtime, user app (UID 1654), APP_UID
#   mcr.microsoft.com/dotnet/sdk:10.0     Debian + this host's .NET 10 SDK, the host's CA bundle
#   redis:7.4                            Debian + Debian's redis-server (7.0), entrypoint like the official image
#   haproxy:2.6                          Debian + Debian's haproxy 2.6
# An image already present is kept (so it also keeps real official images when they were pulled);
# STANDINS_REBUILD=1 rebuilds them. Needs root (debootstrap), debootstrap, the .NET 10 SDK in DOTNET_ROOT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
ensure_dockerd
export DOCKER_BUILDKIT=1

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOTNET_ROOT=${DOTNET_ROOT:-$(dirname "$(readlink -f "$(command -v dotnet)")")}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
DEBIAN_IMAGE=rinserve-standin/debian:bookworm
rebuild=${STANDINS_REBUILD:-0}
need() { [ "$rebuild" = 1 ] || ! have_image "$1"; }

work=$(mktemp -d /tmp/rinserve-standins.XXXXXX)
trap 'rm -rf "$work"' EXIT

if need "$DEBIAN_IMAGE"; then
  step "debootstrap --variant=minbase bookworm ($MIRROR) -> $DEBIAN_IMAGE" bash -c "
    debootstrap --variant=minbase bookworm '$work/root' '$MIRROR' >'$work/debootstrap.log' 2>&1 || { tail -30 '$work/debootstrap.log'; exit 1; }
    rm -rf '$work/root/var/cache/apt/archives/'*.deb '$work/root/var/lib/apt/lists/'*
    tar -C '$work/root' -c . | '$DOCKER' import -c 'CMD [\"bash\"]' - '$DEBIAN_IMAGE' >/dev/null"
fi

# The .NET parts come from this host; the build context holds only what each image needs.
dotnet_version=$("$DOTNET_ROOT/dotnet" --list-runtimes | awk '$1 == "Microsoft.AspNetCore.App" && $2 ~ /^10\./ {v=$2} END {print v}')
[ -n "$dotnet_version" ] || { echo "no ASP.NET Core 10 runtime in $DOTNET_ROOT" >&2; exit 1; }

# What the official runtime-deps images carry: CA certificates, ICU, OpenSSL, tzdata, zlib.
deps="ca-certificates libicu72 libssl3 tzdata zlib1g"

if need mcr.microsoft.com/dotnet/aspnet:10.0; then
  mkdir -p "$work/aspnet/dotnet/shared"
  cp -a "$DOTNET_ROOT/dotnet" "$DOTNET_ROOT/host" "$DOTNET_ROOT/LICENSE.txt" "$work/aspnet/dotnet/"
  cp -a "$DOTNET_ROOT/shared/Microsoft.NETCore.App" "$DOTNET_ROOT/shared/Microsoft.AspNetCore.App" "$work/aspnet/dotnet/shared/"
  cat >"$work/aspnet/Dockerfile" <<DOCKERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends $deps && rm -rf /var/lib/apt/lists/*
COPY dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
# As in the official image: user app, UID/GID 1654, APP_UID, port 8080, still root by default.
ENV APP_UID=1654 ASPNETCORE_HTTP_PORTS=8080 DOTNET_RUNNING_IN_CONTAINER=true DOTNET_VERSION=$dotnet_version ASPNET_VERSION=$dotnet_version
RUN groupadd --gid=1654 app && useradd --no-log-init --uid=1654 --gid=1654 --create-home app
DOCKERFILE
  step "stand-in mcr.microsoft.com/dotnet/aspnet:10.0 (ASP.NET Core $dotnet_version from $DOTNET_ROOT)" \
    "$DOCKER" build -q --network host -t mcr.microsoft.com/dotnet/aspnet:10.0 "$work/aspnet"
fi

if need mcr.microsoft.com/dotnet/sdk:10.0; then
  mkdir -p "$work/sdk"
  cp -a "$DOTNET_ROOT" "$work/sdk/dotnet"
  cp "$CA_BUNDLE" "$work/sdk/ca-certificates.crt"
  cat >"$work/sdk/Dockerfile" <<DOCKERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends $deps && rm -rf /var/lib/apt/lists/*
# This host's CA bundle: NuGet restore inside the build fails with UntrustedRoot without it where
# HTTPS goes through an intercepting proxy.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
ENV APP_UID=1654 DOTNET_RUNNING_IN_CONTAINER=true DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 \
    NUGET_CERT_REVOCATION_MODE=${NUGET_CERT_REVOCATION_MODE:-online}
RUN groupadd --gid=1654 app && useradd --no-log-init --uid=1654 --gid=1654 --create-home app
DOCKERFILE
  step "stand-in mcr.microsoft.com/dotnet/sdk:10.0 (SDK $("$DOTNET_ROOT/dotnet" --version) from $DOTNET_ROOT)" \
    "$DOCKER" build -q --network host -t mcr.microsoft.com/dotnet/sdk:10.0 "$work/sdk"
fi

if need redis:7.4; then
  mkdir -p "$work/redis"
  cat >"$work/redis/Dockerfile" <<DOCKERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
# As the official image: data in /data, the command line is redis-server's, runs as user redis.
WORKDIR /data
USER redis
CMD ["redis-server", "--protected-mode", "no"]
DOCKERFILE
  step "stand-in redis:7.4 (Debian's redis-server)" "$DOCKER" build -q --network host -t redis:7.4 "$work/redis"
fi

if need haproxy:2.6; then
  mkdir -p "$work/haproxy"
  cat >"$work/haproxy/Dockerfile" <<DOCKERFILE
FROM $DEBIAN_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends haproxy && rm -rf /var/lib/apt/lists/*
USER haproxy
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
DOCKERFILE
  step "stand-in haproxy:2.6 (Debian's haproxy)" "$DOCKER" build -q --network host -t haproxy:2.6 "$work/haproxy"
fi

"$DOCKER" images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E 'rinserve-standin|dotnet|^redis:|^haproxy:'
