# Sourced by training/train_cpu_glyphs.sh and training/continue_cpu_glyphs.sh (needs the Release build of
# src/RinServe.Cli): images MODEL DIR EVERY SEED [more CLI options] writes the C# sampler's images for the judge.
cli=src/RinServe.Cli/bin/Release/net10.0/RinServe.Cli.dll
gen() { dotnet "$cli" "$@" >/dev/null 2>&1; }
# One image of every every-th class at one seed, into dir as s-c<class>-0.png (what glyph_judge folder reads): all 284
# in one CLI process (one batch: about 5 GB at 768 px, 9 GB at 1024) when every is 1, else a process per class.
images() {  # model dir every seed [more CLI options]
  local model=$1 dir=$2 every=$3 seed=$4; shift 4
  rm -rf "$dir"
  if [ "$every" = 1 ]; then
    gen --model "$model" --class all --seed "$seed" --threads 2 --out "$dir/s.png" "$@"
    for f in "$dir"/s-c*.png; do mv "$f" "${f%.png}-0.png"; done
  else
    for c in $(seq 0 "$every" 283); do gen --model "$model" --class "$c" --seed "$seed" --threads 2 \
        --out "$dir/s-c$c-0.png" "$@"; done
  fi
}
