"""Datasets: Fashion-MNIST from its IDX files (Debian's dataset-fashion-mnist), or a folder of
class subfolders of images. Both give uint8 images [N, C, h, w] and int64 labels; batches are
resized to the model's resolution on the fly (upsampling 28 px to 1024 px up front would not fit).
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# Debian's dataset-fashion-mnist; RINSERVE_FASHION_MNIST points elsewhere (a GPU host without the package).
FASHION_MNIST_DIR = os.environ.get("RINSERVE_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class DatasetError(RuntimeError):
    """The data cannot be read; the message says what was expected and where."""


def read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        if zero != 0 or dtype != 0x08:
            raise DatasetError(f"{path}: not an unsigned-byte IDX file")
        shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path}: truncated ({data.size} of {int(np.prod(shape))} bytes)")
    return data.reshape(shape)


def load_fashion_mnist(split: str = "train", root: str = FASHION_MNIST_DIR):
    prefix = "train" if split == "train" else "t10k"
    paths = [os.path.join(root, f"{prefix}-{kind}-idx{n}-ubyte.gz") for kind, n in (("images", 3), ("labels", 1))]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise DatasetError(f"Fashion-MNIST not found: missing {', '.join(missing)} "
                           "(install it with: apt-get install dataset-fashion-mnist)")
    images, labels = (read_idx(p) for p in paths)
    return torch.from_numpy(images.copy())[:, None], torch.from_numpy(labels.astype(np.int64)), list(FASHION_MNIST_CLASSES)


def load_image_folder(root: str, size: int, channels: int):
    """root/<class name>/<image>: classes sorted by name, images resized to size x size."""
    from PIL import Image
    if not os.path.isdir(root):
        raise DatasetError(f"image folder not found: {root}")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = [], []
    for k, name in enumerate(classes):
        for fn in sorted(os.listdir(os.path.join(root, name))):
            if fn.lower().endswith(IMAGE_EXTENSIONS):
                img = Image.open(os.path.join(root, name, fn)).convert("L" if channels == 1 else "RGB")
                arr = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.uint8)
                images.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
                labels.append(k)
    if not images:
        raise DatasetError(f"no images under {root}/<class>/ (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long), classes


def load_dataset(name: str, split: str, resolution: int, channels: int):
    """'fashion-mnist', 'glyphs' (training.glyphs' cache rendered at this resolution) or a folder path.
    Returns (uint8 images, labels, class names)."""
    if name == "fashion-mnist":
        return load_fashion_mnist(split)
    if name == "glyphs":
        from . import glyphs
        try:
            images, labels, _ = glyphs.load(resolution, split)
        except FileNotFoundError as e:
            raise DatasetError(str(e)) from None
        return torch.from_numpy(images), torch.from_numpy(labels), list(glyphs.CLASS_NAMES)
    return load_image_folder(name, min(resolution, 256), channels)


def to_model_input(batch_u8: torch.Tensor, resolution: int, channels: int) -> torch.Tensor:
    """uint8 [B, c, h, w] -> float [B, channels, R, R] in [-1, 1] (bilinear resize)."""
    x = batch_u8.float() / 127.5 - 1.0
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1)
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return x.clamp(-1, 1)


class WeightedForever(torch.utils.data.Sampler):
    """Indices drawn with replacement by weight, forever, a chunk at a time (torch's WeightedRandomSampler draws all
    of its num_samples in one torch.multinomial call, so an endless stream would need endless memory)."""

    def __init__(self, weights: torch.Tensor, generator: torch.Generator, chunk: int = 4096):
        self.weights, self.generator, self.chunk = weights, generator, chunk

    def __iter__(self):
        while True:
            yield from torch.multinomial(self.weights, self.chunk, replacement=True, generator=self.generator).tolist()


def batch_stream(name: str, resolution: int, channels: int, batch_size: int, workers: int = 0,
                 oversample: str = ""):
    """(stream, class names): stream(generator) yields (uint8 images [B, C, h, w], labels [B]) forever, each
    batch drawn with replacement: uniformly, or with oversample ('GROUP@k', glyphs.class_weights) each image of
    GROUP k times as likely as another. From the data set in memory, or, for glyphs with workers > 0,
    rendered as training runs by that many processes (a GPU host renders at 768-1024 px faster than it
    could store the renders: 87k glyphs at 1024 px are 91 GB)."""
    if oversample and name != "glyphs":
        raise DatasetError(f"oversample is for the glyph data set (got {name!r})")

    def image_weights(class_names, labels):
        if not oversample:
            return None
        from . import glyphs
        return torch.tensor(glyphs.class_weights(class_names, oversample), dtype=torch.double)[labels.long()]

    if name == "glyphs" and workers > 0:
        from . import glyphs
        source = glyphs.Rendered(resolution, "train")
        weights = image_weights(list(glyphs.CLASS_NAMES), torch.tensor([c for _, c in source.items]))

        def rendered(gen):
            if weights is None:
                sampler = torch.utils.data.RandomSampler(source, replacement=True, num_samples=1 << 40, generator=gen)
            else:
                sampler = WeightedForever(weights, gen)
            loader = torch.utils.data.DataLoader(source, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                                 pin_memory=torch.cuda.is_available(), persistent_workers=True,
                                                 prefetch_factor=4)
            yield from loader
        return rendered, list(glyphs.CLASS_NAMES)
    images, labels, class_names = load_dataset(name, "train", resolution, channels)
    weights = image_weights(class_names, labels)

    def in_memory(gen):
        while True:
            if weights is None:
                idx = torch.randint(len(images), (batch_size,), generator=gen)
            else:
                idx = torch.multinomial(weights, batch_size, replacement=True, generator=gen)
            yield images[idx], labels[idx]
    return in_memory, class_names
