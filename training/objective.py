"""The v-diffusion training objective, with the same noise schedule as the library's VDiffusion.

Written out (rather than calling VDiffusion.forward) so that validation can draw its noise
levels and noise from a fixed generator and so give a comparable loss at every evaluation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.modelfile import DrumDiffusion


def v_loss(model: DrumDiffusion, x: torch.Tensor, class_ids: torch.Tensor | None,
           cfg_dropout: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    x = x * model.config.data_scale
    batch = x.shape[0]
    t = torch.rand(batch, generator=generator, device="cpu").to(x.device)
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device, x.dtype)
    alpha = torch.cos(t * math.pi / 2).view(-1, 1, 1).to(x.dtype)
    sigma = torch.sin(t * math.pi / 2).view(-1, 1, 1).to(x.dtype)
    x_noisy = alpha * x + sigma * noise
    v_target = alpha * noise - sigma * x
    conditioning = {}
    if model.class_embedding is not None:
        conditioning = {"embedding": model.class_embedding(class_ids)[:, None, :], "embedding_mask_proba": cfg_dropout}
    v_predicted = model.velocity(x_noisy, t, **conditioning)
    return F.mse_loss(v_predicted.float(), v_target.float())
