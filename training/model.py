"""The RIN denoiser (Recurrent Interface Networks, Jabri, Fleet & Chen 2022, arXiv 2212.11972).

Read top to bottom: config, attention, the read/compute/write block, the network.
The layout follows the official code (google-research/pix2seq, architectures/tape.py):
the image is cut into patches (the *interface*), a small set of learned *latents* reads
from it with cross-attention, thinks with self-attention, and writes back. Compute is
dominated by the latents, so large images with large patches stay cheap.

Attention is written with plain matmul + softmax so the graph exports at ONNX opset 17
on torch 1.13 and runs the same on torch 2.x.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class RINConfig:
    resolution: int = 64
    channels: int = 1
    patch_size: int = 8
    num_latents: int = 32        # L
    latent_dim: int = 192        # D
    interface_dim: int = 128
    num_blocks: int = 3          # B: read -> K x self-attention -> write
    latent_self_attn: int = 2    # K
    heads: int = 4
    mlp_ratio: float = 2.0
    num_classes: int = 10
    class_dropout: float = 0.1   # > 0 adds a null class (id = num_classes) for guidance
    class_names: list = field(default_factory=list)
    # Output head. "patch": a linear layer to p*p*C values per token, then depth-to-space (the
    # paper's; seams show wherever neighbouring tokens disagree). "overlap": each token predicts a
    # 2q x 2q window (q = head_resolution / grid) weighted by a tent that falls to zero at its
    # edges; the windows overlap by half and sum to one, so the output is continuous by
    # construction (a fixed transposed convolution, kernel 2q, stride q). The result, at
    # head_resolution, is bilinearly resized to the full resolution inside the graph.
    head: str = "patch"
    head_resolution: int = 0     # 0: the full resolution ("overlap" only)
    # The data's own pixel lattice, when it is coarser than head_resolution (Fashion-MNIST: 28). The
    # head's image is then read on that lattice (the least-squares inverse of the bilinear resize from
    # it to head_resolution) and bilinearly resized from there to the full resolution: the way the data
    # itself was made, so an exact prediction renders exactly as the data does, with no resampling
    # pattern of its own (a 32 -> 64 px resize has one at period 2). 0: resize head_resolution directly.
    head_lattice: int = 0
    # A stem without bias makes LayerNorm(stem(s * x)) = LayerNorm(stem(x)) for any s > 0, so a model carried
    # to f times the resolution sees its trunk's input even with variance normalization (training.carry).
    stem_bias: bool = True

    @property
    def grid(self) -> int:
        return self.resolution // self.patch_size

    @property
    def head_res(self) -> int:
        return self.head_resolution or self.resolution

    @property
    def null_class(self):
        return self.num_classes if self.class_dropout > 0 else None

    def validate(self) -> None:
        """Raise ValueError with one clear message for a config that cannot train."""
        problems = []
        for name in ("resolution", "channels", "patch_size", "num_latents", "latent_dim",
                     "interface_dim", "num_blocks", "heads", "num_classes"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0 (got {getattr(self, name)})")
        if self.latent_self_attn < 0:
            problems.append(f"latent_self_attn must be >= 0 (got {self.latent_self_attn})")
        if self.patch_size > 0 and self.resolution % self.patch_size:
            problems.append(f"patch_size {self.patch_size} does not divide resolution {self.resolution}")
        for name in ("latent_dim", "interface_dim"):
            if self.heads > 0 and getattr(self, name) % self.heads:
                problems.append(f"{name} {getattr(self, name)} is not divisible by heads {self.heads}")
        if not 0 <= self.class_dropout < 1:
            problems.append(f"class_dropout must be in [0, 1) (got {self.class_dropout})")
        if self.class_names and len(self.class_names) != self.num_classes:
            problems.append(f"class_names has {len(self.class_names)} names for {self.num_classes} classes")
        if self.head not in ("patch", "overlap"):
            problems.append(f"head must be patch or overlap (got {self.head!r})")
        elif self.head == "overlap" and self.patch_size > 0 and self.resolution % self.patch_size == 0:
            hr, g = self.head_res, self.grid
            if hr <= 0 or hr > self.resolution or self.resolution % hr or hr % g or (hr // g) % 2:
                problems.append(f"head_resolution {hr} must divide resolution {self.resolution} and be an even "
                                f"multiple of the {g} x {g} token grid")
            if self.head_lattice and not 0 < self.head_lattice <= hr:
                problems.append(f"head_lattice {self.head_lattice} must be from 1 to head_resolution {hr}")
        elif self.head_resolution or self.head_lattice:
            problems.append("head_resolution and head_lattice apply to the overlap head only")
        if problems:
            raise ValueError("bad model config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    """Multi-head attention of queries from `x` over keys/values from `context`."""

    def __init__(self, dim: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        kv = self.kv(context).reshape(b, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ kv[0].transpose(-1, -2) * self.scale, dim=-1)
        return self.out((att @ kv[1]).transpose(1, 2).reshape(b, n, d))


def mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class CrossAttentionLayer(nn.Module):
    """x <- x + Attn(LN(x), LN(context)); x <- x + MLP(LN(x)). Self-attention when context is x."""

    def __init__(self, dim: int, context_dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_ctx = nn.LayerNorm(context_dim)
        self.attn = Attention(dim, context_dim, heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor, context=None) -> torch.Tensor:
        xn = self.norm_x(x)
        ctx = xn if context is None else self.norm_ctx(context)
        x = x + self.attn(xn, ctx)
        return x + self.mlp(self.norm_mlp(x))


class RINBlock(nn.Module):
    """One RIN block: read (latents <- interface), K latent self-attention layers, write."""

    def __init__(self, cfg: RINConfig):
        super().__init__()
        d, di = cfg.latent_dim, cfg.interface_dim
        self.read = CrossAttentionLayer(d, di, cfg.heads, cfg.mlp_ratio)
        self.compute = nn.ModuleList(
            CrossAttentionLayer(d, d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.latent_self_attn))
        self.write = CrossAttentionLayer(di, d, cfg.heads, cfg.mlp_ratio)

    def forward(self, latents, interface):
        latents = self.read(latents, interface)
        for layer in self.compute:
            latents = layer(latents)
        interface = self.write(interface, latents)
        return latents, interface


def gamma_embedding(gamma: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of gamma * 1000 (the network is conditioned on gamma, not t)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=gamma.device) / half)
    args = (gamma.float() * 1000.0)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def tent(q: int) -> torch.Tensor:
    """w(u) = 1 - |u + 1/2 - q| / q over a 2q window: 1/(2q) at its edge pixels, summing to one with the
    neighbouring windows' (which overlap by half)."""
    return 1 - (torch.arange(2 * q, dtype=torch.float32) + 0.5 - q).abs() / q


def tent_sum(q: int, grid: int) -> torch.Tensor:
    """[grid * q]: the sum of the tents that cover each pixel along one axis (1 inside, less at the border)."""
    total = torch.zeros((grid + 1) * q)
    for j in range(grid):
        total[j * q:j * q + 2 * q] += tent(q)
    return total[q // 2:q // 2 + grid * q]


def overlap_add(windows: torch.Tensor, q: int) -> torch.Tensor:
    """[B, g, g, C, 2q, 2q] windows, each centred on its q x q patch -> [B, C, g*q, g*q], the sum of the windows
    where they overlap. On a canvas padded by q/2 each window covers exactly 2 x 2 cells, so each of its four
    q x q quadrants is a depth-to-space image shifted by whole cells: four pads and a crop, no kernel (the
    transposed convolution with a one-hot kernel that this replaces stored (2q)^4 C^2 values)."""
    b, g, _, c = windows.shape[:4]
    total = 0
    for a in (0, 1):
        for k in (0, 1):
            quad = windows[..., a * q:(a + 1) * q, k * q:(k + 1) * q]              # [B, g, g, C, q, q]
            img = quad.permute(0, 3, 1, 4, 2, 5).reshape(b, c, g * q, g * q)
            total = total + F.pad(img, (k * q, (1 - k) * q, a * q, (1 - a) * q))
    h = q // 2
    return total[..., h:h + g * q, h:h + g * q]


def upsampler(n: int, size: int) -> torch.Tensor:
    """[size, n]: the matrix U with U @ img @ U.T equal to F.interpolate(img, (size, size), bilinear,
    align_corners=False). Two matrix products cost a small fraction of a general resize at 1024 px
    (in PyTorch and ONNX Runtime alike) and export as MatMul."""
    eye = torch.eye(n)[:, None, :, None]                                  # n one-hot columns
    cols = F.interpolate(eye, size=(size, 1), mode="bilinear", align_corners=False)
    return cols[:, 0, :, 0].T.contiguous()


class RIN(nn.Module):
    """pred, latents_out = RIN(x, gamma, class_id, latents_in): the graph of MODEL-CONTRACT.md."""

    def __init__(self, cfg: RINConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        p, c, di, d = cfg.patch_size, cfg.channels, cfg.interface_dim, cfg.latent_dim
        # Interface: p x p patches -> tokens, LayerNorm, learned position embedding.
        self.patch_embed = nn.Conv2d(c, di, kernel_size=p, stride=p, bias=cfg.stem_bias)
        self.patch_norm = nn.LayerNorm(di)
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.grid * cfg.grid, di) * 0.02)
        # Latents, plus a time token and a class token that the latents attend to.
        self.latents = nn.Parameter(torch.randn(1, cfg.num_latents, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.class_embed = nn.Embedding(cfg.num_classes + (1 if cfg.null_class is not None else 0), d)
        self.class_parts = None   # training only (ClassParts); inference_state folds it into class_embed
        # Latent self-conditioning: LN -> MLP -> zero-initialized LN, added to the latents.
        self.selfcond_norm = nn.LayerNorm(d)
        self.selfcond_mlp = mlp(d, 2.0)
        self.selfcond_out = nn.LayerNorm(d)
        nn.init.zeros_(self.selfcond_out.weight)
        nn.init.zeros_(self.selfcond_out.bias)
        self.blocks = nn.ModuleList(RINBlock(cfg) for _ in range(cfg.num_blocks))
        # Output: LN + linear to the values of each token's patch (or window), see RINConfig.head.
        self.out_norm = nn.LayerNorm(di)
        # Small, not zero: LAMB's trust ratio ||w||/||update|| would keep a zero matrix near zero.
        if cfg.head == "overlap":
            q = cfg.head_res // cfg.grid
            self.out = nn.Linear(di, (2 * q) ** 2 * c)
            w = tent(q)
            self.register_buffer("tent", w[:, None] * w[None, :], persistent=False)
            # The tents' sum along one axis (1 inside, less at the border); the 2-D sum is its outer product.
            self.register_buffer("fold_norm", tent_sum(q, cfg.grid), persistent=False)
            if cfg.head_res != cfg.resolution:
                up = upsampler(cfg.head_res, cfg.resolution)
                if cfg.head_lattice:
                    lat = cfg.head_lattice
                    up = (upsampler(lat, cfg.resolution).double() @ torch.linalg.pinv(upsampler(lat, cfg.head_res).double())).float()
                self.register_buffer("upsample", up, persistent=False)
        else:
            self.out = nn.Linear(di, p * p * c)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, gamma, class_id, latents_in):
        cfg = self.cfg
        b = x.shape[0]
        g = cfg.grid
        interface = self.patch_embed(x).flatten(2).transpose(1, 2)
        interface = self.patch_norm(interface) + self.pos_embed

        latents = self.latents.expand(b, -1, -1)
        latents = latents + self.selfcond_out(self.selfcond_mlp(self.selfcond_norm(latents_in)))
        time_token = self.time_mlp(gamma_embedding(gamma, cfg.latent_dim))[:, None, :]
        class_token = self.class_embed(class_id)
        if self.class_parts is not None:
            class_token = class_token + self.class_parts(class_id)
        class_token = class_token[:, None, :]
        tokens = torch.cat([latents, time_token, class_token], dim=1)

        for block in self.blocks:
            tokens, interface = block(tokens, interface)

        out = self.out(self.out_norm(interface))                      # [B, g*g, values per token]
        if cfg.head == "overlap":
            return self.overlap_output(out), tokens[:, : cfg.num_latents]
        p, c = cfg.patch_size, cfg.channels
        out = out.reshape(b, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)  # depth-to-space
        pred = out.reshape(b, c, g * p, g * p)
        return pred, tokens[:, : cfg.num_latents]

    def overlap_output(self, out: torch.Tensor) -> torch.Tensor:
        """[B, g*g, (2q)^2*C] tent-weighted windows -> overlap-add at head_resolution -> bilinear to R."""
        cfg = self.cfg
        b, g, q = out.shape[0], cfg.grid, cfg.head_res // cfg.grid
        windows = out.reshape(b, g, g, cfg.channels, 2 * q, 2 * q) * self.tent
        norm = self.fold_norm
        img = overlap_add(windows, q) / norm[:, None] / norm[None, :]
        if cfg.head_res != cfg.resolution:   # bilinear resize as two small matrix products (see upsampler)
            img = self.upsample @ img @ self.upsample.T
        return img

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ClassParts(nn.Module):
    """Embeddings shared by the classes that share a part, added to each class's own embedding: one per base letter
    and one per mark (glyphs.class_parts), so that all 24 classes with an acute train one acute. Zero at the start,
    so a model gains them without changing what it draws. Training only: the sum is linear in the class, so
    inference_state folds it into class_embed and the exported graph and the model contract stay as they are. The
    null class (guidance) has its own base row and no mark."""

    def __init__(self, base: list[int], mark: list[int], num_marks: int, rows: int, dim: int):
        super().__init__()
        pad = rows - len(base)                       # the null class, if any: its own base row, mark 0
        self.register_buffer("base_of", torch.tensor(base + list(range(len(base), rows)), dtype=torch.long))
        self.register_buffer("mark_of", torch.tensor(mark + [0] * pad, dtype=torch.long))
        self.base = nn.Embedding(rows, dim)
        self.mark = nn.Embedding(num_marks + 1, dim)
        nn.init.zeros_(self.base.weight)
        nn.init.zeros_(self.mark.weight)

    def forward(self, class_id: torch.Tensor) -> torch.Tensor:
        return self.base(self.base_of[class_id]) + self.mark(self.mark_of[class_id])

    def table(self) -> torch.Tensor:
        """What the parts add to every class row of class_embed."""
        return self(torch.arange(self.base_of.shape[0], device=self.base_of.device))


def inference_state(model: RIN) -> dict:
    """The model's state as a plain RIN's: any ClassParts folded into class_embed.weight, its own tensors dropped."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("class_parts.")}
    if model.class_parts is not None:
        state["class_embed.weight"] = (model.class_embed.weight + model.class_parts.table()).detach().clone()
    return state
