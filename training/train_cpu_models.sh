#!/usr/bin/env bash
# Trains and exports the models that ship in models/ (see models/MODELS.md), on a 2-core Debian 12
# machine: one 32 px trunk, then the 64, 512, 768 and 1024 px models carried from it with no further
# training (training.carry), each judged and exported. Resumable: rerun to continue the trunk from
# runs/fmnist-32-trunk/ckpt.pt (raise max_minutes with --set to train longer).
#   TRUNK_ARGS="--set max_minutes=240" training/train_cpu_models.sh
#   SKIP_TRUNK=1 training/train_cpu_models.sh          # judge and export only
#   PER_CLASS_HIGH=100 ...                             # samples per class judged at 512-1024 px
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE
py=/usr/bin/python3
stage() { echo "== $(date -u +%H:%M:%S) $*"; }
trunk=runs/fmnist-32-trunk/ckpt.pt

if [ "${SKIP_TRUNK:-0}" != 1 ]; then
  stage "32 px trunk"
  # shellcheck disable=SC2086
  $py -m training.train --config training/configs/fmnist-32-trunk.json --threads 2 ${TRUNK_ARGS:-}
fi

for res in 64 512 768 1024; do
  $py -m training.carry "$trunk" --resolution "$res" --lattice 28 --out "runs/fmnist-$res/carried.pt"
done

# The default guidance weight is chosen once, by the sweep at 64 px: every model is the same trunk.
stage "judge (guidance sweep) and export 64 px"
$py -m training.export runs/fmnist-64/carried.pt models/fmnist-64.onnx --judge ${FORCE:+--force} | tee runs/fmnist-64/judge.log
w=$(grep -o '"guidance": [0-9.]*' runs/fmnist-64/judge.log | head -1 | awk '{print $2}')
for res in 512 768 1024; do
  stage "judge and export $res px (guidance $w)"
  $py -m training.export "runs/fmnist-$res/carried.pt" "models/fmnist-$res.onnx" --judge --guidance "$w" \
      --samples-per-class "${PER_CLASS_HIGH:-100}" ${FORCE:+--force} | tee "runs/fmnist-$res/judge.log"
done
stage done
