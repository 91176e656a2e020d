"""The PyTorch reference sampler from the command line, and its benchmark.

    /usr/bin/python3 -m training.sample --ckpt runs/fmnist-64/ckpt.pt --class 7 --n 8 --out sneakers.png
    /usr/bin/python3 -m training.sample --bench models/fmnist-64.onnx --steps 50 --batch 1 --threads 2

--bench rebuilds the exported model's architecture from its rin.config metadata (random
weights: a sampler's speed does not depend on the weight values) and times full generations,
so the C# sampler can be compared with PyTorch on the same machine and thread count.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from .diffusion import Schedule, sample
from .export import model_from_checkpoint, read_metadata
from .model import RIN, RINConfig
from .train import save_grid


def bench(path: str, steps: int, batch: int, repeats: int) -> dict:
    meta = read_metadata(path)
    model = RIN(RINConfig(**json.loads(meta["rin.config"]))).eval()
    kw = dict(steps=steps, schedule=Schedule("cosine"), input_scale=float(meta["rin.input_scale"]),
              prediction=meta["rin.prediction"], generator=torch.Generator().manual_seed(0))
    classes = [0] * batch
    sample(model, classes, **{**kw, "steps": 2})  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample(model, classes, **kw)
        times.append(time.perf_counter() - start)
    return dict(model=path, steps=steps, batch=batch, threads=torch.get_num_threads(), torch=torch.__version__,
                median_s=statistics.median(times), times_s=times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", help="a training checkpoint (EMA weights are used)")
    ap.add_argument("--class", dest="cls", type=int, default=0)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm", "ddpm_small", "dpmpp_2m"])
    ap.add_argument("--schedule", default="cosine")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="samples.png")
    ap.add_argument("--bench", metavar="ONNX", help="time the reference sampler for this exported model's architecture")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bench:
        print(json.dumps(bench(args.bench, args.steps, args.batch, args.repeats)))
        return 0
    if not args.ckpt:
        ap.error("--ckpt or --bench is required")
    model, state = model_from_checkpoint(args.ckpt)
    cfg = state["config"]
    images = sample(model, [args.cls] * args.n, steps=args.steps, schedule=Schedule(args.schedule),
                    input_scale=cfg["input_scale"], prediction=cfg["prediction"], sampler=args.sampler,
                    normalize_input=cfg["normalize_input"], generator=torch.Generator().manual_seed(args.seed))
    save_grid(images, args.out, nrow=args.n)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
