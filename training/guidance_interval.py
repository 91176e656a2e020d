"""Guidance in a limited interval of t (Kynkäänniemi et al. 2024), judged against the model's current default.

    /usr/bin/python3 -m training.guidance_interval run runs/glyph-guidance --model runs/glyph-256/glyph-256.onnx \\
        --steps 20 --configs 2@0,1 2@0,0.6 4@0,0.6 3@0.1,0.7 4@0.2,1
    /usr/bin/python3 -m training.guidance_interval report runs/glyph-guidance
    /usr/bin/python3 -m training.guidance_interval apply runs/glyph-guidance --files models/glyph-768.onnx models/glyph-1024.onnx

A configuration W@LOW,HIGH guides with weight W the steps whose t (1 = noise, 0 = the image) lies in [LOW, HIGH] and
leaves the others unguided (the C# sampler's GuidanceInterval, --guidance-interval). run: for each configuration, the CLI
(the service's sampler; the model's default sampler and steps, or --sampler and --steps) makes one image of every class at one seed (--per-class
for more), the same seeds for all, and the glyph judge scores them (training.glyph_judge.judge_folder_paired): accuracy,
FD to the held-out faces' renders, each image's verdict and its features, so that every configuration is compared with
the first (the baseline, the model's default: W@0,1) image by image. report: the table, each row's accuracy difference
and FD ratio against the baseline with paired standard errors. apply: writes the chosen configuration into model files
(rin.default_guidance, rin.guidance_interval).

The rule (choose): a configuration replaces the baseline only if it is no worse on either measure and better on at least
one, each by one paired standard error (accuracy difference + SE >= 0 and FD ratio - SE <= 1; accuracy difference - SE
> 0 or FD ratio + SE < 1). Else the baseline stays. Of those that qualify, the cheapest one whose accuracy is within one
paired standard error of the most accurate's (its images against the most accurate one's, image by image), cheapest
meaning the fewest network rows an image costs (network_rows: a guided step runs the class and the null class, and the
null class stops once t is below the interval, as the C# sampler's SampleRow.NetworkRows); ties go to the more accurate.
Differences inside one error are noise, the saved rows are not.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from .sampler_table import generate_and_judge, paired_difference, paired_fd_ratio


def network_rows(guidance: float, low: float, steps: int) -> int:
    """Rows one image costs over its steps: 1 a step, plus the null class while guided and t (step i of n at
    t = 1 - i/n, in double as RowKernel.TimeOf) is not yet below low; the C# sampler's SampleRow.NetworkRows summed."""
    if guidance <= 0:
        return steps
    return steps + sum(1 for i in range(steps) if max(1.0 - i / steps, 0.0) >= low)


def parse_config(text: str) -> dict:
    """'W@LOW,HIGH' (or 'W': every step) as dict(guidance, low, high, label)."""
    from .export import parse_interval
    weight, _, interval = text.partition("@")
    low, high = parse_interval(interval) if interval else (0.0, 1.0)
    w = float(weight)
    if not w >= 0:
        raise ValueError(f"'{text}': the weight must be a number >= 0")
    return dict(guidance=w, low=low, high=high, label=f"{w:g}@{low:g},{high:g}")


def features_path(out: str, label: str) -> str:
    return os.path.join(out, f"{label}.features.pt")


def run(model: str, out: str, configs: list[dict], per_class: int, seed: int, threads: int, sampler: list[str],
        steps: int) -> None:
    os.makedirs(out, exist_ok=True)
    rows_path = os.path.join(out, "rows.jsonl")
    done = set()
    if os.path.exists(rows_path):
        with open(rows_path) as f:
            done = {r["label"] for r in map(json.loads, f)}
    for c in configs:
        if c["label"] in done:
            continue
        figures = generate_and_judge(
            os.path.join(out, c["label"]), features_path(out, c["label"]), "glyph", per_class,
            ["--model", model, "--seed", str(seed), "--guidance", f"{c['guidance']:g}",
             "--guidance-interval", f"{c['low']:g},{c['high']:g}", "--threads", str(threads), *sampler])
        row = dict(model=os.path.basename(model), **c, steps=steps,
                   network_rows=network_rows(c["guidance"], c["low"], steps), **figures)
        with open(rows_path, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{c['label']:14s} accuracy {row['accuracy']:.4f} ± {row['accuracy_se']:.4f}, FD {row['fd']:.3f} ± "
              f"{row['fd_se']:.3f} (real {row['real_fd']:.3f})", flush=True)


def compared(out: str) -> list[dict]:
    """The rows of rows.jsonl, the first being the baseline, each with its paired accuracy difference and FD ratio."""
    with open(os.path.join(out, "rows.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    base = rows[0]
    base_features = torch.load(features_path(out, base["label"]))
    for r in rows:
        r["acc_diff"], r["acc_diff_se"] = paired_difference(r["correct"], base["correct"]) if r is not base else (0.0, 0.0)
        if r is base:
            r["fd_ratio"], r["fd_ratio_se"] = 1.0, 0.0
        else:
            r["fd_ratio"], r["fd_ratio_se"] = paired_fd_ratio(torch.load(features_path(out, r["label"]))["features"],
                                                              base_features["features"], base_features["reference"])
    return rows


# Comparisons against a bound hold within rounding: a difference of exactly one standard error (three images broken and
# one fixed give mean -2/n and SE 2/n) sums to -9e-19 in floating point, and must count as within the error.
ROUNDING = 1e-12


def choose(rows: list[dict]) -> dict:
    """The module's rule: of the Pareto improvements on the baseline (rows[0]) by one paired standard error, the one with
    the fewest network rows among those within one paired error of the most accurate (ties: the more accurate); else the
    baseline."""
    def better(r):
        no_worse = r["acc_diff"] + r["acc_diff_se"] >= -ROUNDING and r["fd_ratio"] - r["fd_ratio_se"] <= 1 + ROUNDING
        gains = r["acc_diff"] - r["acc_diff_se"] > ROUNDING or r["fd_ratio"] + r["fd_ratio_se"] < 1 - ROUNDING
        return no_worse and gains
    winners = [r for r in rows[1:] if better(r)]
    if not winners:
        return rows[0]
    best = max(winners, key=lambda r: (r["accuracy"], -r["fd"]))
    ties = [r for r in winners if sum(paired_difference(r["correct"], best["correct"])) >= -ROUNDING]  # best: 0 + 0
    return min(ties, key=lambda r: (r["network_rows"], -r["accuracy"], r["fd"]))


def report(out: str) -> str:
    rows = compared(out)
    lines = ["| guidance | interval of t | network rows an image | accuracy | vs baseline (paired) | FD (real floor) | "
             "FD / baseline (paired) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['guidance']:g} | [{r['low']:g}, {r['high']:g}] | {r['network_rows']} | {100 * r['accuracy']:.1f} ± "
                     f"{100 * r['accuracy_se']:.1f} % | {100 * r['acc_diff']:+.1f} ± {100 * r['acc_diff_se']:.1f} | "
                     f"{r['fd']:.3f} ± {r['fd_se']:.3f} ({r['real_fd']:.3f}) | {r['fd_ratio']:.2f} ± {r['fd_ratio_se']:.2f} |")
    best = choose(rows)
    lines += ["", f"Chosen ({len(rows[0]['correct'])} images a row, {rows[0]['steps']} steps; the first row is the "
                  f"baseline): guidance "
                  f"{best['guidance']:g} on t in [{best['low']:g}, {best['high']:g}]."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "report", "apply"])
    ap.add_argument("out", nargs="?", default="runs/glyph-guidance")
    ap.add_argument("--model", default="runs/glyph-256/glyph-256.onnx")
    ap.add_argument("--configs", nargs="*", default=[], help="run: W@LOW,HIGH ..., the baseline first")
    ap.add_argument("--per-class", type=int, default=1)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sampler", help="run: the sampler (default: the model's rin.default_sampler, else ddim)")
    ap.add_argument("--steps", type=int, help="run: the steps (default: the model's rin.default_steps, else 50)")
    ap.add_argument("--files", nargs="*", default=[], help="apply: the model files that take the chosen configuration")
    args = ap.parse_args(argv)
    if args.command == "run":
        try:
            configs = [parse_config(c) for c in args.configs]
        except ValueError as e:
            print(f"error: --configs: {e}", file=sys.stderr)
            return 2
        sampler = [*(["--sampler", args.sampler] if args.sampler else []), *(["--steps", str(args.steps)] if args.steps else [])]
        if args.steps:
            steps = args.steps
        else:
            from .export import read_metadata
            steps = int(read_metadata(args.model).get("rin.default_steps", 50))
        run(args.model, args.out, configs, args.per_class, args.seed, args.threads, sampler, steps)
    elif args.command == "apply":
        from .export import annotate
        best = choose(compared(args.out))
        meta = {"rin.default_guidance": f"{best['guidance']:g}", "rin.guidance_interval": f"{best['low']:g},{best['high']:g}"}
        for path in args.files:
            annotate(path, meta)
            print(f"{path}: " + ", ".join(f"{k} = {v}" for k, v in meta.items()))
    else:
        print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
