"""Export a trained RIN checkpoint (its EMA weights) to ONNX, as MODEL-CONTRACT.md says.

    /usr/bin/python3 -m training.export runs/fmnist-64/ckpt.pt models/fmnist-64.onnx [--judge]

Judging can run elsewhere (a GPU host, where this torch cannot export): `--judge --device cuda
--record R.json --no-export` there, then `--judged R.json` here, which takes the figures from the
record. The record names the checkpoint it judged (for a carried model, the trunk file's sha256 and
the resolution), and --judged refuses a checkpoint that is not that one.

The file is written next to its destination, checked with onnx.checker, and only then moved
into place. An existing trained model is kept when the new one scores lower with the
trainer's classifier (--judge), unless --force.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
import torch

from .model import RIN, RINConfig
from .train import trained_steps

OPSET = 17
MAX_FILE_MB = 20          # a model must stay small enough for git (models/ holds four)
HALF_MIN_ELEMENTS = 1 << 20       # over MAX_FILE_MB: tensors this large are stored as float16
SHIP_HALF_MIN_ELEMENTS = 1 << 14  # shipped models (--half, the default): every matrix this large
INPUTS = ["x", "gamma", "class_id", "latents_in"]
OUTPUTS = ["pred", "latents_out"]


def model_from_checkpoint(path: str) -> tuple[RIN, dict]:
    state = torch.load(path, map_location="cpu")
    cfg = state["config"]
    model = RIN(RINConfig(**cfg["model"]))
    model.load_state_dict(state["ema"])
    return model.eval(), state


def metadata(model: RIN, *, name: str, prediction: str, input_scale: float, normalize_input: bool,
             train_schedule: str, dataset: str, train_steps: int, trained: bool, extra: dict | None = None) -> dict:
    cfg = model.cfg
    meta = {
        "rin.contract": "1",
        "rin.name": name,
        "rin.resolution": str(cfg.resolution),
        "rin.channels": str(cfg.channels),
        "rin.num_classes": str(cfg.num_classes),
        "rin.class_names": json.dumps(list(cfg.class_names) or [str(i) for i in range(cfg.num_classes)]),
        "rin.prediction": prediction,
        "rin.input_scale": repr(float(input_scale)),
        "rin.normalize_input": "true" if normalize_input else "false",
        "rin.latents": f"{cfg.num_latents},{cfg.latent_dim}",
        "rin.train_schedule": train_schedule,
        "rin.patch_size": str(cfg.patch_size),
        "rin.dataset": dataset,
        "rin.train_steps": str(train_steps),
        "rin.params": str(model.num_params()),
        "rin.trained": "true" if trained else "false",
        # Informational: the whole architecture, so a benchmark can rebuild it in PyTorch.
        "rin.config": json.dumps({k: v for k, v in cfg.to_dict().items() if k != "class_names"}),
    }
    if cfg.null_class is not None:
        meta["rin.null_class"] = str(cfg.null_class)
    meta.update(extra or {})
    return meta


def round_weights_to_half(model: RIN, min_elements: int = SHIP_HALF_MIN_ELEMENTS) -> int:
    """Round every float tensor of min_elements or more to float16 values (kept as float32), so that
    the PyTorch model judged is the very model that ships with those tensors stored as float16.
    Returns how many tensors were rounded."""
    n = 0
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point() and t.numel() >= min_elements:
                t.copy_(t.half().float())
                n += 1
    return n


def export_onnx(model: RIN, path: str, meta: dict, half_min_elements: int | None = None) -> None:
    """half_min_elements: store initializers this large as float16 (None: only when over MAX_FILE_MB)."""
    """Trace at batch 2 with a dynamic batch axis, attach metadata, check, then move into place."""
    cfg = model.cfg
    b = 2
    args = (torch.randn(b, cfg.channels, cfg.resolution, cfg.resolution), torch.full((b,), 0.5),
            torch.zeros(b, dtype=torch.long), torch.zeros(b, cfg.num_latents, cfg.latent_dim))
    tmp = path + ".tmp"
    torch.onnx.export(model.eval(), args, tmp, opset_version=OPSET, input_names=INPUTS, output_names=OUTPUTS,
                      dynamic_axes={n: {0: "batch"} for n in INPUTS + OUTPUTS}, do_constant_folding=True)
    proto = onnx.load(tmp)
    # Tracing leaves the latents' slice length symbolic; the contract's readers want it stated.
    static = {"pred": [cfg.channels, cfg.resolution, cfg.resolution], "latents_out": [cfg.num_latents, cfg.latent_dim]}
    for out in proto.graph.output:
        for dim, size in zip(out.type.tensor_type.shape.dim[1:], static[out.name]):
            dim.ClearField("dim_param")
            dim.dim_value = size
    if half_min_elements is not None or os.path.getsize(tmp) > MAX_FILE_MB * 1e6:
        store_large_weights_as_half(proto, HALF_MIN_ELEMENTS if half_min_elements is None else half_min_elements)
        meta = {"rin.storage": "large initializers stored as float16, computed in float32", **meta}
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, tmp)
    os.replace(tmp, path)


def store_large_weights_as_half(proto, min_elements: int) -> None:
    """Store the big stem/head matrices of high-resolution models as float16 behind a Cast to
    float32, halving their bytes; ONNX Runtime folds the Cast at load, so compute stays float32."""
    from onnx import helper, numpy_helper
    casts = []
    # Constant nodes (buffers that tracing folded: the head's resize matrices) become initializers first.
    for node in [n for n in proto.graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"]:
        t = node.attribute[0].t
        if t.data_type == onnx.TensorProto.FLOAT and int(np.prod(t.dims)) >= min_elements:
            init = proto.graph.initializer.add()
            init.CopyFrom(t)
            init.name = node.output[0]
            proto.graph.node.remove(node)
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
            init.CopyFrom(half)
    nodes = casts + list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)


def parse_interval(text: str) -> tuple[float, float]:
    """'low,high' with 0 <= low < high <= 1, as the service reads rin.guidance_interval (GuidanceInterval.TryParse)."""
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"'{text}' is not two numbers 'low,high' (e.g. '0.1,0.8')") from None
    if not (0 <= low < high <= 1):
        raise ValueError(f"'{text}' must have 0 <= low < high <= 1")
    return low, high


def interval_text(interval: tuple[float, float]) -> str:
    return f"{interval[0]:g},{interval[1]:g}"


def choose_guidance(sweep: list[dict]) -> float:
    """The default guidance weight: the most accurate weight whose FD stays within 3x the real-image
    floor (ties to the smaller weight); if none does, the weight with the smallest FD."""
    within = [r for r in sweep if r["fd"] <= 3 * r["real_fd"]]
    if within:
        return max(within, key=lambda r: (r["accuracy"], -r["guidance"]))["guidance"]
    return min(sweep, key=lambda r: r["fd"])["guidance"]


def judge(model: RIN, cfg: dict, args) -> dict:
    """The guidance sweep (unless --guidance), then the chosen weight judged at --samples-per-class, by the
    data set's own judge (training.classifier for Fashion-MNIST, training.glyph_judge for glyphs)."""
    if cfg["dataset"] == "glyphs":
        from .glyph_judge import judge_model
    else:
        from .classifier import judge_model
    subset = {}
    if args.judge_classes:        # every k-th class, for a quick look (a rehearsal); the card judges them all
        subset = dict(classes=list(range(0, model.cfg.num_classes, max(1, model.cfg.num_classes // args.judge_classes))))
    if args.guidance is not None:
        guidance, sweep = args.guidance, []
    else:
        sweep = [judge_model(model, cfg, per_class=args.sweep_per_class, guidance=w, **subset) for w in args.guidance_sweep]
        for r in sweep:
            print(f"sweep: guidance {r['guidance']:g}: accuracy {r['accuracy']:.4f}, FD {r['fd']:.3f} "
                  f"(real {r['real_fd']:.3f}), " + (f"edge width {r['edge_width']:.2f}" if "edge_width" in r
                                                   else f"blockiness {r['blockiness']:.3f}"))
        guidance = choose_guidance(sweep)
    return dict(judge_model(model, cfg, per_class=args.samples_per_class, guidance=guidance, **subset), sweep=sweep)


def checkpoint_identity(state: dict, path: str) -> dict:
    """What a record was judged on: a carried model by its trunk's bytes and its resolution, any
    other checkpoint by its own bytes."""
    from .carry import file_sha256
    carried = state.get("carried_from")
    if isinstance(carried, dict):
        return dict(trunk_sha256=carried["sha256"], lattice=carried["lattice"], resolution=state["config"]["model"]["resolution"])
    return dict(sha256=file_sha256(path))


def read_record(path: str, state: dict, resolution: int, checkpoint_path: str = "") -> dict:
    with open(path) as f:
        r = json.load(f)
    carried = state.get("carried_from")
    want = r.get("checkpoint", {})
    if "sha256" in want:             # judged on the very file: a fine-tuned model, not a carried one
        from .carry import file_sha256
        if want["sha256"] != file_sha256(checkpoint_path) or r["resolution"] != resolution:
            raise ValueError(f"{path} judged the file with sha256 {want['sha256']}, not {checkpoint_path}")
        return r
    if not (isinstance(carried, dict) and want.get("trunk_sha256") == carried["sha256"]
            and want.get("lattice") == carried["lattice"] and want.get("resolution") == resolution == r["resolution"]):
        raise ValueError(f"{path} judged {want or 'an unnamed checkpoint'}, not this one (a model carried from "
                         f"{carried.get('sha256') if isinstance(carried, dict) else '?'} to {resolution} px)")
    return r


def judged_metadata(r: dict) -> dict:
    """A judge's figures as the rin.* metadata keys of MODEL-CONTRACT.md."""
    meta = {"rin.class_accuracy": f"{r['accuracy']:.4f}", "rin.fd": f"{r['fd']:.4f}", "rin.fd_real": f"{r['real_fd']:.4f}"}
    if "edge_width" in r:
        meta.update({"rin.edge_width": f"{r['edge_width']:.4f}", "rin.edge_width_real": f"{r['real_edge_width']:.4f}"})
    if "blockiness" in r:
        meta["rin.blockiness"] = f"{r['blockiness']:.4f}"
    return meta


def annotate(path: str, meta: dict) -> None:
    """Set metadata keys of an exported file (its graph and weights untouched), atomically."""
    proto = onnx.load(path)
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    for k, v in keep + list(meta.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, path + ".tmp")
    os.replace(path + ".tmp", path)


def read_metadata(path: str) -> dict:
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--judge", action="store_true", help="score with the classifier (training.classifier) first")
    ap.add_argument("--samples-per-class", type=int, default=100)
    ap.add_argument("--guidance", type=float, help="the default guidance weight to judge and store (no sweep); "
                    "without --judge, only stored (figures measured later: glyph_judge folder --annotate)")
    ap.add_argument("--guidance-sweep", type=lambda t: [float(v) for v in t.split(",")], default=[0, 0.5, 1, 1.5, 2, 3],
                    help="weights to try when --guidance is not given (default 0,0.5,1,1.5,2,3)")
    ap.add_argument("--guidance-interval", help="LOW,HIGH: store rin.guidance_interval, so that the service guides only "
                    "the steps whose t is in [LOW, HIGH] (training.guidance_interval chooses it); default every step")
    ap.add_argument("--sweep-per-class", type=int, default=20, help="samples per class for each weight of the sweep")
    ap.add_argument("--float32", action="store_true", help="store every weight as float32 (default: matrices of "
                    f"{SHIP_HALF_MIN_ELEMENTS}+ values as float16, judged as such)")
    ap.add_argument("--force", action="store_true", help="replace an existing model even if it scores higher")
    ap.add_argument("--device", default="cpu", help="where the judge samples (cpu, cuda)")
    ap.add_argument("--record", help="write the judged figures to this JSON file")
    ap.add_argument("--no-export", action="store_true", help="judge (and --record) only; write no model")
    ap.add_argument("--judged", help="a --record file: its figures instead of judging here")
    ap.add_argument("--judge-classes", type=int, default=0, help="judge only about this many classes, evenly spaced "
                    "(glyph models; a rehearsal)")
    args = ap.parse_args(argv)
    try:
        model, state = model_from_checkpoint(args.checkpoint)
    except (OSError, KeyError, RuntimeError) as e:
        print(f"error: cannot read checkpoint {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    cfg = state["config"]
    half = None if args.float32 else SHIP_HALF_MIN_ELEMENTS
    if half is not None:
        round_weights_to_half(model, half)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.access(out_dir, os.W_OK):
        print(f"error: cannot write to {out_dir}", file=sys.stderr)
        return 2
    extra = {}
    if args.judge or args.judged:
        if args.judged:
            try:
                r = read_record(args.judged, state, model.cfg.resolution, args.checkpoint)
            except (OSError, KeyError, ValueError) as e:
                print(f"error: --judged: {e}", file=sys.stderr)
                return 2
            guidance = r["guidance"]
        else:
            r = judge(model.to(args.device), cfg, args)
            model.cpu()
            r.update(checkpoint=checkpoint_identity(state, args.checkpoint), device=args.device, torch=torch.__version__)
            if args.record:
                with open(args.record, "w") as f:
                    json.dump(r, f, indent=2)
            guidance = r["guidance"]
        shape = (f"edge width {r['edge_width']:.2f} px (real {r['real_edge_width']:.2f})" if "edge_width" in r else
                 f"blockiness {r['blockiness']:.3f} (real {r['real_blockiness']:.3f})")
        print(f"judged {r['samples']} samples at {r['resolution']} px, guidance {guidance:g}: class accuracy "
              f"{r['accuracy']:.4f} (real {r['real_accuracy']:.4f}), FD {r['fd']:.3f} (real {r['real_fd']:.3f}, "
              f"ratio {r['fd'] / r['real_fd']:.2f}), {shape}")
        print(json.dumps({k: v for k, v in r.items() if k != "images"}))
        if args.no_export:
            return 0
        acc = r["accuracy"]
        extra.update({"rin.default_guidance": f"{guidance:g}", **judged_metadata(r)})
        if os.path.exists(args.out) and not args.force:
            old = read_metadata(args.out).get("rin.class_accuracy")
            if old is not None and float(old) > acc:
                print(f"kept {args.out}: it scores {old} > {acc:.4f} (use --force to replace)", file=sys.stderr)
                return 1
    elif args.guidance is not None:      # judged later, through the C# sampler (judged_metadata)
        extra["rin.default_guidance"] = f"{args.guidance:g}"
    if args.guidance_interval:
        try:
            extra["rin.guidance_interval"] = interval_text(parse_interval(args.guidance_interval))
        except ValueError as e:
            print(f"error: --guidance-interval: {e}", file=sys.stderr)
            return 2
    meta = metadata(model, name=cfg["name"], prediction=cfg["prediction"], input_scale=cfg["input_scale"],
                    normalize_input=cfg["normalize_input"], train_schedule=cfg["train_schedule"],
                    dataset=cfg["dataset"], train_steps=trained_steps(state), trained=True, extra=extra)
    if half is not None:
        meta["rin.storage"] = f"tensors of {half}+ values stored as float16, computed in float32"
    export_onnx(model, args.out, meta, half_min_elements=half)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB, {model.num_params()} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
