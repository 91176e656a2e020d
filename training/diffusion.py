"""Noise schedules, training loss (Algorithm 2) and the reference sampler (Algorithm 3).

From "On the Importance of Noise Scheduling for Diffusion Models" (Chen 2023,
arXiv 2301.10972). MODEL-CONTRACT.md states every formula here; the C# sampler is held
against this file through the parity fixtures.
"""
from __future__ import annotations

import math
import re

import torch

GAMMA_MIN = 1e-9
STD_FLOOR = 1e-6  # variance normalization divides by max(std, STD_FLOOR)

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class Schedule:
    """gamma(t) for t in [0, 1] (t = 1 is pure noise), computed in float64."""

    def __init__(self, text: str):
        self.text = text.strip()
        m = re.fullmatch(rf"(cosine|sigmoid)@({_NUM}),({_NUM}),({_NUM})", self.text)
        if self.text in ("cosine", "linear"):
            self.kind, self.args = self.text, ()
        elif m:
            self.kind = m.group(1)
            s, e, tau = (float(m.group(i)) for i in (2, 3, 4))
            if not s < e or tau <= 0:
                raise ValueError(f"schedule '{text}': need s < e and tau > 0")
            self.args = (s, e, tau)
        else:
            raise ValueError(f"unknown schedule '{text}'; allowed: cosine, linear, cosine@s,e,tau, sigmoid@s,e,tau")

    def __call__(self, t):
        t = torch.as_tensor(t, dtype=torch.float64)
        if self.kind == "linear":
            g = 1.0 - t
        elif self.kind == "cosine" and not self.args:
            g = torch.cos(((t + 0.0002) / 1.00025) * math.pi / 2) ** 2
        elif self.kind == "cosine":
            s, e, tau = self.args
            v = lambda u: torch.cos(torch.as_tensor(u, dtype=torch.float64) * math.pi / 2) ** (2 * tau)
            g = (v(t * (e - s) + s) - v(e)) / (v(s) - v(e))
        else:
            s, e, tau = self.args
            v = lambda u: torch.sigmoid(torch.as_tensor(u, dtype=torch.float64) / tau)
            g = (v(e) - v(t * (e - s) + s)) / (v(e) - v(s))
        return torch.clamp(g, GAMMA_MIN, 1.0)

    def __repr__(self):
        return f"Schedule({self.text!r})"


def half_log_snr(gamma: float) -> float:
    """λ = ½ log(γ / (1 - γ)), γ clipped to [1e-9, 1 - 1e-9] so the ends of a schedule stay finite."""
    g = min(max(gamma, 1e-9), 1 - 1e-9)
    return 0.5 * (math.log(g) - math.log(1 - g))


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Variance normalization of the network's copy of x_t: per example over C,H,W (population std)."""
    std = x.flatten(1).std(dim=1, unbiased=False).clamp_min(STD_FLOOR)
    return x / std[:, None, None, None]


def to_x0(pred, x_t, g, prediction: str):
    """x̂0 from the network's prediction; g broadcast as [B,1,1,1]."""
    if prediction == "eps":
        return (x_t - torch.sqrt(1 - g) * pred) / torch.sqrt(g)
    if prediction == "x":
        return pred
    if prediction == "v":
        return torch.sqrt(g) * x_t - torch.sqrt(1 - g) * pred
    raise ValueError(f"unknown prediction '{prediction}'")


def training_target(x0, eps, g, prediction: str):
    if prediction == "eps":
        return eps
    if prediction == "x":
        return x0
    if prediction == "v":
        return torch.sqrt(g) * eps - torch.sqrt(1 - g) * x0
    raise ValueError(f"unknown prediction '{prediction}'")


def loss_weights(g: torch.Tensor, prediction: str, loss_weight: str) -> torch.Tensor | None:
    """Per-example weights of the MSE on the prediction target, or None for a plain mean.

    'min_snr@k' (Hang et al. 2023): weight the implied x0 error by min(SNR, k), SNR = g / (1 - g),
    whatever the parameterization: x0 error weighted by min(SNR, k); eps error (= x0 error x SNR) by
    min(SNR, k) / SNR; v error (= x0 error x (SNR + 1)) by min(SNR, k) / (SNR + 1)."""
    if loss_weight in ("", "none"):
        return None
    if not loss_weight.startswith("min_snr@"):
        raise ValueError(f"unknown loss_weight '{loss_weight}'; allowed: none, min_snr@k")
    k = float(loss_weight.split("@", 1)[1])
    snr = (g / (1 - g).clamp_min(1e-12)).flatten()
    w = snr.clamp_max(k)
    if prediction == "eps":
        return w / snr.clamp_min(1e-12)
    if prediction == "v":
        return w / (snr + 1)
    return w


def training_loss(model, images, labels, schedule: Schedule, input_scale: float, prediction: str = "eps",
                  normalize_input: bool = True, self_cond_rate: float = 0.9, class_dropout: float = 0.0,
                  loss_weight: str = "none"):
    """Algorithm 2: one noisy sample per example, latent self-conditioning, MSE on the target
    (optionally weighted per example, see loss_weights)."""
    cfg = model.cfg
    b = images.shape[0]
    x0 = images * input_scale                                        # input scaling b
    t = torch.rand(b, device=images.device)
    g = schedule(t.double().cpu()).float().to(images.device).view(b, 1, 1, 1)
    eps = torch.randn_like(x0)
    x_t = torch.sqrt(g) * x0 + torch.sqrt(1 - g) * eps
    x_in = normalize(x_t) if normalize_input else x_t
    if class_dropout > 0:                                            # null class for guidance
        drop = torch.rand(b, device=images.device) < class_dropout
        labels = torch.where(drop, torch.full_like(labels, cfg.num_classes), labels)

    latents = torch.zeros(b, cfg.num_latents, cfg.latent_dim, device=images.device)
    if self_cond_rate > 0:                                           # pass 1, stop-gradient
        with torch.no_grad():
            _, z = model(x_in, g.view(b), labels, latents)
        keep = (torch.rand(b, device=images.device) < self_cond_rate).float().view(b, 1, 1)
        latents = z.detach() * keep
    pred, _ = model(x_in, g.view(b), labels, latents)               # pass 2, with gradient
    target = training_target(x0, eps, g, prediction)
    per_example = ((pred.float() - target) ** 2).flatten(1).mean(1)
    w = loss_weights(g, prediction, loss_weight)
    return per_example.mean() if w is None else (w * per_example).mean()


@torch.no_grad()
def sample(model, class_id, *, steps: int, schedule: Schedule, input_scale: float, prediction: str,
           normalize_input: bool = True, sampler: str = "ddim", guidance: float = 0.0, null_class=None,
           guidance_interval: tuple[float, float] = (0.0, 1.0), x_init=None, noise=None, generator=None,
           record: bool = False):
    """Algorithm 3. Returns images in [0, 1] as [B,C,H,W] (and the trajectory when record=True).

    sampler: 'ddim', 'ddpm' (large variance 1 - alpha), 'ddpm_small' or 'dpmpp_2m' (DPM-Solver++(2M)). x_init [B,C,H,W] and
    noise [steps,B,C,H,W] may be given (the parity fixtures do); otherwise drawn from generator. guidance_interval
    (low, high): only steps whose t lies in [low, high] are guided, the others take the class half alone (this reference
    runs both halves at every step; the C# sampler, GuidanceInterval, skips the null class once t is below the interval,
    where its prediction is unused, with the same result).
    """
    cfg = model.cfg
    dev = next(model.parameters()).device
    class_id = torch.as_tensor(class_id, dtype=torch.long, device=dev)
    b = class_id.shape[0]
    shape = (b, cfg.channels, cfg.resolution, cfg.resolution)
    x = x_init.to(dev).float() if x_init is not None else torch.randn(shape, generator=generator).to(dev)
    if guidance > 0 and null_class is None:
        raise ValueError("guidance needs a model trained with a null class")
    halves = 2 if guidance > 0 else 1
    labels = torch.cat([class_id, torch.full_like(class_id, null_class)]) if halves == 2 else class_id
    latents = torch.zeros(b * halves, cfg.num_latents, cfg.latent_dim, device=dev)
    xs, x0, x0_prev = [], None, None
    for i in range(steps):
        t = 1.0 - i / steps
        t_next = max(1.0 - (i + 1) / steps, 0.0)
        g, g_next = float(schedule(t)), float(schedule(t_next))
        x_in = normalize(x) if normalize_input else x
        gamma = torch.full((b * halves,), g, dtype=torch.float32, device=dev)
        pred, latents = model(x_in.repeat(halves, 1, 1, 1), gamma, labels, latents)
        pred = pred.float()
        if halves == 2:                                              # classifier-free guidance
            w = guidance if guidance_interval[0] <= t <= guidance_interval[1] else 0.0
            pred = (1 + w) * pred[:b] - w * pred[b:]
        sg, s1g = math.sqrt(g), math.sqrt(1 - g)
        sg32, s1g32 = torch.tensor(sg, dtype=torch.float32), torch.tensor(s1g, dtype=torch.float32)
        if prediction == "eps":
            x0 = (x - s1g32 * pred) / sg32
        elif prediction == "x":
            x0 = pred
        else:
            x0 = sg32 * x - s1g32 * pred
        x0 = x0.clamp(-input_scale, input_scale)
        eps = (x - sg32 * x0) / s1g32
        if sampler == "ddim":
            x = math.sqrt(g_next) * x0 + math.sqrt(1 - g_next) * eps
        elif sampler == "dpmpp_2m":
            # DPM-Solver++(2M) (Lu et al. 2022) in VP form: D = (1 + 1/2r) x̂0 - (1/2r) x̂0_prev with r = h_prev / h in
            # λ = ½ log(γ / (1 - γ)) (γ clipped to [1e-9, 1 - 1e-9]); first order (D = x̂0) at the first and last step;
            # then the DDIM step from D. The C# sampler (Samplers/DpmSolver2M.cs) does the same arithmetic.
            current, previous = 1.0, 0.0
            if 0 < i < steps - 1:
                g_prev = float(schedule(1.0 - (i - 1) / steps))
                lam, lam_prev, lam_next = half_log_snr(g), half_log_snr(g_prev), half_log_snr(g_next)
                r = (lam - lam_prev) / (lam_next - lam)
                current, previous = 1 + 1 / (2 * r), 1 / (2 * r)
            c32, p32 = torch.tensor(current, dtype=torch.float32), torch.tensor(previous, dtype=torch.float32)
            d = c32 * x0 - p32 * (x0_prev if x0_prev is not None else torch.zeros_like(x0))
            x0_prev = x0
            eps_d = (x - sg32 * d) / s1g32
            x = torch.tensor(math.sqrt(g_next), dtype=torch.float32) * d + torch.tensor(math.sqrt(1 - g_next), dtype=torch.float32) * eps_d
        elif sampler in ("ddpm", "ddpm_small"):
            alpha = min(max(g / g_next, 0.0), 1.0)
            var = 1 - alpha if sampler == "ddpm" else (1 - g_next) / (1 - g) * (1 - alpha)
            mu = (x - ((1 - alpha) / s1g) * eps) / math.sqrt(alpha)
            z = noise[i].to(dev).float() if noise is not None else torch.randn(shape, generator=generator).to(dev)
            x = mu + math.sqrt(var) * z
        else:
            raise ValueError(f"unknown sampler '{sampler}'")
        if record:
            xs.append(x.clone())
    image = (x0 / input_scale / 2 + 0.5).clamp(0, 1)
    if record:
        return image, {"x_steps": torch.stack(xs), "x0_final": x0}
    return image
