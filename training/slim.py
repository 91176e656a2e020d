"""A checkpoint without its optimizer state: EMA weights, config and progress (what training.carry,
training.export and init_from read), a quarter of the size, to move between machines.

    /usr/bin/python3 -m training.slim runs/fmnist-32-trunk/ckpt.pt data/trunk-cpu.pt [--half]
"""
from __future__ import annotations

import os
import sys

import torch

KEEP = ("ema", "config", "step", "steps_before", "elapsed", "samples_seen")


def slim(src: str, dst: str, half: bool = False) -> dict:
    """half: the weights as float16 (half the bytes, for a transfer limit); readers take them as float32."""
    state = torch.load(src, map_location="cpu")
    out = {k: state[k] for k in KEEP if k in state}
    out["ema"] = {k: v.half() if half and v.is_floating_point() else v.float() for k, v in out["ema"].items()}
    out["history"] = state.get("history", [])[-200:]
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(out, dst + ".tmp")
    os.replace(dst + ".tmp", dst)
    return out


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    half = "--half" in args
    args = [a for a in args if a != "--half"]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = slim(*args, half=half)
    print(f"wrote {args[1]} ({os.path.getsize(args[1]) / 1e6:.1f} MB): step {out.get('step')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
