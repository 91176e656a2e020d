#!/usr/bin/env bash
# Trains and exports the CPU-trained models that ship in models/ (see models/MODELS.md).
# Run from the repo root on a 2-core Debian 12 machine; about 2 hours in all.
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE
py=/usr/bin/python3
stage() { echo "== $(date -u +%H:%M:%S) $*"; }

if [ "${SKIP_64:-0}" != 1 ]; then
  stage "64 px, stage 1 (eps prediction)"
  $py -m training.train --config training/configs/fmnist-64-stage1-eps.json --threads 2
  stage "64 px, stage 2 (x prediction)"
  $py -m training.train --config training/configs/fmnist-64.json --threads 2
fi
stage "export 64 px"
$py -m training.export runs/fmnist-64/ckpt.pt models/fmnist-64.onnx --force

for res in 512 768 1024; do   # each starts from the 64 px trunk
  stage "$res px"
  $py -m training.train --config training/configs/fmnist-$res.json --threads 2
done

for res in 64 512 768 1024; do
  stage "judge and export $res px"
  $py -m training.export runs/fmnist-$res/ckpt.pt models/fmnist-$res.onnx --judge --force
done
stage done
