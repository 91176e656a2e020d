"""Carry a trained trunk to a larger resolution, with no training: the model that serves R px.

    /usr/bin/python3 -m training.carry runs/fmnist-32-trunk/ckpt.pt --resolution 512 --out runs/fmnist-512/carried.pt

The new model keeps the trunk's token grid (g x g), so its patches are f = R / r times larger
(r: the trunk's resolution). Its stem reads every full-resolution pixel; it starts as the trunk's
stem spread over f x f blocks (train.init_from_checkpoint). Its input scale is b = b_trunk / f: the
mean of an f x f block has f times less noise, and the signal is scaled down alike, so every patch
has the signal-to-noise ratio at each gamma that the trunk learned. With an overlap head (it predicts
at head_resolution and resizes in the graph) and no variance normalization, the network at R px sees
exactly the trunk's input in distribution and predicts the trunk's x0 resized to R, for data that is
a smooth upsampling of the trunk's (Fashion-MNIST's 28 px, bilinearly upsampled, is). With variance
normalization the big model's input is the trunk's times a per-image factor (the two x_t have different
standard deviations); a stem without bias (stem_bias false) feeds a LayerNorm, which removes that factor,
so such a trunk carries just as exactly. Glyphs rendered at R, whose f x f block means are the glyph
rendered at R / f (FreeType's anti-aliasing is pixel coverage), are read the same way; their detail finer
than the trunk's pixels is what fine-tuning at R (init_from) adds.

The file holds EMA weights and the run's config, like a training checkpoint without optimizer
state: export it with training.export, or fine-tune from it with init_from.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import os
import sys

import torch

from .model import RIN, RINConfig
from .train import init_from_checkpoint


def carry(trunk_path: str, resolution: int, lattice: int = 0, native_head: bool = False) -> tuple[RIN, dict]:
    """native_head: the overlap head predicts at the full resolution (its windows enlarged from the trunk's,
    see train.init_from_checkpoint), the start of fine-tuning at R for data with detail finer than the
    trunk's pixels; otherwise the trunk's head and an in-graph resize (exact for upsampled data)."""
    state = torch.load(trunk_path, map_location="cpu")
    cfg = copy.deepcopy(state["config"])
    src = cfg["model"]
    if src["head"] != "overlap" or cfg["prediction"] != "x":
        raise ValueError("only an x-predicting trunk with the overlap head carries to other resolutions")
    if cfg["normalize_input"] and src.get("stem_bias", True):
        raise ValueError("with variance normalization (normalize_input true) the carry needs a stem without bias "
                         "(model.stem_bias false): normalizing by the std of the full-resolution x_t scales the "
                         "trunk's input by a gamma-dependent factor, which only a bias-free stem's LayerNorm removes")
    f, rem = divmod(resolution, src["resolution"])
    if rem or f < 1:
        raise ValueError(f"resolution {resolution} must be a multiple of the trunk's {src['resolution']}")
    grid = src["resolution"] // src["patch_size"]
    model_cfg = dict(src, resolution=resolution, patch_size=resolution // grid,
                     head_resolution=resolution if native_head else (src["head_resolution"] or src["resolution"]),
                     head_lattice=lattice if resolution != src["resolution"] and not native_head else 0)
    cfg.update(model=model_cfg, name=f"{cfg['name'].split('-')[0]}-{resolution}", input_scale=cfg["input_scale"] / f,
               init_from=trunk_path, out_dir=os.path.dirname(trunk_path))
    model = RIN(RINConfig(**model_cfg))
    taken = init_from_checkpoint(model, state, cfg["input_scale"])
    missing = {k for k in model.state_dict()} - set(taken)
    if missing:
        raise ValueError(f"trunk lacks tensors for: {', '.join(sorted(missing))}")
    return model.eval(), dict(config=cfg, ema=model.state_dict(), model=model.state_dict(), step=state["step"],
                              steps_before=state.get("steps_before", 0), elapsed=state["elapsed"], history=state["history"][-200:],
                              samples_seen=state.get("samples_seen", state["step"] * cfg["batch_size"]),
                              carried_from=dict(path=trunk_path, sha256=file_sha256(trunk_path),
                                                lattice=lattice))


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trunk")
    ap.add_argument("--resolution", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lattice", type=int, default=0, help="the data's own resolution, when coarser than the "
                    "trunk's (Fashion-MNIST: 28): see RINConfig.head_lattice")
    ap.add_argument("--native-head", action="store_true", help="predict at the full resolution (to fine-tune at R)")
    args = ap.parse_args(argv)
    try:
        model, state = carry(args.trunk, args.resolution, args.lattice, args.native_head)
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(state, args.out + ".tmp")
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}: {state['config']['name']}, patch {model.cfg.patch_size}, "
          f"b = {state['config']['input_scale']:.5g}, {model.num_params()} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
