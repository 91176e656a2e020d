#!/usr/bin/env bash
# One glyph model trained at its served resolution R on the CPU: the 256 px trunk carried to R with a native output head
# (it predicts every pixel at R instead of enlarging a 256 px prediction), fine-tuned whole on glyphs rendered at R as
# training runs, then exported, its default sampler and steps chosen by the sampler table at R, judged on all 284 classes
# at that default request and its figures written into the model (models/MODELS.md, "Native resolution on the CPU"),
# all under runs/glyph-R-native/ (MODEL=models/glyph-R.onnx to replace the shipped file).
#   training/native_cpu_glyphs.sh                       # R = 768, 92 minutes of training, then the rest (~20 minutes)
#   RES=768 TRUNK=runs/glyph-256-ft3/ckpt.pt MINUTES=92 training/native_cpu_glyphs.sh
#   STAGE=judge training/native_cpu_glyphs.sh           # the export, table and judge of a finished run
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export RINSERVE_GLYPH_FONTS=${RINSERVE_GLYPH_FONTS:-$PWD/data/glyph-fonts}   # training.glyphs pack-fonts
py=${PYTHON:-/usr/bin/python3}
res=${RES:-768}
trunk=${TRUNK:-runs/glyph-256-ft3/ckpt.pt}
run=runs/glyph-$res-native
guidance=${GUIDANCE:-5}     # the trunk's, by the 256 px sweep (train_cpu_glyphs.sh)
model=${MODEL:-$run/glyph-$res.onnx}   # MODEL=models/glyph-$res.onnx to replace the shipped one
stage() { echo "== $(date -u +%H:%M:%S) $*"; }

if [ "${STAGE:-all}" = all ]; then
  mkdir -p "$run"
  stage "carry $trunk to $res px with a native head"
  $py -m training.carry "$trunk" --resolution "$res" --native-head --out "$run/start.pt"
  stage "fine-tune at $res px for ${MINUTES:-92} minutes (batch 32, glyphs rendered as it runs)"
  $py -m training.train --config training/configs/glyph-256-trunk.json --threads 2 --no-resume \
      --set name="glyph-$res-native" --set init_from="$run/start.pt" --set out_dir="$run" \
      --set model.resolution="$res" --set model.patch_size=$((res / 16)) --set model.head_resolution="$res" \
      --set input_scale="$($py -c "print(64 / $res)")" --set max_minutes="${MINUTES:-92}" --set batch_size=32 \
      --set lr=0.001 --set warmup_steps=100 --set data_workers=1 --set sample_every=0 --set ckpt_every=100
fi
dotnet build src/RinServe.Cli -c Release --nologo -v q >/dev/null

stage "export $model (guidance $guidance)"
$py -m training.export "$run/ckpt.pt" "$model" --force --guidance "$guidance"

stage "sampler and steps at $res px: training.sampler_table, all 284 classes, one seed each, judged"
table=runs/glyph-$res-sampler-table
rm -rf "$table"
$py -m training.sampler_table run "$table" --judge glyph --model "$model" --samplers ddim --steps "${DDIM_STEPS:-20,50}" --per-class 1 2>/dev/null
$py -m training.sampler_table run "$table" --judge glyph --model "$model" --samplers dpmpp-2m --steps "${DPM_STEPS:-10,15,20}" --per-class 1 2>/dev/null
$py -m training.sampler_table report "$table" --plot "$run/sampler-table.png" | tee "$table/table.md"
$py -m training.sampler_table apply "$table" --files "$model"

stage "$res px: the default request for all 284 classes (one process, one batch), C# sampler, judged"
rm -rf "$run/judge"
dotnet src/RinServe.Cli/bin/Release/net10.0/RinServe.Cli.dll --model "$model" --class all --seed 1000 --threads 2 \
    --out "$run/judge/s.png" >/dev/null 2>&1
for f in "$run/judge"/s-c*.png; do mv "$f" "${f%.png}-0.png"; done   # the judge reads <name>-c<class>-<i>.png
$py -m training.glyph_judge folder "$run/judge" --record "$run/judged-cli.json" --annotate "$model"
$py -m training.sheet "$run/judge" "$run/samples-cli.png" --cell 64 --columns 20
stage done
