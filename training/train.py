"""Train a RIN denoiser (Algorithm 2 of Chen 2023) on Fashion-MNIST or a folder of images.

    /usr/bin/python3 -m training.train --config training/configs/fmnist-32-trunk.json --device cpu

Everything a run needs is in TrainConfig (a JSON file overrides its defaults, then --set
key=value overrides that). A run writes into out_dir: ckpt.pt (resumable), samples-*.png
grids (EMA weights, the reference sampler) and train.log. Export with training.export.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F

from . import glyphs
from .data import DatasetError, batch_stream, to_model_input
from .diffusion import Schedule, loss_weights, sample, training_loss
from .lamb import Lamb
from .model import RIN, ClassParts, RINConfig, inference_state


@dataclass
class TrainConfig:
    model: RINConfig = field(default_factory=RINConfig)
    name: str = "fmnist-64"
    dataset: str = "fashion-mnist"       # or a folder of class subfolders of images
    out_dir: str = "runs/fmnist-64"
    train_schedule: str = "cosine@0.2,1,1"
    input_scale: float = 1.0             # b of the paper; < 1 at high resolution
    prediction: str = "eps"              # eps | x | v
    normalize_input: bool = True
    loss_weight: str = "none"            # none | min_snr@k (diffusion.loss_weights)
    self_cond_rate: float = 0.9
    batch_size: int = 32
    steps: int = 4000
    max_minutes: float = 0.0             # > 0: stop at this wall time; LR decays over it
    lr: float = 2e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    sample_every: int = 1000
    sample_steps: int = 50
    ckpt_every: int = 250
    seed: int = 0
    init_from: str = ""                  # a checkpoint whose matching tensors start this model
    bf16: bool = False                   # autocast on CUDA
    data_workers: int = 0                # > 0: glyphs rendered by this many processes as training runs
    class_parts: bool = False            # glyphs: base-letter and mark embeddings shared across classes (ClassParts)
    class_parts_lr: float = 10.0         # their learning rate, times lr: they start at zero beside class codes of
                                         # norm ~14 (N(0, 1) in 192 dimensions), which move little at lr itself
    oversample: str = ""                 # glyphs: 'GROUP@k' draws GROUP's images k times as often (glyphs.class_weights)

    def validate(self) -> None:
        self.model.validate()
        problems = []
        if self.input_scale <= 0:
            problems.append(f"input_scale must be > 0 (got {self.input_scale})")
        if self.prediction not in ("eps", "x", "v"):
            problems.append(f"prediction must be eps, x or v (got {self.prediction})")
        if self.class_parts_lr <= 0:
            problems.append(f"class_parts_lr must be > 0 (got {self.class_parts_lr})")
        if self.batch_size <= 0 or self.steps <= 0:
            problems.append("batch_size and steps must be > 0")
        if self.oversample:
            if self.dataset != "glyphs":
                problems.append(f"oversample is for the glyph data set (got dataset {self.dataset!r})")
            else:
                try:
                    glyphs.class_weights(list(glyphs.CLASS_NAMES), self.oversample)
                except ValueError as e:
                    problems.append(str(e))
        try:
            Schedule(self.train_schedule)
        except ValueError as e:
            problems.append(str(e))
        try:
            loss_weights(torch.full((1,), 0.5), self.prediction, self.loss_weight)
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise ValueError("bad training config: " + "; ".join(problems))


def load_config(path: str | None, overrides: list[str]) -> TrainConfig:
    raw = {}
    if path:
        with open(path) as f:
            raw = json.load(f)
    for item in overrides:
        key, _, value = item.partition("=")
        target = raw
        *parents, leaf = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        try:
            target[leaf] = json.loads(value)
        except json.JSONDecodeError:
            target[leaf] = value
    model_raw = raw.pop("model", {})
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known | set(model_raw) - {f.name for f in fields(RINConfig)}
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
    cfg = TrainConfig(model=RINConfig(**model_raw), **raw)
    cfg.validate()
    return cfg


def check_writable(out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, ".write-test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ValueError(f"output directory {out_dir!r} is not writable: {e.strerror}") from None


def param_groups(model, weight_decay, class_parts_lr: float = 1.0):
    """No weight decay and no trust ratio on norms, biases and embeddings (< 2 dims, plus pos/latents). The class
    parts (ClassParts), if any, are a third such group whose learning rate is class_parts_lr times the rest's
    (lr_scale)."""
    decay, no_decay, parts = [], [], []
    for name, p in model.named_parameters():
        if name.startswith("class_parts."):
            parts.append(p)
        else:
            (no_decay if p.ndim < 2 or name in ("pos_embed", "latents") or "embed.weight" in name else decay).append(p)
    groups = [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0, adapt=False)]
    if parts:
        groups.append(dict(params=parts, weight_decay=0.0, adapt=False, lr_scale=class_parts_lr))
    return groups


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to 0 over the run (progress in [0, 1])."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def save_grid(images: torch.Tensor, path: str, nrow: int) -> None:
    """images [N, C, H, W] in [0, 1] -> one PNG grid."""
    from PIL import Image
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + 2), nrow * (w + 2))
    for i in range(n):
        r, k = divmod(i, nrow)
        grid[:, r * (h + 2) + 1: r * (h + 2) + 1 + h, k * (w + 2) + 1: k * (w + 2) + 1 + w] = images[i]
    arr = (grid * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr[:, :, 0] if c == 1 else arr).save(path)


def sample_grid(ema, cfg: TrainConfig, path: str, per_class: int = 4, max_res: int = 128) -> None:
    """One row per class (at most 16 classes, evenly spaced); large images are shown downsized so the
    grid stays small."""
    n = cfg.model.num_classes
    shown = torch.arange(n) if n <= 16 else torch.linspace(0, n - 1, 16).round().long()
    classes = shown.repeat_interleave(per_class)
    g = torch.Generator().manual_seed(1234)
    imgs = sample(ema, classes, steps=cfg.sample_steps, schedule=Schedule("cosine"), input_scale=cfg.input_scale,
                  prediction=cfg.prediction, normalize_input=cfg.normalize_input, generator=g).cpu()
    if imgs.shape[-1] > max_res:
        imgs = torch.nn.functional.interpolate(imgs, size=(max_res, max_res), mode="area")
    save_grid(imgs, path, nrow=per_class)


def init_from_checkpoint(model: RIN, source: str | dict, input_scale: float) -> list[str]:
    """Start from another run's EMA weights where names and shapes match: e.g. the 64 px trunk
    reused at 512 px with patches f = 8 times larger (same 8 x 8 token grid). The two
    resolution-specific ends are carried over by nearest upsampling, so the new model starts as
    the old one seen at f times the size:
    - stem: each old kernel weight spread over an f x f block, / f. The noise of a block's mean is
      f times smaller, and b_new = b_old / f (the configs do this) shrinks the signal alike, so the
      trunk sees the per-patch signal-to-noise ratio it was trained on at each gamma.
    - head (x prediction only): each old output pixel repeated f x f times, scaled by
      b_new / b_old, since the target is x0 = b x. The overlap head is resolution-free (it
      predicts at head_resolution and resizes in the graph): it is only scaled.
    Without variance normalization of the input (normalize_input false) this is exact in
    distribution for images upsampled from the old resolution; training.carry builds such models."""
    src_state = torch.load(source, map_location="cpu") if isinstance(source, str) else source   # a path or its loaded state
    src, src_cfg = src_state["ema"], src_state["config"]
    src = {k: v.float() if v.is_floating_point() else v for k, v in src.items()}   # a --half slim file too
    dst = model.state_dict()
    p_old = src_cfg["model"]["patch_size"]
    f = model.cfg.patch_size // p_old
    grown = f > 1 and f * p_old == model.cfg.patch_size and model.cfg.grid == src_cfg["model"]["resolution"] // p_old
    taken = []
    for k, v in src.items():
        if k not in dst:
            continue
        if k.startswith("out.") and model.cfg.head == "overlap" and dst[k].shape == v.shape:
            # The overlap head predicts at head_resolution whatever the resolution, so it carries
            # over as it is, scaled like its target x0 = b x.
            dst[k] = v * (input_scale / src_cfg["input_scale"])
        elif dst[k].shape == v.shape:
            dst[k] = v
        elif k == "patch_embed.weight" and grown:
            dst[k] = v.repeat_interleave(f, -1).repeat_interleave(f, -2) / f
        elif k in ("out.weight", "out.bias") and model.cfg.head == "overlap" and src_cfg["model"]["head"] == "overlap":
            # A finer overlap head (head_resolution f times the trunk's): each output unit's 2q x 2q window
            # of weights enlarged bilinearly to 2fq x 2fq, so it starts as the trunk's prediction enlarged.
            c, k_old = model.cfg.channels, int(round((v.shape[0] / model.cfg.channels) ** 0.5))
            k_new = int(round((dst[k].shape[0] / c) ** 0.5))
            maps = v.reshape(c, k_old, k_old, -1).permute(3, 0, 1, 2)                 # [in, C, k, k]
            maps = F.interpolate(maps, size=(k_new, k_new), mode="bilinear", align_corners=False)
            dst[k] = maps.permute(1, 2, 3, 0).reshape(dst[k].shape) * (input_scale / src_cfg["input_scale"])
        elif k in ("out.weight", "out.bias") and grown and src_cfg["prediction"] == "x":
            old = v.reshape(p_old, p_old, -1, *v.shape[1:])          # rows are (py, px, c) of a patch
            new = old.repeat_interleave(f, 0).repeat_interleave(f, 1)
            dst[k] = new.reshape(dst[k].shape) * (input_scale / src_cfg["input_scale"])
        else:
            continue
        taken.append(k)
    model.load_state_dict(dst)
    return taken


def trained_steps(state: dict) -> int:
    """The optimizer steps behind a checkpoint's weights in all: its own, plus those of the chain of checkpoints it
    was initialized from (init_from; carried in `steps_before`, which older checkpoints lack: they count their own)."""
    return int(state.get("steps_before", 0)) + int(state["step"])


def train(cfg: TrainConfig, device: str, resume: bool = True, quiet: bool = False) -> dict:
    from tqdm import tqdm
    check_writable(cfg.out_dir)
    stream, class_names = batch_stream(cfg.dataset, cfg.model.resolution, cfg.model.channels, cfg.batch_size,
                                       cfg.data_workers, cfg.oversample)
    if not cfg.model.class_names:
        cfg.model.class_names = class_names
    if len(class_names) != cfg.model.num_classes:
        raise ValueError(f"dataset has {len(class_names)} classes, model.num_classes is {cfg.model.num_classes}")
    torch.manual_seed(cfg.seed)
    model = RIN(cfg.model).to(device)
    ema = copy.deepcopy(model).eval()      # a plain RIN: the class parts, if any, reach it folded (inference_state)
    if cfg.class_parts:
        base, mark, num_marks = glyphs.class_parts(cfg.model.class_names)
        model.class_parts = ClassParts(base, mark, num_marks, model.class_embed.num_embeddings,
                                       cfg.model.latent_dim).to(device)
    opt = Lamb(param_groups(model, cfg.weight_decay, cfg.class_parts_lr), lr=cfg.lr)
    schedule = Schedule(cfg.train_schedule)
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    step, elapsed, history, before = 0, 0.0, [], 0
    if resume and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path, map_location=device)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        before = state.get("steps_before", 0)
        print(f"resumed {ckpt_path} at step {step}", file=sys.stderr)
    elif cfg.init_from:
        src = torch.load(cfg.init_from, map_location="cpu")
        taken = init_from_checkpoint(model, src, cfg.input_scale)
        ema.load_state_dict(inference_state(model))
        before = trained_steps(src)
        print(f"initialized {len(taken)} tensors from {cfg.init_from} ({before} steps behind them)", file=sys.stderr)

    def save():
        state = dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step,
                     elapsed=elapsed, history=history, config=asdict(cfg), samples_seen=step * cfg.batch_size,
                     steps_before=before)
        torch.save(state, ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)               # never a half-written checkpoint

    use_bf16 = cfg.bf16 and device.startswith("cuda")
    # CPU builds of torch 1.13 refuse even a disabled CUDA autocast, so build it only when used.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    batches = stream(torch.Generator().manual_seed(cfg.seed + step))
    ema_targets = dict(model.named_parameters())   # what each EMA parameter follows, by name
    # A terminal gets a live bar; a log file gets a line every 30 s instead of every step.
    bar = tqdm(total=cfg.steps, initial=step, disable=quiet, dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 30)
    start = time.time() - elapsed
    while step < cfg.steps:
        elapsed = time.time() - start
        if cfg.max_minutes and elapsed >= cfg.max_minutes * 60:
            break
        progress = max(step / cfg.steps, elapsed / (cfg.max_minutes * 60) if cfg.max_minutes else 0.0)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step, progress) * group.get("lr_scale", 1.0)
        x_u8, y = next(batches)
        x = to_model_input(x_u8.to(device, non_blocking=True), cfg.model.resolution, cfg.model.channels)
        y = y.to(device)
        with autocast:
            loss = training_loss(model, x, y, schedule, cfg.input_scale, cfg.prediction, cfg.normalize_input,
                                 cfg.self_cond_rate, cfg.model.class_dropout, cfg.loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))        # EMA warm-up
        with torch.no_grad():
            if model.class_parts is not None:   # the EMA of the folded table is the folded table of the EMAs
                ema_targets["class_embed.weight"] = model.class_embed.weight + model.class_parts.table()
            for name, pe in ema.named_parameters():
                pe.lerp_(ema_targets[name], 1 - decay)
        step += 1
        history.append(float(loss))
        bar.update(1)
        bar.set_postfix(loss=f"{sum(history[-50:]) / len(history[-50:]):.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}",
                        refresh=False)
        if step % cfg.ckpt_every == 0:
            elapsed = time.time() - start
            save()
        if cfg.sample_every and step % cfg.sample_every == 0:
            sample_grid(ema, cfg, os.path.join(cfg.out_dir, f"samples-{step:06d}.png"))
    bar.close()
    elapsed = time.time() - start
    save()
    sample_grid(ema, cfg, os.path.join(cfg.out_dir, "samples-final.png"))
    summary = dict(name=cfg.name, steps=step, steps_in_all=before + step, samples_seen=step * cfg.batch_size, minutes=elapsed / 60,
                   final_loss=sum(history[-200:]) / max(1, len(history[-200:])), params=model.num_params(),
                   device=device, torch=torch.__version__)
    with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="JSON file of TrainConfig fields (model fields under 'model')")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. model.patch_size=16")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        cfg = load_config(args.config, args.set)
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: CUDA is not available here")
        summary = train(cfg, args.device, resume=not args.no_resume)
    except (ValueError, DatasetError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
