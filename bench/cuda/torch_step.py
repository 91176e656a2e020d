"""One sampling step of the shipped RIN models in PyTorch on the GPU, eager and torch.compile (issue 27).

    python3 bench/cuda/torch_step.py --configs configs.json --out DIR [--budget 150] [--allow-cpu]

configs.json (bench/cuda/prove.sh writes it from the models' rin.config metadata) maps each model file
to its architecture. The weights are random: a step's speed does not depend on their values, and no
checkpoint travels to the GPU host. A step here is one network call, the part of a sampling step that
ONNX Runtime's Run does in the C# service. Writes DIR/torch.json and DIR/torch.md, then DIR's
torch.json is the sign that the GPU is free again (remote.sh waits for it).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.getcwd())
from training.model import RIN, RINConfig  # noqa: E402

BATCHES = (1, 4, 16)


def step_ms(fn, args, device: str) -> float:
    """Median over repeats of the mean time of back-to-back calls, after warm-up (few on a CPU rehearsal)."""
    calls, repeats = (20, 5) if device == "cuda" else (2, 1)
    for _ in range(3 if device == "cuda" else 1):
        fn(*args)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000 / calls)
    return statistics.median(times)


def inputs(cfg: RINConfig, batch: int, device: str):
    g = torch.Generator(device="cpu").manual_seed(batch)
    x = torch.randn(batch, cfg.channels, cfg.resolution, cfg.resolution, generator=g)
    gamma = torch.rand(batch, generator=g)
    class_id = torch.randint(0, cfg.num_classes, (batch,), generator=g)
    latents = torch.zeros(batch, cfg.num_latents, cfg.latent_dim)
    return tuple(t.to(device) for t in (x, gamma, class_id, latents))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=150, help="wall-clock seconds; torch.compile rows past it are skipped")
    ap.add_argument("--allow-cpu", action="store_true", help="rehearsal: run on the CPU where CUDA is missing")
    args = ap.parse_args(argv)
    began = time.monotonic()
    os.makedirs(args.out, exist_ok=True)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("FAIL: torch.cuda.is_available() is False", flush=True)
        return 1
    device = "cuda" if cuda else "cpu"
    if not cuda:
        torch.set_num_threads(2)
    batches = BATCHES if cuda else (1,)
    configs = json.load(open(args.configs))
    result = dict(torch=torch.__version__, cuda=torch.version.cuda, device=torch.cuda.get_device_name() if cuda else "cpu (REHEARSAL: not a GPU figure)",
                  weights="random (same architecture as the ONNX file's rin.config)", rows=[])
    print(f"torch {torch.__version__} on {result['device']}", flush=True)

    models = {}
    for name, entry in configs.items():
        cfg = RINConfig(**entry["config"])
        models[name] = (cfg, RIN(cfg).to(device).eval())

    # Eager, fp32 as ONNX Runtime's default CUDA settings run it (TF32 matmuls), and strict fp32.
    with torch.inference_mode():
        for tf32 in (True, False):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            for name, (cfg, model) in models.items():
                for batch in batches:
                    ms = step_ms(model, inputs(cfg, batch, device), device)
                    result["rows"].append(dict(model=name, res=cfg.resolution, mode="eager", tf32=tf32, batch=batch, step_ms=ms))
                    print(f"eager tf32={int(tf32)} {name} batch {batch}: {ms:.3f} ms", flush=True)

        # torch.compile, TF32 on; largest and smallest first, so a short budget still covers both ends.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        order = sorted(models.items(), key=lambda kv: kv[1][0].resolution)
        order = order[:1] + order[-1:] + order[1:-1] if len(order) > 2 else order
        last_compile = 30.0
        for name, (cfg, model) in order:
            for batch in (1, 16, 4) if cuda else batches:
                left = args.budget - (time.monotonic() - began)
                row = dict(model=name, res=cfg.resolution, mode="torch.compile", tf32=True, batch=batch)
                if not hasattr(torch, "compile"):
                    row["skipped"] = f"torch {torch.__version__} has no torch.compile"
                elif left < last_compile:
                    row["skipped"] = f"budget: {left:.0f} s left, a compile took {last_compile:.0f} s"
                else:
                    torch._dynamo.reset()
                    compiled = torch.compile(model, dynamic=False)
                    start = time.monotonic()
                    compiled(*inputs(cfg, batch, device))
                    last_compile = row["compile_s"] = time.monotonic() - start
                    row["step_ms"] = step_ms(compiled, inputs(cfg, batch, device), device)
                result["rows"].append(row)
                print(f"compile {name} batch {batch}: {row.get('step_ms', row.get('skipped'))}", flush=True)

    result["wall_s"] = time.monotonic() - began
    lines = [f"## PyTorch {result['torch']} on {result['device']}: one network call ({result['weights']})", "",
             "| model | res | mode | tf32 | batch | step ms | compile s |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ms = f"{r['step_ms']:.3f}" if "step_ms" in r else f"skipped: {r['skipped']}"
        compile_s = f"{r['compile_s']:.1f}" if "compile_s" in r else ""
        lines.append(f"| {r['model']} | {r['res']} | {r['mode']} | {int(r['tf32'])} | {r['batch']} | {ms} | {compile_s} |")
    with open(os.path.join(args.out, "torch.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "torch.json.tmp"), "w") as f:
        json.dump(result, f, indent=1)
    os.replace(os.path.join(args.out, "torch.json.tmp"), os.path.join(args.out, "torch.json"))
    print(f"done in {result['wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
