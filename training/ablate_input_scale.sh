#!/usr/bin/env bash
# Issue 17: does input scaling b help at high resolution on this project's data, as Chen 2023 finds?
# Trains the same RIN from scratch at 128 px (Fashion-MNIST upsampled 4.6x) with the same data order,
# seed, schedule and number of steps for each row, then judges each (training.ablation) and prints
# the table that models/MODELS.md shows. Rows: b = 1, 0.5, 0.25 (cosine training schedule), and the
# paper's alternative, a noisier training schedule at b = 1, judged with the service's cosine inference
# schedule and with its own. The budget is equal in steps (samples seen), not wall time, so that other
# work on the machine cannot favour one row. Resumable: rerun to continue; STEPS=N changes the budget.
#   training/ablate_input_scale.sh                 # about two hours on a 2-core CPU
#   PER_CLASS=20 STEPS=100 training/ablate_input_scale.sh    # a quick look
#   ROWS="b1 b0.5" PER_CLASS=50 training/ablate_input_scale.sh # some rows; samples judged per class (default 100)
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE
py=/usr/bin/python3
config=${CONFIG:-training/configs/ablation-128-x.json}
out=${OUT:-runs/$(basename "$config" .json)}
shift_schedule="cosine@0.2,1,2"
stage() { echo "== $(date -u +%H:%M:%S) $*"; }

train() {  # row, then --set overrides
  local row=$1; shift
  stage "train $row"
  $py -m training.train --config "$config" --threads 2 \
      --set "out_dir=$out/$row" --set "name=$(basename "$config" .json)-$row" ${STEPS:+--set "steps=$STEPS"} "$@" | tail -3
}
judge() {  # row [inference schedule]
  stage "judge $1 ${2:-cosine}"
  $py -m training.ablation judge "$out/$1" --schedule "${2:-cosine}" --per-class "${PER_CLASS:-100}" --threads 2 \
      | cut -c1-300
}

for row in ${ROWS:-b1 b0.5 b0.25 shift}; do
  case $row in
    b*) train "$row" --set "input_scale=${row#b}"; judge "$row" ;;
    shift) train shift --set "train_schedule=$shift_schedule"; judge shift "$shift_schedule"; judge shift ;;
  esac
done
stage table
$py -m training.ablation table "$out" --sheets models/ablation
