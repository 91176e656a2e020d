"""The input-scaling ablation (issue 17): judge each row's run and assemble the table.

    training/ablate_input_scale.sh                      # trains and judges every row, then prints the table
    /usr/bin/python3 -m training.ablation judge runs/ablation-128/b0.5 [--schedule cosine] [--per-class 100]
    /usr/bin/python3 -m training.ablation table runs/ablation-128 [--sheets models/ablation]

`judge` scores a run's EMA weights with the trainer's classifier (training.classifier.judge_model:
class accuracy, FD to the held-out test images beside the real floor, blockiness), unguided, so the
figures measure what the training learned rather than what guidance adds. It writes judge-<schedule>.json
and a sample sheet (the first 8 samples of each class, one row per class) into the run folder.
`table` reads every row's summary.json and judge-*.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import time

import torch

from .classifier import judge_model
from .export import model_from_checkpoint
from .train import save_grid

SHEET_PER_CLASS = 8


def sheet_path(run: str, schedule: str) -> str:
    return os.path.join(run, "sheet-" + schedule.replace("@", "-").replace(",", "_") + ".png")


def judge_run(run: str, schedule: str, per_class: int, device: str = "cpu") -> dict:
    model, state = model_from_checkpoint(os.path.join(run, "ckpt.pt"))
    model.to(device)
    cfg = state["config"]
    start = time.time()
    r = judge_model(model, cfg, per_class=per_class, guidance=0.0, schedule=schedule, keep_per_class=SHEET_PER_CLASS)
    save_grid(r.pop("images"), sheet_path(run, schedule), nrow=SHEET_PER_CLASS)
    r.update(judge_minutes=(time.time() - start) / 60, judge_device=device, train_schedule=cfg["train_schedule"], input_scale=cfg["input_scale"])
    with open(os.path.join(run, f"judge-{schedule}.json"), "w") as f:
        json.dump(r, f, indent=2)
    return r


def rows(folder: str) -> list[dict]:
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "*", "judge-*.json"))):
        run = os.path.dirname(path)
        with open(path) as f:
            judged = json.load(f)
        with open(os.path.join(run, "summary.json")) as f:
            summary = json.load(f)
        out.append(dict(row=os.path.basename(run), sheet=sheet_path(run, judged["schedule"]),
                        **judged, **{k: summary[k] for k in ("steps", "samples_seen", "minutes", "final_loss")}))
    order = {"b1": 0, "b0.5": 1, "b0.25": 2}
    return sorted(out, key=lambda r: (order.get(r["row"], 9), r["row"], r["schedule"]))


def table(folder: str, sheets: str | None) -> str:
    lines = ["| row | b | training schedule | inference schedule | steps x batch (minutes) | final loss | "
             "class accuracy (real) | FD (real floor, ratio) | blockiness (real) | sheet |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows(folder):
        sheet = os.path.basename(r["sheet"])
        if sheets:
            os.makedirs(sheets, exist_ok=True)
            sheet = f"{r['row']}-{sheet}"
            shutil.copyfile(r["sheet"], os.path.join(sheets, sheet))
        lines.append(
            f"| {r['row']} | {r['input_scale']:g} | `{r['train_schedule']}` | `{r['schedule']}` | "
            f"{r['steps']:,} x {r['samples_seen'] // max(1, r['steps'])} ({r['minutes']:.0f}) | {r['final_loss']:.4f} | "
            f"**{100 * r['accuracy']:.1f} %** ({100 * r['real_accuracy']:.1f} %) | "
            f"{r['fd']:.3f} ({r['real_fd']:.3f}, **{r['fd'] / r['real_fd']:.2f}x**) | "
            f"{r['blockiness']:.3f} ({r['real_blockiness']:.3f}) | {sheet} |")
    return "\n".join(lines)


def compare(folder: str, out: str, scale: float = 0.5) -> list[str]:
    """Every row's cosine-schedule sheet side by side (in the table's order), scaled down: one image."""
    from PIL import Image
    runs = [r for r in rows(folder) if r["schedule"] == "cosine"]
    sheets = [Image.open(r["sheet"]).convert("L") for r in runs]
    w, h = (int(v * scale) for v in sheets[0].size)
    canvas = Image.new("L", (len(sheets) * (w + 10) - 10, h), 255)
    for i, sheet in enumerate(sheets):
        canvas.paste(sheet.resize((w, h), Image.LANCZOS), (i * (w + 10), 0))
    canvas.save(out, optimize=True)
    return [r["row"] for r in runs]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    j = sub.add_parser("judge", help="judge one run folder (its ckpt.pt)")
    j.add_argument("run")
    j.add_argument("--schedule", default="cosine", help="the inference schedule (default: the service's, cosine)")
    j.add_argument("--per-class", type=int, default=100)
    j.add_argument("--threads", type=int, default=0)
    j.add_argument("--device", default="cpu", help="where to sample (cpu, cuda)")
    t = sub.add_parser("table", help="print the Markdown table of every judged row under FOLDER")
    t.add_argument("folder")
    t.add_argument("--sheets", help="copy each row's sample sheet into this folder")
    t.add_argument("--compare", help="write every row's sheet side by side, half size, to this PNG")
    args = ap.parse_args(argv)
    if args.command == "judge":
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(judge_run(args.run, args.schedule, args.per_class, args.device)))
    else:
        print(table(args.folder, args.sheets))
        if args.compare:
            print(f"{args.compare}: rows {', '.join(compare(args.folder, args.compare))}, left to right")
    return 0


if __name__ == "__main__":
    sys.exit(main())
