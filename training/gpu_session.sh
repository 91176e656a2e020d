#!/usr/bin/env bash
# One call on a lent GPU host (PyTorch with CUDA, no network, no .NET): the whole GPU work of a
# session, sized to fit one ~8-minute call. Run from the repository root with:
#   data/fashion-mnist/  the four IDX files (RINSERVE_FASHION_MNIST points here)
#   data/trunk-cpu.pt    the current trunk's EMA weights and config (training.slim)
#   OUT                  a folder for what comes back (the run tool's $OUT)
# It does, at once on the one GPU:
#   1. issue 17's ablation (training/ablate_input_scale.sh) with a wall-clock budget of MINUTES per row,
#      every row training at the same time, then judged on the GPU;
#   2. the trunk: MINUTES more of training from data/trunk-cpu.pt (batch TRUNK_BATCH, bf16 autocast),
#      then carried to 64/512/768/1024 px and judged there (the guidance sweep at 64 px, then each
#      resolution at that weight, PER_CLASS images per class); the records go to OUT for
#      `training.export --judged` on the CPU, with the trunk's EMA weights.
# Rehearse on the CPU with DEVICE=cpu MINUTES=0.1 PER_CLASS=2 SWEEP_PER_CLASS=1.
set -uo pipefail
: "${OUT:?set OUT to the folder for results}"
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
minutes=${MINUTES:-4}
per_class=${PER_CLASS:-100}
export RINSERVE_FASHION_MNIST=${RINSERVE_FASHION_MNIST:-$PWD/data/fashion-mnist}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-3}
stage() { echo "== $(date -u +%H:%M:%S) $*"; }
mkdir -p "$OUT" runs
stage start; nvidia-smi -L 2>/dev/null; $py -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"

(
  DEVICE=$device MINUTES=$minutes BATCH=${ABLATION_BATCH:-256} PER_CLASS=$per_class OUT=runs/ablation-128-gpu SHEETS= \
    PYTHON=$py ${ABLATION_STEPS:+STEPS=$ABLATION_STEPS} training/ablate_input_scale.sh > "$OUT/ablation.log" 2>&1
  tar czf "$OUT/ablation.tgz" runs/ablation-128-gpu/*.log runs/ablation-128-gpu/*/*.json runs/ablation-128-gpu/*/*.png \
    runs/ablation-128-gpu/*/train.log 2>/dev/null
  stage "ablation done"
) &

(
  stage "trunk: $minutes min"
  $py -m training.train --config training/configs/fmnist-32-trunk.json --device "$device" --no-resume \
      --set init_from=data/trunk-cpu.pt --set out_dir=runs/gpu-trunk --set "max_minutes=$minutes" \
      --set "batch_size=${TRUNK_BATCH:-512}" --set bf16=true --set steps=1000000 --set sample_every=0 \
      --set ckpt_every=1000 ${TRUNK_LR:+--set "lr=$TRUNK_LR"} > "$OUT/trunk-train.log" 2>&1 || { stage "trunk failed"; exit 1; }
  $py -m training.slim runs/gpu-trunk/ckpt.pt "$OUT/trunk-gpu.pt"
  cp runs/gpu-trunk/samples-final.png "$OUT/trunk-samples.png"
  stage "trunk trained; carry and judge"
  w=
  for res in 64 512 768 1024; do
    $py -m training.carry "$OUT/trunk-gpu.pt" --resolution "$res" --lattice 28 --out "runs/gpu-$res.pt"
    $py -m training.export "runs/gpu-$res.pt" /tmp/unused.onnx --device "$device" --no-export \
        --samples-per-class "$per_class" --sweep-per-class "${SWEEP_PER_CLASS:-20}" ${w:+--guidance "$w"} --judge \
        --guidance-sweep "${SWEEP:-0,1,2,3,4,5}" --record "runs/judged-$res.json" | grep -v '^{' 
    [ -n "$w" ] || w=$($py -c "import json; print(json.load(open('runs/judged-64.json'))['guidance'])")
  done
  tar czf "$OUT/judged.tgz" runs/judged-*.json
  stage "trunk done"
) >> "$OUT/trunk.log" 2>&1 &

wait
stage end
tail -5 "$OUT/trunk.log"; tail -12 "$OUT/ablation.log"
