#!/usr/bin/env bash
# One CPU continuation of the glyph trunk, and everything models/MODELS.md reports after it:
#   FROM=runs/glyph-256-ft16/ckpt.pt RUN=runs/glyph-256-ft17 MINUTES=115 training/continue_cpu_glyphs.sh
# 1. keeps the images of the files shipped now (runs/glyph-R/judge -> runs/glyph-R/judge-before), for the paired change;
# 2. trains RUN from FROM's EMA weights for MINUTES (the trunk config, the shared marks; a fresh optimizer, lr 1.5e-3
#    warmed up over 100 steps, as every continuation since the third); OVERSAMPLE=GROUP@k draws that group's images k
#    times as often (training.train's oversample: the fourteenth drew marked capitals twice as often); WAIT=PID instead
#    waits for a run already training into RUN;
#    (a box that lost runs/ has none: after the training it makes step 1's images from the shipped files);
# 3. the judge stage of train_cpu_glyphs.sh: the sweep at weight 2 over all 284 classes, the last sampler table's
#    choice, the intervals 2@0.2,1 and 2@0.4,1, the figures at 768 and 1024 px written into models/glyph-*.onnx;
# 4. the slim trunk (training/checkpoints/glyph-256-trunk.pt), the class-gap probe, the sample sheet and class 207's
#    image (docs/glyph-207-768.png);
# 5. the paired change at 768 and 1024 px against step 1's images (training.glyph_judge paired).
# The judge stage takes about 13 minutes here after the training. Run anything else beside it under nice 19.
set -euo pipefail
export OMP_WAIT_POLICY=PASSIVE
py=${PYTHON:-/usr/bin/python3}
run=${RUN:?RUN=runs/glyph-256-ftN, the folder to train into}
stage() { echo "== $(date -u +%H:%M:%S) $*"; }

for res in 768 1024; do
  if [ -d "runs/glyph-$res/judge" ]; then
    rm -rf "runs/glyph-$res/judge-before"
    cp -r "runs/glyph-$res/judge" "runs/glyph-$res/judge-before"
  fi
done

if [ -n "${WAIT:-}" ]; then
  stage "waiting for the run in $run (pid $WAIT)"
  while kill -0 "$WAIT" 2>/dev/null; do sleep 20; done
else
  from=${FROM:?FROM=runs/glyph-256-ftN/ckpt.pt, the checkpoint to continue (else training/checkpoints/glyph-256-trunk.pt)}
  stage "training $run from $from for ${MINUTES:?MINUTES of training} minutes"
  $py -m training.train --config training/configs/glyph-256-trunk.json --threads 2 --set lr=0.0015 \
      --set warmup_steps=100 --set "out_dir=$run" --set "name=$(basename "$run")" --set "init_from=$from" \
      --set "max_minutes=$MINUTES" ${OVERSAMPLE:+--set "oversample=$OVERSAMPLE"}
fi
stage "training done"; cat "$run/summary.json"; echo

# A box that lost runs/ has no earlier judge folder: the shipped files' own images (their default request, the judge
# stage's classes and seed) stand in for it, made before the judge stage overwrites the files.
. training/glyph_images.sh
dotnet build src/RinServe.Cli -c Release --nologo -v q >/dev/null
for res in 768 1024; do
  if [ ! -d "runs/glyph-$res/judge-before" ]; then
    stage "$res px: the shipped file's images, for the paired change"
    [ "$res" = 768 ] && every=1 || every=8
    images "models/glyph-$res.onnx" "runs/glyph-$res/judge-before" "$every" 1000
  fi
done
# The last sampler table's choice when its folder survived, else the choice the shipped files carry.
table=shipped; [ -f runs/glyph-sampler-table/rows.jsonl ] && table=keep

STAGE=judge RUN=$run SWEEP="2" SWEEP_STEP=1 SAMPLER_TABLE=$table INTERVALS="2@0.2,1 2@0.4,1" training/train_cpu_glyphs.sh

stage "slim trunk, class gap, sheet, class 207"
$py -m training.slim --half "$run/ckpt.pt" training/checkpoints/glyph-256-trunk.pt
$py -m training.glyph_judge class-gap training/checkpoints/glyph-256-trunk.pt
$py -m training.sheet runs/glyph-768/judge models/glyph-768-samples.png --cell 64 --columns 20
cp runs/glyph-768/judge/s-c207-0.png docs/glyph-207-768.png

for res in 768 1024; do
  if [ -d "runs/glyph-$res/judge-before" ]; then
    stage "$res px, paired against the files shipped before"
    $py -m training.glyph_judge paired "runs/glyph-$res/judge-before" "runs/glyph-$res/judge"
  fi
done
stage done
