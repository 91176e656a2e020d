#!/usr/bin/env bash
# One call on a lent GPU host (PyTorch with CUDA, no fonts, no network): the glyph family trained at its
# served resolution, natively (every pixel rendered from the outlines at R, an output head at R), judged on
# the GPU, and the weights back through OUT so that the next GPU session continues from them.
#
# Carry these ignored paths (they are made on the CPU, see models/MODELS.md "Continuing on a GPU"):
#   data/glyph-fonts/           the faces cut to the 284 characters (training.glyphs pack-fonts, 15 MB)
#   data/glyph-start/           trunk.pt: the CPU trunk (a copy of training/checkpoints/glyph-256-trunk.pt);
#                               glyph-<R>.pt: a previous GPU run's weights at R, if any: then it continues
#                               from those instead of starting from the trunk carried to R
# and move models/*.onnx out of the tree for the call (the tree travels whole, 64 MiB at most).
# For each R of RESOLUTIONS (default 768), at the same time on the one GPU: MINUTES of training (batch
# BATCH, bf16, glyphs rendered by WORKERS processes as it runs), then the guidance sweep and PER_CLASS
# images of every class judged (training.glyph_judge). Back in OUT: glyph-<R>.pt (EMA weights, float16),
# judged-<R>.json (its figures, naming that file's sha256), glyph-<R>-samples.png, logs.
# Rehearse on the CPU: DEVICE=cpu MINUTES=0.05 BATCH=2 WORKERS=1 PER_CLASS=1 SWEEP=0,3 JUDGE_CLASSES=2 SAMPLE_STEPS=2 \
#   RESOLUTIONS=512 OUT=/tmp/gpu-out training/gpu_glyphs.sh
set -uo pipefail
: "${OUT:?set OUT to the folder for results}"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
minutes=${MINUTES:-6}
workers=${WORKERS:-7}
export RINSERVE_GLYPH_FONTS=${RINSERVE_GLYPH_FONTS:-$PWD/data/glyph-fonts}
export RINSERVE_GLYPH_DATA=${RINSERVE_GLYPH_DATA:-$PWD/runs/glyph-data}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
stage() { echo "== $(date -u +%H:%M:%S) $*"; }
mkdir -p "$OUT" runs
stage start; nvidia-smi -L 2>/dev/null; $py -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
[ -f data/glyph-start/trunk.pt ] || { echo "data/glyph-start/trunk.pt missing"; exit 2; }
$py -m training.glyphs build --resolution 256 --split heldout --workers 8 || exit 1     # the judge's reference

one() {   # one resolution: start, train, slim, judge
  local r=$1 start
  if [ -f "data/glyph-start/glyph-$r.pt" ]; then
    start=data/glyph-start/glyph-$r.pt; stage "$r px: continuing from $start"
  else
    $py -m training.carry data/glyph-start/trunk.pt --resolution "$r" --native-head --out "runs/glyph-$r-start.pt" || return 1
    start=runs/glyph-$r-start.pt; stage "$r px: from the trunk carried to $r px with a native head"
  fi
  $py -m training.train --config training/configs/glyph-256-trunk.json --device "$device" --no-resume \
      --set name="glyph-$r" --set init_from="$start" --set out_dir="runs/gpu-glyph-$r" \
      --set model.resolution="$r" --set model.patch_size=$((r / 16)) --set model.head_resolution="$r" \
      --set input_scale="$($py -c "print(64 / $r)")" --set max_minutes="$minutes" --set batch_size="${BATCH:-128}" \
      --set bf16=true --set data_workers="$workers" --set sample_every=0 --set ckpt_every=500 \
      ${LR:+--set "lr=$LR"} ${SAMPLE_STEPS:+--set "sample_steps=$SAMPLE_STEPS"} > "$OUT/train-$r.log" 2>&1 || { stage "$r px: training failed"; return 1; }
  $py -m training.slim --half "runs/gpu-glyph-$r/ckpt.pt" "$OUT/glyph-$r.pt"
  cp "runs/gpu-glyph-$r/samples-final.png" "$OUT/glyph-$r-samples.png"
  stage "$r px: trained; judging"
  $py -m training.export "$OUT/glyph-$r.pt" /tmp/unused.onnx --device "$device" --no-export --judge \
      --samples-per-class "${PER_CLASS:-4}" --sweep-per-class "${SWEEP_PER_CLASS:-1}" --guidance-sweep "${SWEEP:-0,1,2,3,4,5}" \
      ${JUDGE_CLASSES:+--judge-classes "$JUDGE_CLASSES"} --record "$OUT/judged-$r.json" | grep -v '^{'
  stage "$r px: done"
}

for r in ${RESOLUTIONS:-768}; do one "$r" > "$OUT/glyph-$r.log" 2>&1 & done
wait
stage end
for r in ${RESOLUTIONS:-768}; do tail -4 "$OUT/glyph-$r.log"; tail -c 300 "$OUT/train-$r.log"; echo; done
