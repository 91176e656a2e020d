"""Issue 24's quality-against-cost table: each sampler at each step count, judged on images the C# sampler made.

    /usr/bin/python3 -m training.sampler_table run --model models/fmnist-64.onnx --out runs/sampler-table \\
        --samplers ddim,dpmpp-2m --steps 4,6,8,10,15,20,50 --per-class 100
    dotnet bench/RinServe.Bench/bin/Release/net10.0/RinServe.Bench.dll --sampler-times --model models/fmnist-64.onnx \\
        --model models/fmnist-1024.onnx --rounds 5 --threads 2 > runs/sampler-table/times.jsonl
    /usr/bin/python3 -m training.sampler_table report runs/sampler-table --plot models/sampler-table.png
    /usr/bin/python3 -m training.sampler_table apply runs/sampler-table --files models/fmnist-*.onnx

The glyph family's table (--judge glyph: the glyph judge, training/glyph_judge.py, grouped classes; FD against the
held-out faces' renders), on the 256 px trunk the family is carried from:
    /usr/bin/python3 -m training.sampler_table run runs/glyph-sampler-table --judge glyph --guidance 5 \
        --model runs/glyph-256/glyph-256.onnx --samplers ddim,dpmpp-2m --steps 8,10,15,20,50 --per-class 2
    /usr/bin/python3 -m training.sampler_table report runs/glyph-sampler-table --plot models/glyph-sampler-table.png
    /usr/bin/python3 -m training.sampler_table apply runs/glyph-sampler-table --files models/glyph-*.onnx

run: for every (sampler, steps), the CLI (the service's sampler, Release build) makes per-class images of every class
with the same seeds for every configuration (so differences between rows are paired, not sampling noise alone) at the
model's default guidance (or --guidance), and the judge (--judge: fmnist, training/classifier.py; or glyph) scores them: class accuracy with its
standard error sqrt(p (1 - p) / n), and the Fréchet distance of its features to the held-out test images with a
bootstrap standard error (200 resamples of the generated images), beside the real-image floor. Rows go to rows.jsonl as
they finish, so a run can stop and resume; each row's judge features go beside it (<sampler>-<steps>.features.pt), so
that report and apply compare each row's FD with the baseline's image by image (a paired bootstrap of the ratio). report: the Markdown table (with the times of --sampler-times), the plot and
the chosen default (choose); apply: writes that choice into model files as rin.default_sampler and rin.default_steps.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

import torch

CLI = "src/RinServe.Cli/bin/Release/net10.0/RinServe.Cli.dll"


def judge_images(folder: str, bootstrap: int = 200, seed: int = 0) -> dict:
    from .classifier import frechet_distance, load_judge, paired_figures, pooled_features, reference, to_judge_input
    from .sheet import load_images
    images, labels = load_images(folder)
    judge = load_judge()
    with torch.no_grad():
        x = to_judge_input(images)
        right = judge(x).argmax(1) == labels
        feats = pooled_features(judge, x)
    real_x, real_y, ref = reference(len(labels) // 10)
    with torch.no_grad():
        xr = to_judge_input(torch.nn.functional.interpolate(real_x.float() / 255, size=images.shape[-2:], mode="bilinear",
                                                            align_corners=False).clamp(0, 1))
        real_fd = frechet_distance(pooled_features(judge, xr), ref)
    return paired_figures(right, feats, ref, real_fd, bootstrap, seed)


def run(model: str, out: str, samplers: list[str], steps: list[int], per_class: int, seed: int, threads: int,
        judge: str = "fmnist", guidance: float | None = None) -> None:
    os.makedirs(out, exist_ok=True)
    rows_path = os.path.join(out, "rows.jsonl")
    done = set()
    if os.path.exists(rows_path):
        with open(rows_path) as f:
            done = {(r["sampler"], r["steps"]) for r in map(json.loads, f)}
    for sampler in samplers:
        for n in steps:
            if (sampler, n) in done:
                continue
            figures = generate_and_judge(
                os.path.join(out, f"{sampler}-{n}"), features_path(out, sampler, n), judge, per_class,
                ["--model", model, "--seed", str(seed), "--sampler", sampler, "--steps", str(n), "--threads", str(threads),
                 *([] if guidance is None else ["--guidance", f"{guidance:g}"])])
            row = dict(model=os.path.basename(model), sampler=sampler, steps=n, judge=judge, **figures)
            with open(rows_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{sampler:9s} {n:3d} steps: accuracy {row['accuracy']:.4f} ± {row['accuracy_se']:.4f}, "
                  f"FD {row['fd']:.3f} ± {row['fd_se']:.3f} (real {row['real_fd']:.3f})", flush=True)


def generate_and_judge(folder: str, features_file: str, judge: str, per_class: int, cli_args: list[str]) -> dict:
    """One row of a paired table: the CLI (the service's sampler, cli_args naming the model and the request) makes
    per_class images of every class into folder, the judge (fmnist or glyph) scores them, their features and the
    reference's Gaussian go to features_file, the images are removed; the figures (accuracy, FD, each image's verdict)."""
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(["dotnet", CLI, *cli_args, "--class", "all", "--n", str(per_class), "--out", os.path.join(folder, "s.png")],
                   check=True, stdout=subprocess.DEVNULL)
    if per_class == 1:   # the CLI names one image per class <name>-c<class>.png; the judges read <name>-c<class>-<i>.png
        for name in os.listdir(folder):
            os.rename(os.path.join(folder, name), os.path.join(folder, name[:-4] + "-0.png"))
    if judge == "glyph":
        from .glyph_judge import judge_folder_paired
        figures = judge_folder_paired(folder)
    else:
        figures = judge_images(folder)
    torch.save(dict(features=figures.pop("features"), reference=figures.pop("reference")), features_file)
    shutil.rmtree(folder)
    return figures


def features_path(out: str, sampler: str, steps: int) -> str:
    """A row's judge features, image by image in the order of its verdicts, and the reference's Gaussian."""
    return os.path.join(out, f"{sampler}-{steps}.features.pt")


def paired_fd_ratio(features: torch.Tensor, base: torch.Tensor, reference, bootstrap: int = 200,
                    seed: int = 0) -> tuple[float, float]:
    """FD(features) / FD(base) to the same reference, with a paired bootstrap standard error: each resample takes the
    same images (seeds and classes) from both rows, so the noise of which images were drawn, common to both, cancels,
    as the paired accuracy difference's does. Each row's own bootstrap error does not cancel it (it measures the
    spread of one FD over draws of images, most of which moves both rows alike)."""
    from .classifier import frechet_distance
    n = len(base)
    assert len(features) == n, "paired rows hold the same images"
    gen = torch.Generator().manual_seed(seed)
    ratios = []
    for _ in range(bootstrap):
        pick = torch.randint(n, (n,), generator=gen)
        ratios.append(frechet_distance(features[pick], reference) / frechet_distance(base[pick], reference))
    mean = sum(ratios) / len(ratios)
    se = math.sqrt(sum((r - mean) ** 2 for r in ratios) / (len(ratios) - 1))
    return frechet_distance(features, reference) / frechet_distance(base, reference), se


def with_paired_fd(rows: list[dict], out: str, baseline: tuple[str, int] = ("ddim", 50)) -> list[dict]:
    """The rows, each with fd_ratio and fd_ratio_se against the baseline (paired_fd_ratio) where both rows' features
    were kept (rows made before 2026-12-06 have none: choose then falls back to each row's own FD error)."""
    base_path = features_path(out, *baseline)
    if not os.path.exists(base_path):
        return rows
    base = torch.load(base_path)
    for r in rows:
        path = features_path(out, r["sampler"], r["steps"])
        if os.path.exists(path):
            r["fd_ratio"], r["fd_ratio_se"] = paired_fd_ratio(torch.load(path)["features"], base["features"], base["reference"])
    return rows


def paired_difference(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and standard error of a - b over the same seeds and classes (paired: each image against its twin)."""
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
    return mean, math.sqrt(var / len(d))


def choose(rows: list[dict], baseline: tuple[str, int] = ("ddim", 50), points: float = 0.015, fd_ratio: float = 1.10) -> dict:
    """The default: the fewest steps (then the best accuracy) that stays inside both bounds by one standard error: its
    accuracy, paired with the baseline's over the same seeds, less one SE of that difference, within `points` of the
    baseline's; its FD over the baseline's plus one SE of that ratio, paired the same way (with_paired_fd), within
    `fd_ratio`; for rows without kept features, its FD plus its own (unpaired bootstrap) SE within `fd_ratio` times the
    baseline's FD."""
    base = next(r for r in rows if (r["sampler"], r["steps"]) == baseline)

    def fd_inside(r):
        if "fd_ratio_se" in r:
            return r["fd_ratio"] + r["fd_ratio_se"] <= fd_ratio
        return r["fd"] + r["fd_se"] <= fd_ratio * base["fd"]

    def inside(r):
        if r is base:   # the yardstick is within its own bounds, however wide its FD's error (few images)
            return True
        diff, se = paired_difference(r["correct"], base["correct"])
        return diff - se >= -points and fd_inside(r)
    return min((r for r in rows if inside(r)), key=lambda r: (r["steps"], -r["accuracy"]))


def report(out: str, plot: str | None, baseline: tuple[str, int] = ("ddim", 50)) -> str:
    with open(os.path.join(out, "rows.jsonl")) as f:
        rows = with_paired_fd([json.loads(line) for line in f], out, baseline)
    times = {}
    times_path = os.path.join(out, "times.jsonl")
    if os.path.exists(times_path):
        with open(times_path) as f:
            for t in map(json.loads, f):
                times[(t["resolution"], t["sampler"], t["steps"])] = t["median_ms"]
    base = next(r for r in rows if (r["sampler"], r["steps"]) == baseline)
    res = sorted({k[0] for k in times})
    head = ("| sampler | steps | network rows | accuracy | vs DDIM-50 (paired) | FD (real floor) | FD / DDIM-50 |"
            + "".join(f" ms/image at {r} px |" for r in res))
    lines = [head, "|" + "---|" * (7 + len(res))]
    for r in sorted(rows, key=lambda r: (r["sampler"], r["steps"])):
        diff, se = paired_difference(r["correct"], base["correct"])
        lines.append(f"| {r['sampler']} | {r['steps']} | {2 * r['steps']} | {100 * r['accuracy']:.1f} ± {100 * r['accuracy_se']:.1f} % | "
                     f"{100 * diff:+.1f} ± {100 * se:.1f} | {r['fd']:.3f} ± {r['fd_se']:.3f} ({r['real_fd']:.3f}) | "
                     + (f"{r['fd_ratio']:.2f} ± {r['fd_ratio_se']:.2f} |" if "fd_ratio_se" in r else f"{r['fd'] / base['fd']:.2f} |")
                     + "".join(f" {times.get((x, r['sampler'], r['steps']), float('nan')):.0f} |" for x in res))
    best = choose(rows, baseline)
    lines.append("")
    lines.append(f"Chosen default (fewest steps within 1.5 points of accuracy and 10 % of the FD of {baseline[0]}-{baseline[1]}, "
                 f"by one standard error, both paired with it over the same images where the FD's features were kept): "
                 f"{best['sampler']}, {best['steps']} steps.")
    table = "\n".join(lines)
    if plot:
        draw(rows, plot, base)
    return table


def draw(rows: list[dict], path: str, base: dict) -> None:
    """Accuracy and FD against network rows per image, one line per sampler (PIL: no plotting library on the box)."""
    from PIL import Image, ImageDraw
    w, h, pad = 900, 420, 60
    img = Image.new("RGB", (2 * w, h), "white")
    d = ImageDraw.Draw(img)
    colors = {"ddim": (31, 119, 180), "ddpm": (214, 39, 40), "ddpm-small": (148, 103, 189), "dpmpp-2m": (44, 160, 44)}
    max_rows = max(2 * r["steps"] for r in rows)
    held_out = "held-out faces" if base.get("judge") == "glyph" else "held-out test images"
    for panel, (key, label) in enumerate([("accuracy", "class accuracy (judge)"), ("fd", f"FD to {held_out}")]):
        x0 = panel * w
        values = [r[key] for r in rows]
        lo, hi = min(values + [base[key]]), max(values + [base[key]])
        lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)

        def px(n, v):
            return (x0 + pad + (math.log(n) - math.log(8)) / (math.log(max_rows) - math.log(8)) * (w - 2 * pad),
                    h - pad - (v - lo) / (hi - lo) * (h - 2 * pad))
        d.rectangle([x0 + pad, pad, x0 + w - pad, h - pad], outline="black")
        d.text((x0 + pad, 20), f"{label} against network rows per image (log), {base['model']}", fill="black")
        for n in (8, 12, 16, 20, 30, 40, 100):
            if n <= max_rows:
                x, _ = px(n, lo)
                d.line([x, h - pad, x, h - pad + 5], fill="black")
                d.text((x - 8, h - pad + 8), str(n), fill="black")
        for v in (lo + (hi - lo) * k / 4 for k in range(5)):
            _, y = px(8, v)
            d.text((x0 + 5, y - 6), f"{100 * v:.1f}%" if key == "accuracy" else f"{v:.2f}", fill="black")
        _, yb = px(8, base[key])
        d.line([x0 + pad, yb, x0 + w - pad, yb], fill=(150, 150, 150))
        d.text((x0 + w - pad - 110, yb - 14), "DDIM-50", fill=(120, 120, 120))
        for k, name in enumerate(sorted({r["sampler"] for r in rows})):
            pts = [px(2 * r["steps"], r[key]) for r in sorted(rows, key=lambda r: r["steps"]) if r["sampler"] == name]
            d.line(pts, fill=colors.get(name, "black"), width=2)
            for x, y in pts:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colors.get(name, "black"))
            d.text((x0 + pad + 10, pad + 8 + 14 * k), name, fill=colors.get(name, "black"))
    img.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "report", "apply"])
    ap.add_argument("out", nargs="?", default="runs/sampler-table")
    ap.add_argument("--model", default="models/fmnist-64.onnx")
    ap.add_argument("--samplers", default="ddim,ddpm,dpmpp-2m")
    ap.add_argument("--steps", default="4,6,8,10,15,20,50")
    ap.add_argument("--per-class", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--judge", choices=["fmnist", "glyph"], default="fmnist")
    ap.add_argument("--guidance", type=float, help="run: the guidance weight (default: the model's own)")
    ap.add_argument("--plot")
    ap.add_argument("--files", nargs="*", default=[], help="apply: the model files that take the chosen default")
    ap.add_argument("--from", dest="source", help="apply: copy the sampler and steps this model file carries instead "
                    "of the table's choice")
    args = ap.parse_args(argv)
    if args.command == "run":
        run(args.model, args.out, args.samplers.split(","), [int(s) for s in args.steps.split(",")], args.per_class,
            args.seed, args.threads, args.judge, args.guidance)
    elif args.command == "apply":
        from .export import annotate, read_metadata
        if args.source:  # the choice a model file carries (a box that lost the table's folder)
            meta = read_metadata(args.source)
            if "rin.default_sampler" not in meta or "rin.default_steps" not in meta:
                ap.error(f"{args.source} carries no rin.default_sampler and rin.default_steps")
            best = dict(sampler=meta["rin.default_sampler"], steps=meta["rin.default_steps"])
        else:
            with open(os.path.join(args.out, "rows.jsonl")) as f:
                best = choose(with_paired_fd([json.loads(line) for line in f], args.out))
        for path in args.files:
            annotate(path, {"rin.default_sampler": best["sampler"], "rin.default_steps": str(best["steps"])})
            print(f"{path}: rin.default_sampler = {best['sampler']}, rin.default_steps = {best['steps']}")
    else:
        print(report(args.out, args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
