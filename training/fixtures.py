"""Parity fixtures for the C# side (MODEL-CONTRACT.md, "Parity fixtures").

    /usr/bin/python3 -m training.fixtures tests/fixtures

Writes parity/: a tiny untrained RIN (rin.trained=false) exported three times (eps, x and v
predictions with different input scales), one network call's inputs and PyTorch outputs,
and short DDIM/DDPM trajectories with their fixed noise, all as little-endian float32 /
int64 .bin files indexed by index.json. Also bad-models/: files the loader must refuse.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
import torch

from .diffusion import Schedule, sample
from .export import export_onnx, metadata
from .model import RIN, RINConfig

TINY = RINConfig(resolution=16, channels=1, patch_size=4, num_latents=8, latent_dim=32, interface_dim=32,
                 num_blocks=2, latent_self_attn=1, heads=2, mlp_ratio=2.0, num_classes=10, class_dropout=0.1,
                 class_names=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"])
# The overlap head (RINConfig.head) at half the 16 px resolution, resized in the graph: its
# ConvTranspose and Resize nodes are what the C# side must run the same as PyTorch.
TINY_OVERLAP = RINConfig(**{**TINY.to_dict(), "head": "overlap",
                            "head_resolution": 8})
SCHEDULES = ["cosine", "linear", "cosine@0.2,1,1", "sigmoid@-3,3,0.9", "sigmoid@0,3,0.3"]
VARIANTS = {"tiny.onnx": ("eps", 1.0), "tiny-x.onnx": ("x", 0.5), "tiny-v.onnx": ("v", 0.7)}
OVERLAP = "tiny-overlap.onnx"  # x prediction, b = 0.25, no variance normalization (as training.carry makes)
TRAJECTORIES = [  # model, sampler, schedule, steps, guidance
    ("tiny.onnx", "ddim", "cosine", 6, 0.0),
    ("tiny.onnx", "ddpm", "cosine", 6, 0.0),
    ("tiny.onnx", "ddpm_small", "sigmoid@-3,3,0.9", 5, 0.0),
    ("tiny.onnx", "ddim", "linear", 5, 1.5),
    ("tiny-x.onnx", "ddim", "cosine@0.2,1,1", 5, 0.0),
    ("tiny-v.onnx", "ddpm", "cosine", 5, 0.0),
    (OVERLAP, "ddim", "cosine", 5, 1.0),
    ("tiny.onnx", "dpmpp_2m", "cosine", 6, 1.5),
    ("tiny-x.onnx", "dpmpp_2m", "linear", 5, 0.0),
]


def tiny_model(seed: int = 0, cfg: RINConfig = TINY) -> RIN:
    torch.manual_seed(seed)
    model = RIN(RINConfig(**cfg.to_dict())).eval()
    with torch.no_grad():  # an untrained net with outputs of order 1, so every path is exercised
        model.out.weight.normal_(0, 0.3)
        model.selfcond_out.weight.normal_(0, 0.5)
    return model


class BinWriter:
    def __init__(self, folder: str):
        self.folder = folder

    def __call__(self, name: str, tensor: torch.Tensor) -> dict:
        arr = tensor.detach().cpu().numpy()
        arr = arr.astype("<i8") if arr.dtype == np.int64 else arr.astype("<f4")
        arr.tofile(os.path.join(self.folder, name + ".bin"))
        return {"file": name + ".bin", "shape": list(arr.shape), "dtype": "int64" if arr.dtype == np.int64 else "float32"}


def write_parity(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    model = tiny_model()
    cfg = model.cfg
    for file, (prediction, b) in VARIANTS.items():
        meta = metadata(model, name=file[:-5], prediction=prediction, input_scale=b, normalize_input=True,
                        train_schedule="cosine", dataset="none (random weights)", train_steps=0, trained=False)
        export_onnx(model, os.path.join(folder, file), meta)
    overlap = tiny_model(seed=1, cfg=TINY_OVERLAP)
    meta = metadata(overlap, name=OVERLAP[:-5], prediction="x", input_scale=0.25, normalize_input=False,
                    train_schedule="cosine", dataset="none (random weights)", train_steps=0, trained=False)
    export_onnx(overlap, os.path.join(folder, OVERLAP), meta)
    save = BinWriter(folder)
    gen = torch.Generator().manual_seed(7)
    index = {"contract": "1", "model": "tiny.onnx", "tolerance": 1e-4,
             "schedules": [], "call": {}, "trajectories": []}
    t = torch.linspace(0, 1, 21, dtype=torch.float64)
    for text in SCHEDULES:
        index["schedules"].append({"name": text, "t": t.tolist(), "gamma": Schedule(text)(t).tolist()})

    batch = 3
    x = torch.randn(batch, cfg.channels, cfg.resolution, cfg.resolution, generator=gen)
    gamma = torch.tensor([0.02, 0.5, 0.97])
    class_id = torch.tensor([0, 7, cfg.null_class], dtype=torch.long)
    latents_in = torch.randn(batch, cfg.num_latents, cfg.latent_dim, generator=gen)
    with torch.no_grad():
        pred, latents_out = model(x, gamma, class_id, latents_in)
    index["call"] = {"model": "tiny.onnx",
                     "inputs": {"x": save("call_x", x), "gamma": save("call_gamma", gamma),
                                "class_id": save("call_class_id", class_id), "latents_in": save("call_latents_in", latents_in)},
                     "outputs": {"pred": save("call_pred", pred), "latents_out": save("call_latents_out", latents_out)}}

    for k, (file, sampler, schedule, steps, guidance) in enumerate(TRAJECTORIES):
        net, (prediction, b), norm = (overlap, ("x", 0.25), False) if file == OVERLAP else (model, VARIANTS[file], True)
        cfg = net.cfg
        classes = torch.tensor([7, 2], dtype=torch.long)
        shape = (len(classes), cfg.channels, cfg.resolution, cfg.resolution)
        x_init = torch.randn(shape, generator=gen)
        noise = torch.randn((steps,) + shape, generator=gen)
        image, rec = sample(net, classes, steps=steps, schedule=Schedule(schedule), input_scale=b,
                            prediction=prediction, normalize_input=norm, sampler=sampler, guidance=guidance, null_class=cfg.null_class,
                            x_init=x_init, noise=noise, record=True)
        p = f"traj{k}_"
        index["trajectories"].append({
            "model": file, "prediction": prediction, "input_scale": b, "sampler": sampler, "schedule": schedule,
            "steps": steps, "guidance": guidance, "class_id": save(p + "class_id", classes),
            "x_init": save(p + "x_init", x_init), "noise": save(p + "noise", noise),
            "x_steps": save(p + "x_steps", rec["x_steps"]), "x0_final": save(p + "x0_final", rec["x0_final"]),
            "image": save(p + "image", image)})
    with open(os.path.join(folder, "index.json"), "w") as f:
        json.dump(index, f, indent=1)


def write_bad_models(folder: str, good: str) -> None:
    """Files that load as ONNX but break the contract; the loader must name the file and the key."""
    os.makedirs(folder, exist_ok=True)

    def variant(name, edit):
        proto = onnx.load(good)
        edit(proto)
        onnx.save(proto, os.path.join(folder, name))

    def drop(key):
        def edit(proto):
            keep = [p for p in proto.metadata_props if p.key != key]
            del proto.metadata_props[:]
            proto.metadata_props.extend(keep)
        return edit

    def set_key(key, value):
        def edit(proto):
            for p in proto.metadata_props:
                if p.key == key:
                    p.value = value
        return edit

    variant("missing-input-scale.onnx", drop("rin.input_scale"))
    variant("wrong-resolution.onnx", set_key("rin.resolution", "32"))          # graph is 16 x 16
    variant("wrong-latents.onnx", set_key("rin.latents", "8,64"))              # graph is 8 x 32
    variant("bad-class-names.onnx", set_key("rin.class_names", '["only one"]'))
    variant("bad-prediction.onnx", set_key("rin.prediction", "noise"))
    with open(good, "rb") as f:
        data = f.read()
    with open(os.path.join(folder, "truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(folder, "not-onnx.onnx"), "wb") as f:
        f.write(b"this is a text file, not an ONNX model\n" * 10)


def main(argv=None) -> int:
    root = (argv or sys.argv[1:] or ["tests/fixtures"])[0]
    torch.set_num_threads(1)
    parity = os.path.join(root, "parity")
    write_parity(parity)
    write_bad_models(os.path.join(root, "bad-models"), os.path.join(parity, "tiny.onnx"))
    print(f"wrote {parity} and {os.path.join(root, 'bad-models')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
