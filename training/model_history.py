"""Every committed version of a shipped model, from the figures in its own metadata.

    python3 -m training.model_history models/glyph-768.onnx

One row per commit that changed the file (oldest first): its judged figures (`rin.class_accuracy`, `rin.fd` beside
`rin.fd_real`, `rin.edge_width` beside `rin.edge_width_real`) and the default request they were judged at. The
figures are what `training.export` wrote into that file, so the table needs no record of its own. `rin.train_steps`
counts the whole chain of continuations only since the checkpoints carry `steps_before` (models/MODELS.md).
"""
from __future__ import annotations

import argparse
import os
import subprocess
from decimal import ROUND_HALF_UP, Decimal

import onnx

COLUMNS = ("commit", "date", "train steps", "accuracy", "FD (x floor)", "edge width, px (x real)", "guidance",
           "sampler")


def _git(path: str, *args: str) -> bytes:
    # Run in the file's own folder, so that `commit:./name` names it without finding the repository's top.
    return subprocess.run(["git", *args], cwd=os.path.dirname(os.path.abspath(path)), capture_output=True,
                          check=True).stdout


def versions(path: str) -> list[tuple[str, str]]:
    """(commit, ISO date) of every commit that changed `path`, oldest first."""
    log = _git(path, "log", "--format=%h %as", "--", os.path.basename(path)).decode()
    return [tuple(line.split(" ", 1)) for line in reversed(log.splitlines())]


def metadata_at(path: str, commit: str) -> dict:
    blob = _git(path, "show", f"{commit}:./{os.path.basename(path)}")
    return {p.key: p.value for p in onnx.load_model_from_string(blob).metadata_props}


def _ratio(value: str | None, floor: str | None, digits: int) -> str:
    if value is None:
        return "-"
    v = float(value)
    if floor is None or float(floor) == 0:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} ({v / float(floor):.2f}x)"


def _percent(fraction: str) -> str:
    # Decimal, so that a stored 0.6725 (191 of 284) reads 67.3 as the export printed it, not float's 67.2.
    return str((Decimal(fraction) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def row(commit: str, date: str, meta: dict) -> tuple[str, ...]:
    accuracy = meta.get("rin.class_accuracy")
    guidance = meta.get("rin.default_guidance", "-")
    interval = meta.get("rin.guidance_interval")
    if interval:
        guidance += " on [" + interval.replace(",", ", ") + "]"
    return (commit, date, meta.get("rin.train_steps", "-"),
            "-" if accuracy is None else f"{_percent(accuracy)} %",
            _ratio(meta.get("rin.fd"), meta.get("rin.fd_real"), 2),
            _ratio(meta.get("rin.edge_width"), meta.get("rin.edge_width_real"), 2),
            guidance,
            f"{meta.get('rin.default_sampler', 'ddim')} {meta.get('rin.default_steps', '50')}")


def table(path: str) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for commit, date in versions(path):
        lines.append("| " + " | ".join(row(commit, date, metadata_at(path, commit))) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a committed .onnx file")
    args = ap.parse_args(argv)
    print(table(args.model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
