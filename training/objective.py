"""The v-diffusion training objective, with the same noise schedule as the library's VDiffusion.

Written out (rather than calling VDiffusion.forward) so that validation can draw its noise
levels and noise from a fixed generator and so give a comparable loss at every evaluation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.modelfile import DrumDiffusion
from engine.sampling import alpha_sigma


def noise_levels(batch: int, shift: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """t for each item: uniform in [0, 1), or with `shift` != 1 moved so that the noise-to-signal
    ratio tan(t*pi/2) is multiplied by it (above 1: more training at high noise, below: at low)."""
    t = torch.rand(batch, generator=generator, device="cpu")
    if shift != 1.0:
        t = (torch.atan(torch.tan(t.double() * math.pi / 2) * shift) * 2 / math.pi).float()
    return t


def v_loss(model: DrumDiffusion, x: torch.Tensor, class_ids: torch.Tensor | None,
           cfg_dropout: float = 0.0, generator: torch.Generator | None = None,
           noise_shift: float = 1.0, min_snr_gamma: float = 0.0) -> torch.Tensor:
    """Mean squared error of the predicted velocity; with min_snr_gamma > 0, each item weighted
    by min(SNR, gamma) / (SNR + 1) (Hang et al., 2023: min-SNR for the v objective), which
    lowers the weight of the least noisy levels."""
    x = x * model.config.data_scale
    batch = x.shape[0]
    t = noise_levels(batch, noise_shift, generator).to(x.device)
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
    alpha_t, sigma_t = alpha_sigma(t)
    alpha, sigma = (v.float().view(-1, 1, 1).to(x.device, x.dtype) for v in (alpha_t, sigma_t))
    x_noisy = alpha * x + sigma * noise
    v_target = alpha * noise - sigma * x
    conditioning = {}
    if model.class_embedding is not None:
        conditioning = {"embedding": model.class_embedding(class_ids)[:, None, :], "embedding_mask_proba": cfg_dropout}
    v_predicted = model.velocity(x_noisy, t, **conditioning)
    per_item = F.mse_loss(v_predicted.float(), v_target.float(), reduction="none").mean(dim=(1, 2))
    if min_snr_gamma > 0:
        snr = (alpha_t / sigma_t.clamp_min(1e-8)).float().to(x.device) ** 2
        per_item = per_item * snr.clamp_max(min_snr_gamma) / (snr + 1)
    return per_item.mean()
