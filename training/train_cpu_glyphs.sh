#!/usr/bin/env bash
# The glyph family on a CPU, end to end: fonts, data set, judge, the 256 px trunk, the guidance sweep, the
# carried models and their figures through the C# sampler (the service's own), as models/MODELS.md reports.
#   training/train_cpu_glyphs.sh                 # about 2.5 hours on the project's 2-core box
#   MINUTES=10 PER_CLASS_STEP=20 training/train_cpu_glyphs.sh   # a quick look (every 20th class judged)
# STAGE=judge skips to the sweep and the figures (the trunk's checkpoint must exist). SWEEP="1 2 3" SWEEP_STEP=1 sweeps
# those weights over all 284 classes (default: 0 2 5 8 over every 12th). The sampler table is the longest stage on
# a slow box: TABLE_SEEDS=1 halves it (one seed a class, 284 images a row, default 2); SAMPLER_TABLE=keep skips it
# and writes the last table's choice (runs/glyph-sampler-table, judged on an earlier trunk) into the new files;
# SAMPLER_TABLE=shipped skips it and writes the choice the shipped models/glyph-768.onnx carries now (for a box that
# lost runs/); SAMPLER_TABLE=0 skips it and leaves the files without one (the service then runs DDIM 50).
# INTERVALS="W@LOW,HIGH ..." also judges guidance on intervals of t against the chosen weight on every step, and writes
# the winner (training.guidance_interval's rule) into the files; unset, they guide every step.
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
py=${PYTHON:-/usr/bin/python3}
run=${RUN:-runs/glyph-256-trunk}   # RUN=runs/glyph-256-ft: a continuation's checkpoint (training.train --set init_from=...)
step=${PER_CLASS_STEP:-1}          # judge every step-th class at 768 px (1: all 284)
step1024=${PER_CLASS_STEP_1024:-8} # and at 1024 px (8: 36 classes; all 284 cost about 20 minutes here)
stage() { echo "== $(date -u +%H:%M:%S) $*"; }
. training/glyph_images.sh  # images MODEL DIR EVERY SEED [CLI options]: the C# sampler's images for the judge

if [ "${STAGE:-all}" = all ]; then
  training/glyph_fonts.sh
  stage "data set at 256 px"; $py -m training.glyphs build --resolution 256 && $py -m training.glyphs check --resolution 256
  [ -f training/judge/glyph-cnn.pth ] || { stage "judge"; $py -m training.glyph_judge train --epochs 3; }
  stage "trunk"; $py -m training.train --config training/configs/glyph-256-trunk.json --threads 2 \
      ${MINUTES:+--set "max_minutes=$MINUTES"}
fi
dotnet build src/RinServe.Cli -c Release --nologo -v q >/dev/null
mkdir -p runs/glyph-256 runs/glyph-768 runs/glyph-1024

sweep_step=${SWEEP_STEP:-12}       # the sweep judges every sweep_step-th class (1: all 284, one process per weight)
stage "guidance sweep at 256 px (one class in ${sweep_step}, C# sampler)"
$py -m training.export "$run/ckpt.pt" runs/glyph-256/glyph-256.onnx --force >/dev/null
for w in ${SWEEP:-0 2 5 8}; do
  images runs/glyph-256/glyph-256.onnx "runs/glyph-256/sweep-$w" "$sweep_step" 7 --guidance "$w"
  echo "guidance $w: $($py -m training.glyph_judge folder "runs/glyph-256/sweep-$w" --record "runs/glyph-256/sweep-$w.json" | head -1)"
done | tee runs/glyph-256/sweep.txt
# training.export's rule: the most accurate weight whose FD is within 3x the floor, else the smallest FD.
guidance=${GUIDANCE:-$($py -c "
import json, sys
from training.export import choose_guidance
rows = [dict(json.load(open(f'runs/glyph-256/sweep-{w}.json')), guidance=float(w)) for w in sys.argv[1:]]
print(f'{choose_guidance(rows):g}')" ${SWEEP:-0 2 5 8})}
# SAMPLER_TABLE=shipped: keep the shipped file, whose choice the new ones take, before the export below replaces it
if [ "${SAMPLER_TABLE:-1}" = shipped ]; then cp models/glyph-768.onnx runs/glyph-768/shipped.onnx; fi
stage "default guidance $guidance; carry and export"
for res in 768 1024; do
  $py -m training.carry "$run/ckpt.pt" --resolution "$res" --out "runs/glyph-$res/carried.pt"
  $py -m training.export "runs/glyph-$res/carried.pt" "models/glyph-$res.onnx" --force --guidance "$guidance"
done

if [ "${SAMPLER_TABLE:-1}" = 1 ]; then
  stage "sampler and steps at 256 px: training.sampler_table, all 284 classes, ${TABLE_SEEDS:-2} seeds each, judged"
  table=runs/glyph-sampler-table
  rm -rf "$table"
  $py -m training.sampler_table run "$table" --judge glyph --guidance "$guidance" --model runs/glyph-256/glyph-256.onnx \
      --samplers ddim --steps "${DDIM_STEPS:-10,20,50}" --per-class "${TABLE_SEEDS:-2}" 2>/dev/null
  $py -m training.sampler_table run "$table" --judge glyph --guidance "$guidance" --model runs/glyph-256/glyph-256.onnx \
      --samplers dpmpp-2m --steps "${DPM_STEPS:-8,10,15,20}" --per-class "${TABLE_SEEDS:-2}" 2>/dev/null
  $py -m training.sampler_table report "$table" --plot models/glyph-sampler-table.png | tee "$table/table.md"
  $py -m training.sampler_table apply "$table" --files models/glyph-768.onnx models/glyph-1024.onnx
elif [ "${SAMPLER_TABLE}" = keep ]; then
  stage "sampler and steps: the last table's choice (runs/glyph-sampler-table), not re-run"
  $py -m training.sampler_table apply runs/glyph-sampler-table --files models/glyph-768.onnx models/glyph-1024.onnx
elif [ "${SAMPLER_TABLE}" = shipped ]; then
  stage "sampler and steps: the shipped files' choice, not re-run"
  $py -m training.sampler_table apply --from runs/glyph-768/shipped.onnx --files models/glyph-768.onnx models/glyph-1024.onnx
fi

if [ -n "${INTERVALS:-}" ]; then
  # INTERVALS="3@0.4,1 4@0.5,1": guidance weights on intervals of t, each judged against the default (weight $guidance on
  # every step), paired, at 256 px with the files' sampler and steps; the rule of training.guidance_interval picks one.
  stage "guidance intervals at 256 px: training.guidance_interval, all 284 classes, against ${guidance}@0,1"
  gi=runs/glyph-guidance
  rm -rf "$gi"
  read -r gi_sampler gi_steps < <($py -c "
from training.export import read_metadata
m = read_metadata('models/glyph-768.onnx')
print(m.get('rin.default_sampler', 'ddim'), m.get('rin.default_steps', 50))")
  $py -m training.guidance_interval run "$gi" --model runs/glyph-256/glyph-256.onnx --sampler "$gi_sampler" --steps "$gi_steps" \
      --configs "${guidance}@0,1" $INTERVALS 2>/dev/null
  $py -m training.guidance_interval report "$gi" | tee "$gi/table.md"
  $py -m training.guidance_interval apply "$gi" --files models/glyph-768.onnx models/glyph-1024.onnx
fi

for res in 768 1024; do
  [ "$res" = 1024 ] && step=$step1024
  stage "$res px: the default request (the model's sampler, steps and guidance) for every ${step}th class, C# sampler, judged"
  images "models/glyph-$res.onnx" "runs/glyph-$res/judge" "$step" 1000
  $py -m training.glyph_judge folder "runs/glyph-$res/judge" --record "runs/glyph-$res/judged-cli.json" \
      --annotate "models/glyph-$res.onnx"
  $py -m training.glyph_judge marks "runs/glyph-$res/judge" | tee "runs/glyph-$res/marks.md"
done
stage done
