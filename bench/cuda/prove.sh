#!/usr/bin/env bash
# Issue 27, this machine's half: pack what must run on the GPU host, split it into parts that fit the
# device tool's 64 MiB per call together with the tree, print the `run` calls, and rehearse them all
# against a local folder. The host's half is bench/cuda/remote.sh; the plan is bench/cuda/README.md.
#   prove.sh pack       self-contained GPU publish (WebApi + Bench) + models/*.onnx -> xz -> parts in
#                       artifacts/cuda/xfer/pNN/, then the calls (also in artifacts/cuda/calls.md);
#                       REUSE_PUBLISH=1 keeps an existing publish, XZ_LEVEL (default 3) the compression
#   prove.sh split      split artifacts/cuda/payload.tar.xz again (the tree changed), then the calls
#   prove.sh calls      print the calls again
#   prove.sh away|back  move models/*.onnx out of the tree before the first call, and back after the last
#   prove.sh rehearse   pack (REUSE=1: keep an existing pack), then every call against
#                       artifacts/cuda/rehearsal/ standing in for the device
# Run it at normal priority: it runs its own heavy commands under nice -n 10 (a training run comes first).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
art=artifacts/cuda            # ignored (/artifacts/ in .gitignore): nothing here is committed
xfer=$art/xfer
away=$art/models-away
limit=$((64 * 1024 * 1024))   # what one call may send: tracked + untracked-not-ignored files + carried paths
stage() { echo "== $(date -u +%H:%M:%S) $*"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# Bytes that travel with every call: the tree as the device tool copies it, models/*.onnx not counted
# (they travel in the payload, and are moved away for the calls).
tree_bytes() {
  local n
  n=$(git ls-files -co --exclude-standard -z | grep -zv '^models/[^/]*\.onnx$' \
      | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
  [ -d shared ] && n=$((n + $(du -sb shared | cut -f1)))
  echo "$n"
}

models_here() {  # the shipped models, wherever they are now
  if compgen -G "models/*.onnx" >/dev/null; then ls models/*.onnx; else ls "$away"/*.onnx; fi
}

# What the payload is made of: every source and build file that goes into the publish, the models, the level.
payload_key() {
  { git ls-files -co --exclude-standard -z src bench/RinServe.Bench Directory.Build.props Directory.Packages.props appsettings.json \
      | xargs -0 sha256sum; sha256sum $(models_here) | sed 's|  .*/|  |'; echo "xz -${XZ_LEVEL:-3}"; } | sha256sum | cut -c1-16
}

pack() {
  local stage_dir=$art/stage key cached
  # Publishing and compressing take most of an hour on a busy 2-core box: a payload made from the same
  # files is kept outside the tree (PACK_CACHE) and used again; only the split depends on the tree.
  key=$(payload_key); cached=${PACK_CACHE:-$HOME/.cache/rinserve-cuda}/payload-$key.tar.xz
  if [ -f "$cached" ]; then
    stage "payload $key from $cached (same sources, models and level)"
    cp "$cached" "$art/payload.tar.xz"
  else
    if [ "${REUSE_PUBLISH:-0}" = 1 ] && [ -f "$stage_dir/bin/RinServe.Bench" ]; then
      stage "REUSE_PUBLISH=1: the publish in $stage_dir as it is"
    else
      publish
    fi
    compress
    mkdir -p "$(dirname "$cached")" && rm -f "$(dirname "$cached")"/payload-*.tar.xz && cp "$art/payload.tar.xz" "$cached"
  fi
  write_configs
  split_parts
  calls | tee "$art/calls.md"
}

publish() {
  local build=$art/build stage_dir=$art/stage
  stage "build copy (the GPU package gets its own obj folders: CPU and GPU ONNX Runtime never meet in one build)"
  rm -rf "$build" "$stage_dir" && mkdir -p "$build" "$stage_dir/bin" "$stage_dir/models"
  git ls-files -co --exclude-standard -z src bench Directory.Build.props Directory.Packages.props appsettings.json WebApi.sln \
    | tar --null -T - -cf - | tar -xf - -C "$build"
  for project in src/RinServe.WebApi bench/RinServe.Bench; do
    stage "dotnet publish $project (self-contained linux-x64, OnnxRuntimeGpu=true)"
    (cd "$build" && nice -n 10 dotnet publish "$project" -c Release -r linux-x64 --self-contained \
       -p:OnnxRuntimeGpu=true -o "$root/$stage_dir/bin" --nologo -v quiet) | grep -vE '^\s*$' || true
  done
  [ -f "$stage_dir/bin/libonnxruntime_providers_cuda.so" ] || { echo "no CUDA provider in the publish" >&2; exit 1; }
  # TensorRT is not on the host and not asked for.
  rm -f "$stage_dir/bin/libonnxruntime_providers_tensorrt.so"
  cp $(models_here) "$stage_dir/models/"
}

compress() {
  local stage_dir=$art/stage level=${XZ_LEVEL:-3}
  stage "sizes before compression"
  du -b "$stage_dir/bin/libonnxruntime_providers_cuda.so" "$stage_dir/bin/libonnxruntime.so" | awk '{ printf "  %-60s %s\n", $2, $1 }'
  printf '  %-60s %s\n' "$stage_dir/bin (all)" "$(du -sb "$stage_dir/bin" | cut -f1)" "$stage_dir/models" "$(du -sb "$stage_dir/models" | cut -f1)"

  # xz because the host unpacks with Python's lzma (no xz or zstd binary is assumed there); -3 because a
  # higher level saves no part (README.md, "Measured sizes") and -9 takes over an hour on a busy 2-core box.
  stage "compress (xz -$level)"
  rm -f "$art/payload.tar.xz"
  local began=$SECONDS
  tar -C "$stage_dir" -cf - bin models | nice -n 10 xz "-$level" -T2 -c > "$art/payload.tar.xz"
  stage "compressed in $((SECONDS - began)) s"
}

# Each model's architecture (rin.config), for PyTorch on the host: it starts before the payload is there.
write_configs() {
  nice -n 10 /usr/bin/python3 - "$(dirname "$(models_here | head -1)")" > "$art/configs.json" <<'EOF'
import glob, json, os, sys
import onnx
out = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.onnx"))):
    meta = {p.key: p.value for p in onnx.load(f, load_external_data=False).metadata_props}
    out[os.path.basename(f)] = {"config": json.loads(meta["rin.config"])}
print(json.dumps(out, indent=1))
EOF
}

split_parts() {
  local payload tree part
  payload=$(stat -c %s "$art/payload.tar.xz")
  tree=$(tree_bytes)
  # One part per call beside the tree, 2 MiB to spare (SHA256SUMS, configs.json, files added later).
  part=$(( (limit - tree - 2 * 1024 * 1024) / 1048576 ))
  [ "$part" -ge 8 ] || { echo "the tree ($(mib "$tree")) leaves no room for parts" >&2; exit 1; }
  stage "payload $payload bytes ($(mib "$payload")); tree $(mib "$tree"); parts of $part MiB"
  rm -rf "$xfer" && mkdir -p "$xfer"
  split -b "${part}M" -d -a 2 --numeric-suffixes=1 "$art/payload.tar.xz" "$xfer/payload.part"
  local n
  for f in "$xfer"/payload.part*; do
    n=${f##*part}; mkdir -p "$xfer/p$n"; mv "$f" "$xfer/p$n/"
  done
  (cd "$art" && sha256sum payload.tar.xz) > "$xfer/SHA256SUMS"
  for d in "$xfer"/p*/; do (cd "$d" && sha256sum payload.part*) >> "$xfer/SHA256SUMS"; done
  for d in "$xfer"/p*/; do cp "$xfer/SHA256SUMS" "$d"; done
  cp "$art/configs.json" "$xfer/p01/"
  rm "$xfer/SHA256SUMS"
  for d in "$xfer"/p*/; do printf '  %s %s\n' "$d" "$(du -sb "$d" | cut -f1)"; done
}

# The exact `run` tool calls for a session with a GPU. Keep each command under 2000 characters.
calls() {
  local parts n tree
  parts=$(ls -d "$xfer"/p* | wc -l)
  tree=$(tree_bytes)
  cat <<EOF

### The \`run\` calls (paste in this order, back to back: the host keeps carried files ~30 s after a call)
Before call 1, here: \`bench/cuda/prove.sh away\` (models/*.onnx out of the tree; they travel in the payload).
Each call sends the tree ($(mib "$tree")) + one part. timeout_s as given.
EOF
  for ((n = 1; n <= parts; n++)); do
    local p; p=$(printf %02d "$n")
    local size; size=$(du -sb "$xfer/p$p" | cut -f1)
    echo
    if [ "$n" -lt "$parts" ]; then
      echo "$n. carry [\"$xfer/p$p\"] ($(mib $((tree + size))) in all), timeout_s 120:"
      echo "   \`bash bench/cuda/remote.sh part $n\`"
    else
      echo "$n. carry [\"$xfer/p$p\"] ($(mib $((tree + size))) in all), timeout_s 600:"
      echo "   \`set -o pipefail; bash bench/cuda/remote.sh part $n && bash bench/cuda/remote.sh run\`"
    fi
  done
  cat <<EOF

$((parts + 1)). (as time allows, on the same warm host, right after) carry [], timeout_s 300:
   \`bash bench/cuda/remote.sh extras\`

Then here: \`bench/cuda/prove.sh back\`, and give_back. Results: summary.md, proof.json, service.json,
torch.json, env.txt, run.log, service.log. If a call says a part is missing, the machine was given
back between calls: start again from call 1 (all parts are still here).
EOF
}

move_away() {
  mkdir -p "$away"
  if compgen -G "models/*.onnx" >/dev/null; then mv models/*.onnx "$away/"; fi
  echo "models/*.onnx are in $away: run 'bench/cuda/prove.sh back' after the last call (git shows them deleted until then)"
}

move_back() {
  if compgen -G "$away/*.onnx" >/dev/null; then mv "$away"/*.onnx models/; fi
  git diff --quiet -- models || { echo "models/ differs from git after 'back'" >&2; git status --short models >&2; exit 1; }
  echo "models/*.onnx are back"
}

# Every call against a local folder standing in for the device, with the same strings a session pastes.
rehearse() {
  local began=$SECONDS
  [ "${REUSE:-0}" = 1 ] && [ -d "$xfer/p01" ] || pack
  local device=$art/rehearsal/device out=$art/rehearsal/out shim=$art/rehearsal/shim
  rm -rf "$art/rehearsal" && mkdir -p "$device" "$out" "$shim"
  # The host's python3 has torch and onnx; here that is Debian's.
  ln -s /usr/bin/python3 "$shim/python3"
  move_away
  trap 'move_back' EXIT
  git ls-files -co --exclude-standard -z | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$device"
  local calls_md; calls_md=$(calls)
  local parts; parts=$(ls -d "$xfer"/p* | wc -l)
  local n cmd
  for ((n = 1; n <= parts; n++)); do
    local p carried sent
    p=$(printf %02d "$n")
    carried=$(grep -o "carry \[\"[^\"]*\"\]" <<<"$calls_md" | sed -n "${n}p" | sed 's/carry \["\(.*\)"\]/\1/')
    cmd=$(grep -A1 "^$n\. carry" <<<"$calls_md" | tail -1 | sed 's/^ *`//; s/`$//')
    sent=$(( $(tree_bytes) + $(du -sb "$carried" | cut -f1) ))
    [ ${#cmd} -lt 2000 ] || { echo "call $n: command over 2000 characters" >&2; exit 1; }
    [ "$sent" -le "$limit" ] || { echo "call $n sends $(mib "$sent"), over 64 MiB" >&2; exit 1; }
    stage "call $n: sends $(mib "$sent"); carry $carried; $cmd"
    mkdir -p "$device/$(dirname "$carried")" && cp -r "$carried" "$device/$(dirname "$carried")/"
    rm -rf "$out" && mkdir -p "$out"
    if [ "$n" -lt "$parts" ]; then
      (cd "$device" && PATH="$root/$shim:$PATH" OUT="$root/$out" REHEARSE=1 nice -n 10 bash -c "$cmd")
    else
      stage "call $n as a GPU session sends it: with no CUDA here it must fail, not fall back"
      if (cd "$device" && PATH="$root/$shim:$PATH" OUT="$root/$out" nice -n 10 bash -c "$cmd") > "$art/rehearsal/gpu-mode.log" 2>&1; then
        echo "the GPU-mode run succeeded without CUDA" >&2; exit 1
      fi
      grep -q "CUDA execution provider UNAVAILABLE" "$art/rehearsal/gpu-mode.log" || { echo "no clear CUDA-unavailable message" >&2; exit 1; }
      grep -q "service check: FAILED" "$art/rehearsal/gpu-mode.log" && grep -q "ExecutionProvider=cuda but the CUDA provider cannot be used" "$art/rehearsal/gpu-mode.log" \
        || { echo "the service did not refuse ExecutionProvider=cuda with its reason" >&2; exit 1; }
      grep -E "UNAVAILABLE|FAIL|service log" "$art/rehearsal/gpu-mode.log" | head -5 | cut -c1-220
      stage "call $n again with REHEARSE=1: the CPU provider stands in, every code path runs"
      rm -rf "$out" && mkdir -p "$out"
      (cd "$device" && PATH="$root/$shim:$PATH" OUT="$root/$out" REHEARSE=1 SERVICE_PROVIDER=auto SERVICE_ARGS="--steps 4" \
         PROOF_ARGS="--batches 1 --steps 2 --rounds 1 --parity-steps 3" nice -n 10 bash -c "$cmd")
    fi
  done
  stage "what came back"
  local count=0 f
  for f in "$out"/*; do
    count=$((count + 1))
    [ "$(stat -c %s "$f")" -le $((16 * 1024 * 1024)) ] || { echo "$f is over 16 MiB" >&2; exit 1; }
    [[ $(basename "$f") =~ ^[A-Za-z0-9._-]+$ ]] || { echo "$f: a name the tool does not return" >&2; exit 1; }
    printf '  %-14s %s\n' "$(basename "$f")" "$(stat -c %s "$f")"
  done
  [ "$count" -le 8 ] || { echo "$count files in OUT, over 8" >&2; exit 1; }
  grep -q "REHEARSAL" "$out/proof.json" && grep -q '"ok": true' "$out/service.json" && [ -s "$out/torch.json" ] \
    || { echo "a result is missing or failed" >&2; exit 1; }
  cp "$out/summary.md" "$art/rehearsal/summary.md"
  cmd=$(grep -A1 "^$((parts + 1))\. (as time allows" <<<"$calls_md" | tail -1 | sed 's/^ *`//; s/`$//')
  stage "call $((parts + 1)), extras: $cmd"
  rm -rf "$out" && mkdir -p "$out"
  (cd "$device" && PATH="$root/$shim:$PATH" OUT="$root/$out" REHEARSE=1 \
     PROOF_ARGS="--batches 1 --extra-batches 1 --steps 2 --rounds 1" nice -n 10 bash -c "$cmd") > "$art/rehearsal/extras.log" 2>&1
  grep -q "REHEARSAL" "$out/extras.json" || { echo "extras: no result" >&2; exit 1; }
  stage "rehearsal OK in $((SECONDS - began)) s (summary: $art/rehearsal/summary.md)"
}

case "${1:-}" in
pack) pack ;;
split) write_configs; split_parts; calls | tee "$art/calls.md" ;;
calls) calls ;;
away) move_away ;;
back) move_back ;;
rehearse) rehearse ;;
*) sed -n 2,14p "$0"; exit 2 ;;
esac
