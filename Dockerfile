# RinServe images. Two final targets, one binary:
#   docker build --target cpu  -t rinserve:cpu  .   # ASP.NET Core runtime image, CPU ONNX Runtime
#   docker build --target cuda -t rinserve:cuda .   # CUDA 13 + cuDNN 9 image, GPU ONNX Runtime
# The role (all | api | worker) is chosen at run time with RinServe__Role. See docs/DEPLOY.md.

# The CUDA base must match what Microsoft.ML.OnnxRuntime.Gpu.Linux 1.31 is built for (CUDA 13, cuDNN 9)
# and the distribution of the aspnet image below (Ubuntu 24.04), whose .NET runtime the cuda target reuses.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
# The .NET images; overridable only for a mirror or a stand-in (tests/container/standins.sh), never a different .NET.
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG ASPNET_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0
# No "# syntax=" line: it makes BuildKit pull a frontend image, which fails where no registry is reachable;
# the built-in frontend of any BuildKit (Docker 20.10+) reads this file.

# ---------------------------------------------------------------------------------------------
# Build: restore from the project files first, so the restore layer is cached until they change.
FROM ${SDK_IMAGE} AS build-base
WORKDIR /src
COPY Directory.Build.props Directory.Packages.props ./
COPY src/RinServe.Diffusion/RinServe.Diffusion.csproj src/RinServe.Diffusion/
COPY src/RinServe.Onnx/RinServe.Onnx.csproj src/RinServe.Onnx/
COPY src/RinServe.Jobs/RinServe.Jobs.csproj src/RinServe.Jobs/
COPY src/RinServe.Worker/RinServe.Worker.csproj src/RinServe.Worker/
COPY src/RinServe.WebApi/RinServe.WebApi.csproj src/RinServe.WebApi/

# CPU ONNX Runtime (Microsoft.ML.OnnxRuntime).
FROM build-base AS build-cpu
RUN dotnet restore src/RinServe.WebApi/RinServe.WebApi.csproj -r linux-x64
# appsettings.json is linked into the WebApi project and published next to the dll.
COPY appsettings.json ./
COPY src/ src/
RUN dotnet publish src/RinServe.WebApi/RinServe.WebApi.csproj -c Release -r linux-x64 --self-contained false --no-restore -o /app/publish

# GPU ONNX Runtime (Microsoft.ML.OnnxRuntime.Gpu.Linux): the property must be the same for restore and publish.
FROM build-base AS build-cuda
RUN dotnet restore src/RinServe.WebApi/RinServe.WebApi.csproj -r linux-x64 -p:OnnxRuntimeGpu=true
COPY appsettings.json ./
COPY src/ src/
RUN dotnet publish src/RinServe.WebApi/RinServe.WebApi.csproj -c Release -r linux-x64 --self-contained false --no-restore -p:OnnxRuntimeGpu=true -o /app/publish

# ---------------------------------------------------------------------------------------------
# The ASP.NET Core 10 runtime image (Ubuntu 24.04): base of the cpu target, source of the runtime for cuda.
FROM ${ASPNET_IMAGE} AS aspnet

# ---------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS cuda
# What the .NET runtime needs on Ubuntu 24.04 beyond the base image (as in Microsoft's runtime-deps image), plus curl for the HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libicu74 libssl3t64 tzdata curl \
    && rm -rf /var/lib/apt/lists/*
# The same ASP.NET Core runtime as the cpu target, copied rather than installed from a second source.
COPY --from=aspnet /usr/share/dotnet /usr/share/dotnet
RUN ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet
# The same non-root user and UID as the aspnet image, so both targets run under one securityContext.
ENV APP_UID=1654
RUN groupadd --gid "$APP_UID" app \
    && useradd --no-log-init --uid "$APP_UID" --gid "$APP_UID" --create-home app
WORKDIR /app
COPY models/ /app/models/
COPY --from=build-cuda /app/publish /app/
# cuda: a worker without a usable GPU fails at start instead of silently serving from the CPU.
ENV ASPNETCORE_HTTP_PORTS=8080 \
    DOTNET_RUNNING_IN_CONTAINER=true \
    RinServe__Role=all \
    RinServe__ModelsPath=/app/models \
    Onnx__ExecutionProvider=cuda
EXPOSE 8080
USER $APP_UID
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS "http://localhost:${ASPNETCORE_HTTP_PORTS}/healthz/live" || exit 1
ENTRYPOINT ["dotnet", "RinServe.WebApi.dll"]

# ---------------------------------------------------------------------------------------------
# Last stage, so a plain `docker build .` gives the image that runs anywhere.
FROM aspnet AS cpu
# curl only serves the HEALTHCHECK: the aspnet image has no HTTP client and the app has no self-check command.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Models before the binaries: they change less often, so a code change does not re-copy them.
COPY models/ /app/models/
COPY --from=build-cpu /app/publish /app/
ENV ASPNETCORE_HTTP_PORTS=8080 \
    RinServe__Role=all \
    RinServe__ModelsPath=/app/models \
    Onnx__ExecutionProvider=cpu
EXPOSE 8080
# The aspnet image's non-root user "app" (UID 1654); the files above stay root-owned and read-only to it.
USER $APP_UID
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS "http://localhost:${ASPNETCORE_HTTP_PORTS}/healthz/live" || exit 1
ENTRYPOINT ["dotnet", "RinServe.WebApi.dll"]

