"""The glyph family's judge: a small CNN trained on the training faces' renders, and the figures of a
model card measured with it against held-out faces (never trained on, by the judge or the models).

    /usr/bin/python3 -m training.glyph_judge train                  # writes training/judge/glyph-cnn.pth
    /usr/bin/python3 -m training.glyph_judge folder DIR             # the C# CLI's images in DIR
    /usr/bin/python3 -m training.glyph_judge resolutions            # held-out accuracy vs the resolution
                                                                    #   renders are reduced to (input scale b)
    /usr/bin/python3 -m training.glyph_judge class-gap CKPT         # the x0 error with the true class and another

Figures (judge_images):
- class accuracy: the judge names the class the image was generated for, counting JUDGE_GROUPS as one
  (0/O; 1/I/l/|; Ð/Đ). "Real": the same on held-out renders, one per generated image, same classes.
  Beside it, as a diagnostic, the accuracy up to the marks (glyphs.base_of: an A named for an À is a hit).
- FD: Fréchet distance of the judge's pooled features to held-out reference renders, beside the real
  floor (the real renders' FD to the same reference).
- edge width at the served resolution: the mean width, in pixels, of the band between 10 % and 90 %
  intensity along the glyphs' outlines (pixels in the band / outline length; the outline length is the
  0.5-level crossings along rows and columns times pi/4), beside held-out renders at that resolution.
The judge sees every image area-reduced to INPUT px, so one judge serves every resolution.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import glyphs
from .classifier import Blockiness, frechet_distance

JUDGE_PATH = os.path.join(os.path.dirname(__file__), "judge", "glyph-cnn.pth")
INPUT = 40              # the judge's input size: cap height 16 px, accents 2-4 px
SOURCE_RES = 256        # the cache the judge trains on, area-reduced to INPUT


class GlyphJudge(nn.Module):
    def __init__(self, num_classes: int = len(glyphs.CHARS)):
        super().__init__()
        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
        self.features = nn.Sequential(*block(1, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                                      *block(64, 128), nn.MaxPool2d(2), *block(128, 128))       # 40 -> 5 x 5
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 25, 256), nn.ReLU(),
                                  nn.Linear(256, num_classes))

    def forward(self, x):           # [B, 1, INPUT, INPUT] in [-1, 1], ink at -1
        return self.head(self.features(x))

    def pooled(self, x):            # [B, 128]: FD is taken on these
        return self.features(x).mean((2, 3)).double()


def to_judge_input(images01: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] in [0, 1] (paper white) -> [B, 1, INPUT, INPUT] in [-1, 1], area-reduced."""
    x = images01.float().mean(1, keepdim=True) if images01.shape[1] != 1 else images01.float()
    if x.shape[-1] != INPUT:
        x = F.interpolate(x, size=(INPUT, INPUT), mode="area")
    return x * 2 - 1


def reduced(images_u8, chunk: int = 2048) -> torch.Tensor:
    """A uint8 cache [N, 1, R, R] -> float [N, 1, INPUT, INPUT] judge inputs."""
    return torch.cat([to_judge_input(torch.from_numpy(np.asarray(images_u8[i:i + chunk])).float() / 255)
                      for i in range(0, len(images_u8), chunk)])


def grouped(labels: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(glyphs.judge_group_of())[labels]


def base_hits(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The verdicts up to the marks: the judge named the generated class's base letter or a marked form of it."""
    base = torch.as_tensor(glyphs.base_of())
    return grouped(base[predicted]) == grouped(base[labels])


@torch.no_grad()
def predict(judge: GlyphJudge, x: torch.Tensor) -> torch.Tensor:
    judge.eval()
    return torch.cat([judge(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])


def accuracy(judge: GlyphJudge, x: torch.Tensor, y: torch.Tensor) -> float:
    return (grouped(predict(judge, x)) == grouped(y)).float().mean().item()


def train_judge(epochs: int = 3, seed: int = 0, threads: int = 0) -> tuple[GlyphJudge, dict]:
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    images, labels, _ = glyphs.load(SOURCE_RES, "train")
    x, y = reduced(images), torch.from_numpy(labels)
    himages, hlabels, _ = glyphs.load(SOURCE_RES, "heldout")
    xh, yh = reduced(himages), torch.from_numpy(hlabels)
    judge = GlyphJudge()
    opt = torch.optim.Adam(judge.parameters(), lr=2e-3)
    batch = 128
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    for epoch in range(epochs):
        judge.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x) - batch + 1, batch):
            idx = perm[i:i + batch]
            xb = x[idx]
            dy, dx = (int(v) for v in torch.randint(-1, 2, (2,)))   # +-1 px: placement rounding
            xb = torch.roll(xb, (dy, dx), (2, 3))
            loss = F.cross_entropy(judge(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: held-out accuracy {accuracy(judge, xh, yh):.4f}", file=sys.stderr)
    return judge, dict(heldout_accuracy=accuracy(judge, xh, yh), train_accuracy=accuracy(judge, x[:5000], y[:5000]),
                       epochs=epochs, input=INPUT, train_images=len(x), heldout_images=len(xh))


def load_judge() -> GlyphJudge:
    if not os.path.exists(JUDGE_PATH):
        raise FileNotFoundError(f"{JUDGE_PATH} missing: run python3 -m training.glyph_judge train")
    judge = GlyphJudge()
    judge.load_state_dict(torch.load(JUDGE_PATH, map_location="cpu")["state"])
    return judge.eval()


def edge_band(images01: torch.Tensor) -> tuple[float, float]:
    """(pixels between 10 % and 90 % intensity, outline length in pixels) summed over [B, 1, H, W]."""
    x = images01.double()
    band = ((x > 0.1) & (x < 0.9)).sum().item()
    ink = x < 0.5
    crossings = (ink[..., 1:, :] != ink[..., :-1, :]).sum().item() + (ink[..., :, 1:] != ink[..., :, :-1]).sum().item()
    return band, crossings * math.pi / 4


def edge_width(images01: torch.Tensor, chunk: int = 16) -> float:
    band = length = 0.0
    for i in range(0, len(images01), chunk):
        b, n = edge_band(images01[i:i + chunk])
        band, length = band + b, length + n
    return band / max(length, 1e-9)


def real_renders(classes: list[int], resolution: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, set]:
    """One held-out render per entry of classes, rendered at `resolution` (never resized): each class's
    faces taken in turn from a seeded shuffle. Returns images [N, 1, R, R] in [0, 1], labels, and the
    (face key, class) pairs used, which the FD reference then leaves out."""
    faces = [f for f in glyphs.find_faces() if f.split == "heldout"]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(faces))
    fonts, imgs, labels, used, turn = {}, [], [], set(), {}
    for c in classes:
        have = [faces[i] for i in order if c in faces[i].classes]
        k = turn.get(c, 0)
        for face in have[k:] + have[:k]:
            turn[c] = turn.get(c, 0) + 1
            font = fonts.get(face.path) or fonts.setdefault(face.path, glyphs.load_font(face.path, resolution))
            img = glyphs.render(font, glyphs.CHARS[c], resolution)
            if img is not None:
                imgs.append(torch.from_numpy(img.astype(np.float32) / 255)[None])
                labels.append(c)
                used.add((face.key, c))
                break
    return torch.stack(imgs), torch.tensor(labels), used


@functools.lru_cache(maxsize=1)
def heldout_features() -> tuple[torch.Tensor, list]:
    """The judge's features of every held-out render in the cache (SOURCE_RES), with their (face, class)."""
    judge = load_judge()
    images, labels, face_ids = glyphs.load(SOURCE_RES, "heldout")
    faces = glyphs.find_faces()
    x = reduced(images)
    with torch.no_grad():
        feats = torch.cat([judge.pooled(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    return feats, [(faces[f].key, int(c)) for f, c in zip(face_ids, labels)]


def reference_features(leave_out: set) -> torch.Tensor:
    """heldout_features less the (face, class) pairs in leave_out (the real sample's)."""
    feats, keys = heldout_features()
    return feats[torch.tensor([k not in leave_out for k in keys])]


def blockiness(images01: torch.Tensor) -> float:
    """classifier.Blockiness (issue 11's seam measure, 1.0 = none) over images [N, 1, R, R] in [0, 1]."""
    block = Blockiness()
    block.add(images01)
    return block.value()


@torch.no_grad()
def judge_images(images01: torch.Tensor, labels: torch.Tensor, real: bool = True) -> dict:
    """The card's figures for generated images [N, 1, R, R] in [0, 1] of the given classes."""
    judge = load_judge()
    res = images01.shape[-1]
    x = to_judge_input(images01)
    predicted = predict(judge, x)
    out = dict(resolution=res, samples=len(labels), accuracy=(grouped(predicted) == grouped(labels)).float().mean().item(),
               base_accuracy=base_hits(predicted, labels).float().mean().item(), edge_width=edge_width(images01),
               blockiness=blockiness(images01))
    real_x, real_y, used = real_renders(labels.tolist(), res)
    ref = reference_features(used)
    out["fd"] = frechet_distance(judge.pooled(x), ref)
    if real:
        xr = to_judge_input(real_x)
        out.update(real_accuracy=(grouped(predict(judge, xr)) == grouped(real_y)).float().mean().item(),
                   real_fd=frechet_distance(judge.pooled(xr), ref), real_edge_width=edge_width(real_x),
                   real_blockiness=blockiness(real_x))
    return out


@torch.no_grad()
def judge_model(model, cfg: dict, per_class: int = 1, steps: int = 50, batch: int = 64, guidance: float = 0.0,
                real: bool = True, keep_per_class: int = 0, schedule: str = "cosine", classes=None) -> dict:
    """judge_images on the PyTorch sampler's images at the default request (DDIM, cosine, 50 steps,
    the given guidance, seeds fixed): per_class images of each class (or of `classes`)."""
    from .diffusion import Schedule, sample
    ids = torch.arange(model.cfg.num_classes) if classes is None else torch.as_tensor(classes)
    wanted = ids.repeat_interleave(per_class)
    gen = torch.Generator().manual_seed(2024)
    imgs = []
    for i in range(0, len(wanted), batch):
        imgs.append(sample(model, wanted[i:i + batch], steps=steps, schedule=Schedule(schedule),
                           input_scale=cfg["input_scale"], prediction=cfg["prediction"],
                           normalize_input=cfg["normalize_input"], generator=gen, guidance=guidance,
                           null_class=model.cfg.null_class).cpu())
    images = torch.cat(imgs)
    out = dict(judge_images(images, wanted, real=real), guidance=guidance, schedule=schedule)
    if keep_per_class:
        out["images"] = images[(torch.arange(len(wanted)) % per_class) < keep_per_class]
    return out


def judge_folder(folder: str) -> dict:
    """judge_images on the C# CLI's <name>-c<class>-<i>.png files."""
    from .sheet import load_images
    return judge_images(*load_images(folder))


def marks_rows(predicted: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """Accuracy by the requested class's mark (glyphs.class_parts; 'none' for the unmarked classes): exact, up to the
    marks, and, of the images with the right letter and the wrong mark, the mark the judge saw most often."""
    from collections import Counter
    names = glyphs.mark_names(glyphs.CLASS_NAMES)
    mark = torch.as_tensor(glyphs.class_parts(glyphs.CLASS_NAMES)[1])
    exact, base = grouped(predicted) == grouped(labels), base_hits(predicted, labels)
    rows = []
    for m, name in enumerate(names):
        sel = mark[labels] == m
        if not sel.any():
            continue
        wrong_mark = sel & base & ~exact
        seen = Counter(names[k] for k in mark[predicted[wrong_mark]].tolist()).most_common(1)
        rows.append(dict(mark=name, classes=len(set(labels[sel].tolist())), images=int(sel.sum()),
                         accuracy=exact[sel].float().mean().item(), base_accuracy=base[sel].float().mean().item(),
                         wrong_mark=int(wrong_mark.sum()), seen_instead=seen[0][0] if seen else ""))
    return rows


def marked_case_rows(predicted: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """The classes with a mark, by the case of their letter (capitals carry their marks higher and flatter in most faces):
    exact accuracy and up to the marks, for marked capitals and marked small letters."""
    exact, base = grouped(predicted) == grouped(labels), base_hits(predicted, labels)
    rows = []
    for case, test in (("capitals", str.isupper), ("small letters", str.islower)):
        sel = torch.tensor(glyphs.marked_of_case(glyphs.CLASS_NAMES, test), dtype=torch.bool)[labels]
        if sel.any():
            rows.append(dict(case=case, images=int(sel.sum()), accuracy=exact[sel].float().mean().item(),
                             base_accuracy=base[sel].float().mean().item()))
    return rows


def marks_table(folder: str) -> str:
    """marks_rows of a folder of the C# CLI's images, as a Markdown table."""
    from .sheet import load_images
    images, labels = load_images(folder)
    predicted = predict(load_judge(), to_judge_input(images))
    rows = marks_rows(predicted, labels)
    lines = ["| mark | classes | images | accuracy | up to the marks | right letter, wrong mark (seen most instead) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        instead = f" ({r['seen_instead']})" if r["seen_instead"] else ""
        lines.append(f"| {r['mark']} | {r['classes']} | {r['images']} | {100 * r['accuracy']:.1f} % | "
                     f"{100 * r['base_accuracy']:.1f} % | {r['wrong_mark']}{instead} |")
    lines += ["", "| marked | images | accuracy | up to the marks |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['images']} | {100 * r['accuracy']:.1f} % | {100 * r['base_accuracy']:.1f} % |"
              for r in marked_case_rows(predicted, labels)]
    return "\n".join(lines)


def paired_change(before: torch.Tensor, after: torch.Tensor) -> dict:
    """Two models' verdicts (True: the judge named the requested class) on images made with the same classes and seeds,
    image by image: both accuracies, the change with its standard error over the image pairs, and how many images the
    change fixed and broke."""
    from .sampler_table import paired_difference
    if before.shape != after.shape or before.numel() < 2:
        raise ValueError(f"paired verdicts need the same images, at least 2: {tuple(before.shape)} and {tuple(after.shape)}")
    change, error = paired_difference(after.float().tolist(), before.float().tolist())
    return dict(images=before.numel(), before=before.float().mean().item(), after=after.float().mean().item(),
                change=change, error=error, fixed=int((after & ~before).sum()), broken=int((before & ~after).sum()))


@torch.no_grad()
def judge_folders_paired(before: str, after: str) -> dict:
    """paired_change of two folders of the C# CLI's images, which must hold the same classes and seeds."""
    from .sheet import NAME, load_images
    def cells(folder):
        return sorted(m.groups() for m in map(NAME.match, os.listdir(folder)) if m)
    if cells(before) != cells(after):
        raise ValueError(f"{before} and {after} do not hold the same classes and seeds")
    judge = load_judge()
    verdicts = []
    for folder in (before, after):
        images, labels = load_images(folder)
        verdicts.append(grouped(predict(judge, to_judge_input(images))) == grouped(labels))
    return paired_change(*verdicts)


@torch.no_grad()
def judge_folder_paired(folder: str, bootstrap: int = 200, seed: int = 0) -> dict:
    """For the sampler table (training.sampler_table --judge glyph): judge_folder's accuracy and FD with their standard
    errors, and each image's verdict in file order, so that two configurations made with the same seeds pair up."""
    from .classifier import paired_figures
    from .sheet import load_images
    images, labels = load_images(folder)
    judge = load_judge()
    x = to_judge_input(images)
    real_x, _, used = real_renders(labels.tolist(), images.shape[-1])
    ref = reference_features(used)
    return paired_figures(grouped(predict(judge, x)) == grouped(labels), judge.pooled(x), ref,
                          frechet_distance(judge.pooled(to_judge_input(real_x)), ref), bootstrap, seed)


@torch.no_grad()
def class_gap(checkpoint: str, ts=(0.95, 0.85), n: int = 64, seed: int = 0) -> list[dict]:
    """How much a trunk uses its class where the class decides the image: the x0 error (in [-1, 1] image units,
    per pixel) on n held-out renders at fixed t, given the true class and given another image's class (a fixed
    derangement), the same noise for both; no self-conditioning latents. A model that ignores the class scores
    the two alike; the gap grows as it learns to draw the named character."""
    from .diffusion import Schedule, normalize, to_x0
    from .export import model_from_checkpoint
    model, state = model_from_checkpoint(checkpoint)     # the EMA weights (a --half slim file's too, cast on load)
    cfg = state["config"]
    res, b = model.cfg.resolution, cfg["input_scale"]
    images, labels, _ = glyphs.load(res, "heldout")
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(labels), generator=g)[:n].sort().values
    x0 = torch.from_numpy(np.asarray(images[pick.numpy()])).float() / 127.5 - 1
    y = torch.from_numpy(labels)[pick]
    other = y[torch.roll(torch.arange(n), 1)]
    latents = torch.zeros(n, model.cfg.num_latents, model.cfg.latent_dim)
    rows = []
    for t in ts:
        gamma = Schedule(cfg["train_schedule"])(torch.tensor([t])).float().item()
        eps = torch.randn(x0.shape, generator=g)
        x_t = gamma ** 0.5 * x0 * b + (1 - gamma) ** 0.5 * eps
        x_in = normalize(x_t) if cfg["normalize_input"] else x_t
        row = dict(t=t, images=n, step=state.get("step"))
        for name, cls in (("true", y), ("other", other)):
            pred, _ = model(x_in, torch.full((n,), gamma), cls, latents)
            row[name] = ((to_x0(pred, x_t, torch.full((n, 1, 1, 1), gamma), cfg["prediction"]) / b - x0) ** 2).mean().item()
        rows.append(row)
    return rows


def resolution_sweep(sizes=(16, 24, 32, 48, 64, 128)) -> list[dict]:
    """Held-out renders at SOURCE_RES, area-reduced to r px and bilinearly enlarged back, judged: the
    smallest r at which the class survives is the data's effective resolution (input scale b = r / R)."""
    judge = load_judge()
    images, labels, _ = glyphs.load(SOURCE_RES, "heldout")
    pick = torch.arange(0, len(images), 4)
    x = torch.from_numpy(np.asarray(images[pick.numpy()])).float() / 255
    y = torch.from_numpy(labels)[pick]
    rows = []
    for r in sizes + (SOURCE_RES,):
        small = F.interpolate(x, size=(r, r), mode="area")
        back = F.interpolate(small, size=(SOURCE_RES, SOURCE_RES), mode="bilinear", align_corners=False)
        rows.append(dict(resolution=r, accuracy=accuracy(judge, to_judge_input(back), y), images=len(y)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["train", "folder", "marks", "paired", "resolutions", "class-gap"])
    ap.add_argument("folder", nargs="?", help="folder, marks: the images; paired: the earlier model's images; "
                    "class-gap: a training checkpoint (ckpt.pt, or a slim one)")
    ap.add_argument("after", nargs="?", help="paired: the later model's images (the same classes and seeds)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--record", help="folder: write the figures to this JSON file")
    ap.add_argument("--annotate", help="folder: write the figures into this ONNX file's metadata (the model that "
                    "made the images)")
    args = ap.parse_args(argv)
    if args.command in ("folder", "marks", "paired", "class-gap") and not args.folder:
        ap.error(f"{args.command} needs a {'checkpoint' if args.command == 'class-gap' else 'folder'}")
    if args.command == "paired" and not args.after:
        ap.error("paired needs two folders: the earlier model's images, then the later one's")
    if args.command == "folder":
        r = judge_folder(args.folder)
        if args.record:
            import json
            with open(args.record, "w") as f:
                json.dump(r, f, indent=2)
        if args.annotate:    # the figures of the C# sampler's images into the file that made them
            from .export import annotate, judged_metadata
            annotate(args.annotate, judged_metadata(r))
            print(f"wrote the figures into {args.annotate}'s metadata")
        print(f"{r['samples']} images at {r['resolution']} px: class accuracy {r['accuracy']:.4f} (real {r['real_accuracy']:.4f}; "
              f"up to the marks {r['base_accuracy']:.4f}), "
              f"FD {r['fd']:.2f} (real {r['real_fd']:.2f}, ratio {r['fd'] / r['real_fd']:.2f}), "
              f"edge width {r['edge_width']:.2f} px (real {r['real_edge_width']:.2f}, ratio {r['edge_width'] / r['real_edge_width']:.2f}), "
              f"blockiness {r['blockiness']:.3f} (real {r['real_blockiness']:.3f})")
        import json
        print(json.dumps(r))
        return 0
    if args.command == "marks":
        print(marks_table(args.folder))
        return 0
    if args.command == "paired":
        r = judge_folders_paired(args.folder, args.after)
        print(f"{r['images']} images: class accuracy {100 * r['before']:.1f} -> {100 * r['after']:.1f} %, paired "
              f"{100 * r['change']:+.1f} ± {100 * r['error']:.1f} points ({r['fixed']} images fixed, {r['broken']} broken)")
        return 0
    if args.command == "class-gap":
        for row in class_gap(args.folder):
            print(f"t = {row['t']}: x0 error {row['true']:.4f} with the true class, {row['other']:.4f} with another "
                  f"({row['images']} held-out renders; the checkpoint's run at step {row['step']})")
        return 0
    if args.command == "resolutions":
        for row in resolution_sweep():
            print(f"reduced to {row['resolution']:4d} px: held-out accuracy {row['accuracy']:.4f} ({row['images']} renders)")
        return 0
    start = time.time()
    judge, info = train_judge(args.epochs, threads=args.threads)
    os.makedirs(os.path.dirname(JUDGE_PATH), exist_ok=True)
    torch.save({"state": judge.state_dict(), **info}, JUDGE_PATH)
    print(f"glyph judge: held-out accuracy {info['heldout_accuracy']:.4f}, train {info['train_accuracy']:.4f} "
          f"({(time.time() - start) / 60:.1f} min) -> {JUDGE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
