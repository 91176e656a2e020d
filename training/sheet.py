"""Assemble the C# CLI's images into one sample sheet: a row per class, a column per seed.

    dotnet run --project src/RinServe.Cli -c Release -- --model models/fmnist-512.onnx --class all --n 4 --seed 1 --out /tmp/s/s.png
    /usr/bin/python3 -m training.sheet /tmp/s models/fmnist-512-samples.png --cell 128

Cells larger than --cell are shown area-downsized to it (the sheet of 40 images at 1024 px would be
40 megapixels); each image's own file stays at full resolution.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

NAME = re.compile(r".*-c(\d+)-(\d+)\.png$")     # the CLI's suffixes: -c<class>-<i>


def load_cells(folder: str) -> dict:
    cells = {}
    for fn in sorted(os.listdir(folder)):
        m = NAME.match(fn)
        if m:
            cells[(int(m.group(1)), int(m.group(2)))] = np.asarray(Image.open(os.path.join(folder, fn)).convert("L"))
    if not cells:
        raise ValueError(f"no <name>-c<class>-<i>.png files in {folder}")
    return cells


def load_images(folder: str):
    """The folder's cells as (images [N, 1, R, R] float32 in [0, 1], class labels [N]), in (class, seed) order."""
    import torch
    cells = load_cells(folder)
    keys = sorted(cells)
    labels = torch.tensor([c for c, _ in keys])
    images = torch.stack([torch.from_numpy(cells[k].astype(np.float32) / 255)[None] for k in keys])
    return images, labels


def sheet(cells: dict, cell: int, pad: int = 2, columns: int = 0) -> np.ndarray:
    """A row per class and a column per seed; or, with columns, every cell in (class, seed) order, columns to a row."""
    classes = sorted({c for c, _ in cells})
    seeds = sorted({i for _, i in cells})
    if columns:
        keys = sorted(cells)
        places = {key: divmod(n, columns) for n, key in enumerate(keys)}
        rows, cols = (len(keys) + columns - 1) // columns, min(columns, len(keys))
    else:
        places = {(c, i): (r, k) for r, c in enumerate(classes) for k, i in enumerate(seeds)}
        rows, cols = len(classes), len(seeds)
    out = np.full((rows * (cell + pad) + pad, cols * (cell + pad) + pad), 255, dtype=np.uint8)
    for (c, i), (r, k) in places.items():
        if (c, i) in cells:
            img = torch.from_numpy(cells[(c, i)].astype(np.float32))[None, None]
            if img.shape[-1] != cell:
                img = F.interpolate(img, size=(cell, cell), mode="area" if img.shape[-1] > cell else "bilinear",
                                    align_corners=None if img.shape[-1] > cell else False)
            y, x = pad + r * (cell + pad), pad + k * (cell + pad)
            out[y:y + cell, x:x + cell] = img[0, 0].round().clamp(0, 255).byte().numpy()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--cell", type=int, default=128)
    ap.add_argument("--columns", type=int, default=0, help="tile every cell in class order, this many to a row")
    args = ap.parse_args(argv)
    try:
        Image.fromarray(sheet(load_cells(args.folder), args.cell, columns=args.columns)).save(args.out, optimize=True)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
