"""Pilot (dropped, 2026-12-06; models/MODELS.md, "Shared marks"): guidance away from the base letter as well as from
the null class, on the glyph classes with a mark, at the trunk's 256 px, DDIM 20, the same noise for every weight:

    x̂0 = x̂0(c) + w (x̂0(c) − x̂0(null)) [t in [0.4, 1]] + v (x̂0(c) − x̂0(base letter of c))

    /usr/bin/python3 -m training.pilots.base_letter_guidance runs/glyph-256-ft10/ckpt.pt --v 0 1 3

Prints each v's exact accuracy and accuracy up to the marks (the glyph judge). A third network row per image; the
service has no such option."""
import argparse
import math

import torch

from .. import glyphs
from ..diffusion import Schedule, normalize
from ..export import model_from_checkpoint
from ..glyph_judge import base_hits, grouped, load_judge, predict, to_judge_input


@torch.no_grad()
def generate(model, input_scale: float, classes: torch.Tensor, w: float, v: float, steps: int = 20,
             interval=(0.4, 1.0), seed: int = 7, batch: int = 40) -> torch.Tensor:
    cfg, schedule, base = model.cfg, Schedule("cosine"), torch.tensor(glyphs.base_of())
    out = []
    for s in range(0, len(classes), batch):
        c = classes[s:s + batch]
        n = len(c)
        x = torch.randn((n, cfg.channels, cfg.resolution, cfg.resolution), generator=torch.Generator().manual_seed(seed * 1000 + s))
        labels = torch.cat([c, torch.full_like(c, cfg.num_classes), base[c]])
        latents = torch.zeros(3 * n, cfg.num_latents, cfg.latent_dim)
        for i in range(steps):
            t, t_next = 1 - i / steps, max(1 - (i + 1) / steps, 0.0)
            g, g_next = float(schedule(t)), float(schedule(t_next))
            pred, latents = model(normalize(x).repeat(3, 1, 1, 1), torch.full((3 * n,), g), labels, latents)
            own, null, bare = pred[:n], pred[n:2 * n], pred[2 * n:]
            guided = w * (own - null) if interval[0] <= t <= interval[1] else 0.0
            x0 = (own + guided + v * (own - bare)).clamp(-input_scale, input_scale)
            eps = (x - math.sqrt(g) * x0) / math.sqrt(1 - g)
            x = math.sqrt(g_next) * x0 + math.sqrt(1 - g_next) * eps
        out.append((x / input_scale / 2 + 0.5).clamp(0, 1))
    return torch.cat(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--v", type=float, nargs="+", default=[0.0, 1.0, 3.0])
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, state = model_from_checkpoint(args.checkpoint)
    base = glyphs.base_of()
    classes = torch.tensor([i for i, b in enumerate(base) if b != i])
    judge = load_judge()
    for v in args.v:
        named = predict(judge, to_judge_input(generate(model, state["config"]["input_scale"], classes, args.guidance, v)))
        print(f"v = {v:g}: exact {(grouped(named) == grouped(classes)).float().mean():.3f}, "
              f"up to the marks {base_hits(named, classes).float().mean():.3f} ({len(classes)} classes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
