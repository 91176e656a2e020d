#!/usr/bin/env bash
# The GPU host's half of issue 27's proof (bench/cuda/README.md). Runs in the repository root of the
# device's copy of the tree, where each `run` call has carried one part of the payload into
# artifacts/cuda/xfer/pNN/ (ignored, so the host keeps it while it stays warm). bench/cuda/prove.sh
# makes the parts and prints the calls; it also rehearses this script against a local folder.
#   remote.sh part N   check part N's sha256 (and that parts 1..N-1 are still there); part 1 also
#                      reports the host and starts the PyTorch step timing in the background
#   remote.sh run      join the parts, check the whole payload's sha256, unpack it to $WORK, then the
#                      proof, the service and the PyTorch figures, all into $OUT
#   remote.sh extras   after run, on the same warm host: what the figures may call for (TF32 off, cuDNN's
#                      HEURISTIC search, a strict session per fixed batch), into $OUT
# Environment: OUT (results; required for run), WORK (unpack folder, default /tmp/rin-cuda),
# REHEARSE=1 (CPU stands in where CUDA is missing; only the local rehearsal sets it),
# PROOF_ARGS and SERVICE_ARGS (extra arguments of the proof and of service_check.py), TORCH_BUDGET_S
# (PyTorch's wall-clock budget, default 150), TORCH_WAIT_S (how long run waits for it, default 240).
set -uo pipefail
xfer=artifacts/cuda/xfer
work=${WORK:-/tmp/rin-cuda}
stage() { echo "== $(date -u +%H:%M:%S) $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

# CUDA 13 and cuDNN 9 come with the host's PyTorch: every folder of site-packages/nvidia that holds a shared library.
cuda_libs() {
  python3 - <<'EOF' 2>/dev/null
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit
dirs = {os.path.dirname(f) for p in nvidia.__path__ for f in glob.glob(os.path.join(p, "**", "lib*.so*"), recursive=True)}
print(":".join(sorted(dirs)))
EOF
}

check_part() {  # N: the part's own sum, from the SHA256SUMS it carries
  local n dir
  n=$(printf %02d "$1"); dir=$xfer/p$n
  [ -f "$dir/SHA256SUMS" ] || die "part $1 is not here ($dir): was it carried? If the machine was given back since the last call, start again from call 1"
  (cd "$dir" && grep " payload\.part$n\$" SHA256SUMS | sha256sum -c --quiet) || die "part $1 has the wrong sha256"
}

case "${1:-}" in
part)
  n=${2:?part number}
  for ((i = 1; i < n; i++)); do check_part "$i"; done
  check_part "$n"
  total=$(grep -c ' payload\.part' "$xfer/p$(printf %02d "$n")/SHA256SUMS")
  stage "part $n of $total: sha256 OK ($(du -sh "$xfer" | cut -f1) here)"
  if [ "$n" = 1 ]; then
    nvidia-smi -L 2>&1 | head -4
    libs=$(cuda_libs)
    for lib in libcublasLt.so.13 libcublas.so.13 libcudart.so.13 libcurand.so.10 libcudnn.so.9; do
      found=$(tr : '\n' <<<"$libs" | while read -r d; do ls "$d"/$lib 2>/dev/null; done | head -1)
      echo "  $lib: ${found:-MISSING}"
    done
    # PyTorch's figures need no .NET: they run now, while the other parts travel (the GPU is idle then).
    rm -rf "$work/torch"; mkdir -p "$work/torch"
    setsid nohup env PYTHONUNBUFFERED=1 python3 bench/cuda/torch_step.py --configs "$xfer/p01/configs.json" \
      --out "$work/torch" --budget "${TORCH_BUDGET_S:-150}" ${REHEARSE:+--allow-cpu} \
      > "$work/torch/log.txt" 2>&1 < /dev/null &
    echo $! > "$work/torch/pid"
    echo "  PyTorch step timing started in the background (pid $!, log $work/torch/log.txt)"
  fi
  ;;
run)
  : "${OUT:?set OUT}"
  mkdir -p "$OUT" "$work"
  exec > >(tee "$OUT/run.log") 2>&1
  stage "join"
  sums=$PWD/$(ls "$xfer"/p*/SHA256SUMS | tail -1)
  total=$(grep -c ' payload\.part' "$sums")
  for ((i = 1; i <= total; i++)); do check_part "$i"; done
  cat $(for ((i = 1; i <= total; i++)); do n=$(printf %02d "$i"); echo "$xfer/p$n/payload.part$n"; done) > "$work/payload.tar.xz"
  (cd "$work" && grep ' payload\.tar\.xz$' "$sums" | sha256sum -c --quiet) || die "the joined payload has the wrong sha256"
  rm -rf "$work/app" && mkdir -p "$work/app"
  # Python's lzma: no xz or zstd binary is assumed on the host.
  python3 -c "import lzma, sys, tarfile; tarfile.open(fileobj=lzma.open(sys.argv[1])).extractall(sys.argv[2])" \
    "$work/payload.tar.xz" "$work/app" || die "cannot unpack the payload"
  rm -f "$work/payload.tar.xz"
  stage "unpacked: $(du -sh "$work/app" | cut -f1)"
  app=$work/app
  export LD_LIBRARY_PATH="$(cuda_libs)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
  {
    echo "date: $(date -u +%FT%TZ)"; nvidia-smi 2>&1 | head -15; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    echo "libonnxruntime_providers_cuda.so needs:"; ldd "$app/bin/libonnxruntime_providers_cuda.so" 2>&1 | grep -E 'cu|not found'
    python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" 2>&1
  } > "$OUT/env.txt"
  cat "$OUT/env.txt"

  # PyTorch's timing started in call 1; its GPU work must be over before the C# figures are taken.
  if [ -f "$work/torch/pid" ]; then
    pid=$(cat "$work/torch/pid")
    for ((i = 0; i < ${TORCH_WAIT_S:-240}; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && { kill "$pid"; stage "PyTorch still running after ${TORCH_WAIT_S:-240} s: stopped"; }
    stage "PyTorch: $(tail -1 "$work/torch/log.txt")"
  else
    stage "PyTorch was not started (call 1 starts it)"
  fi

  models=(); for f in "$app"/models/*.onnx; do models+=(--model "$f"); done
  # x̂0 parity at 64 and 512 px, and at 768 when the glyph model ships (fmnist-768 is then checked too).
  parity=64,512; [ -f "$app/models/glyph-768.onnx" ] && parity=64,512,768
  stage "proof ($((${#models[@]} / 2)) models, parity at $parity px)"
  proof_rc=0
  "$app/bin/RinServe.Bench" --cuda-proof "${models[@]}" --out "$OUT" --parity "$parity" ${REHEARSE:+--rehearse} ${PROOF_ARGS:-} || proof_rc=$?
  stage "proof exit code $proof_rc"

  stage "service"
  service_rc=0
  python3 bench/cuda/service_check.py --app "$app/bin/RinServe.WebApi" --models "$app/models" \
    --provider "${SERVICE_PROVIDER:-cuda}" --out "$OUT" ${SERVICE_ARGS:-} || { service_rc=$?; stage "service check FAILED"; }

  cp "$work/torch/torch.json" "$OUT/torch.json" 2>/dev/null || echo "no PyTorch figures (see its log below)"
  tail -5 "$work/torch/log.txt" 2>/dev/null
  {
    cat "$OUT/proof.md" 2>/dev/null; echo
    cat "$OUT/service.md" 2>/dev/null; echo
    cat "$work/torch/torch.md" 2>/dev/null
  } > "$OUT/summary.md"
  rm -f "$OUT/proof.md" "$OUT/service.md"
  stage "done: $(ls "$OUT" | tr '\n' ' ')"
  [ "$proof_rc" = 0 ] && exit "$service_rc"
  exit "$proof_rc"
  ;;
extras)
  : "${OUT:?set OUT}"
  [ -x "$work/app/bin/RinServe.Bench" ] || die "nothing unpacked in $work: 'remote.sh run' first, on this same machine"
  mkdir -p "$OUT"
  export LD_LIBRARY_PATH="$(cuda_libs)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1
  models=(); for f in "$work"/app/models/*.onnx; do models+=(--model "$f"); done
  "$work/app/bin/RinServe.Bench" --cuda-proof "${models[@]}" --out "$OUT" ${REHEARSE:+--rehearse} \
    --parity none --batches 16 --extras --extra-batches 1,16 ${PROOF_ARGS:-} 2>&1 | tee "$OUT/extras.log"
  mv "$OUT/proof.md" "$OUT/extras.md"; mv "$OUT/proof.json" "$OUT/extras.json"
  ;;
*)
  sed -n 2,16p "$0"; exit 2 ;;
esac
