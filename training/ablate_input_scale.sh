#!/usr/bin/env bash
# Issue 17: does input scaling b help at high resolution on this project's data, as Chen 2023 finds?
# Trains the same RIN from scratch at 128 px (Fashion-MNIST upsampled 4.6x) with the same data order,
# seed, schedule and budget for each row, then judges each (training.ablation) and prints the table
# that models/MODELS.md shows. Rows: b = 1, 0.5, 0.25 (cosine training schedule), and the paper's
# alternative, a noisier training schedule at b = 1, judged with the service's cosine inference
# schedule and with its own.
# By default the rows train one after another and the budget is equal in steps (samples seen), so
# that other work on the machine cannot favour one row; rerun to resume, STEPS=N changes the budget.
# With MINUTES=N (for a GPU: DEVICE=cuda) the rows train at the same time, each for N minutes of wall
# time (the same wall-clock budget, shared alike), BATCH samples a step, then are judged on DEVICE.
#   training/ablate_input_scale.sh                 # about two hours on a 2-core CPU
#   PER_CLASS=20 STEPS=100 training/ablate_input_scale.sh    # a quick look
#   ROWS="b1 b0.5" PER_CLASS=50 training/ablate_input_scale.sh # some rows; samples judged per class (default 100)
#   DEVICE=cuda MINUTES=4 BATCH=256 OUT=runs/ablation-128-gpu training/ablate_input_scale.sh
#   SEED=1 ...                                     # another seed (weights and data order)
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE
py=${PYTHON:-/usr/bin/python3}
device=${DEVICE:-cpu}
config=${CONFIG:-training/configs/ablation-128-x.json}
out=${OUT:-runs/$(basename "$config" .json)}
rows=${ROWS:-b1 b0.5 b0.25 shift}
shift_schedule="cosine@0.2,1,2"
stage() { echo "== $(date -u +%H:%M:%S) $*"; }

budget=() threads=()
[ "$device" = cpu ] && threads=(--threads 2)
if [ -z "${MINUTES:-}" ]; then
  budget=("${threads[@]}" ${STEPS:+--set "steps=$STEPS"} ${SEED:+--set "seed=$SEED"})
else   # a wall-clock budget; steps only bounds it; EMA over thousands of steps
  budget=(--set "max_minutes=${MINUTES:-4}" --set "steps=${STEPS:-1000000}" --set ema_decay=0.999
          ${BATCH:+--set "batch_size=$BATCH"} --set sample_every=0 ${SEED:+--set "seed=$SEED"})
fi

overrides() {  # the row's own settings
  case $1 in
    b*) echo "--set input_scale=${1#b}" ;;
    shift) echo "--set train_schedule=$shift_schedule" ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}
train() {  # row
  stage "train $1"
  # shellcheck disable=SC2046
  $py -m training.train --config "$config" --device "$device" "${budget[@]}" $(overrides "$1") \
      --set "out_dir=$out/$1" --set "name=$(basename "$config" .json)-$1" | tail -3
}
judge() {  # row [inference schedule]
  stage "judge $1 ${2:-cosine}"
  $py -m training.ablation judge "$out/$1" --schedule "${2:-cosine}" --per-class "${PER_CLASS:-100}" \
      --device "$device" "${threads[@]}" | cut -c1-300
}
judge_row() {
  case $1 in
    shift) judge shift "$shift_schedule"; judge shift ;;
    *) judge "$1" ;;
  esac
}

if [ -z "${MINUTES:-}" ]; then
  for row in $rows; do train "$row"; judge_row "$row"; done
else
  mkdir -p "$out"
  for row in $rows; do train "$row" > "$out/train-$row.log" 2>&1 & done
  wait
  for row in $rows; do cat "$out/train-$row.log"; judge_row "$row"; done
fi
stage table
sheets=${SHEETS-models/ablation}
$py -m training.ablation table "$out" ${sheets:+--sheets "$sheets"}
