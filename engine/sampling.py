"""Samplers for v-diffusion, as plain functions over (velocity, x, ts).

Noise levels are the v-diffusion time t in [0, 1]: x_t = cos(t*pi/2) * x0 + sin(t*pi/2) * noise,
and the net predicts v = cos(t*pi/2) * noise - sin(t*pi/2) * x0. `velocity(x, t)` takes a batch
and a scalar t. `ts` runs from the starting noise level down to 0.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from audio_diffusion_pytorch import LinearSchedule, VSampler

Velocity = Callable[[torch.Tensor, float], torch.Tensor]


def alpha_sigma(t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)


def linear_ts(steps: int, t_start: float = 1.0) -> torch.Tensor:
    """Evenly spaced in t, as the seed's VSampler does."""
    return torch.linspace(t_start, 0.0, steps + 1, dtype=torch.float64)


def karras_ts(steps: int, t_start: float = 1.0, rho: float = 7.0, sigma_min: float = 0.01) -> torch.Tensor:
    """Karras et al.'s spacing of the noise-to-signal ratio tan(t*pi/2), ending at exactly 0.

    Small steps near the data, where the waveform's fine detail (and the seed's hiss) is decided.
    """
    sigma_max = math.tan(min(t_start, 0.999) * math.pi / 2)
    if steps == 1 or sigma_max <= sigma_min:
        return torch.tensor([t_start, 0.0], dtype=torch.float64)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    ts = torch.atan(sigmas) * 2 / math.pi
    ts[0] = t_start
    return torch.cat([ts, ts.new_zeros(1)])


SCHEDULES = {"linear": linear_ts, "karras": karras_ts}


def predict_x0(velocity: Velocity, x: torch.Tensor, t: float) -> torch.Tensor:
    alpha, sigma = alpha_sigma(t)
    return float(alpha) * x - float(sigma) * velocity(x, t)


def sample_ddim(velocity: Velocity, x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM for v-diffusion: the same update as audio-diffusion-pytorch's VSampler."""
    for t, t_next in zip(ts[:-1].tolist(), ts[1:].tolist()):
        alpha, sigma = (float(a) for a in alpha_sigma(t))
        alpha_next, sigma_next = (float(a) for a in alpha_sigma(t_next))
        v = velocity(x, t)
        x0 = alpha * x - sigma * v
        noise = sigma * x + alpha * v
        x = alpha_next * x0 + sigma_next * noise
    return x


def sample_dpmpp_2m(velocity: Velocity, x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al., 2022): multistep, second order, in data prediction form.

    Steps in half-log-SNR lambda = log(alpha / sigma); the last step, to t = 0, lands on the
    predicted data.
    """
    alphas, sigmas = alpha_sigma(ts)
    lambdas = torch.log(alphas) - torch.log(sigmas)
    previous_x0, previous_h = None, None
    for i in range(len(ts) - 1):
        x0 = float(alphas[i]) * x - float(sigmas[i]) * velocity(x, float(ts[i]))
        if float(ts[i + 1]) == 0.0:
            return x0
        h = float(lambdas[i + 1] - lambdas[i])
        if previous_x0 is None:
            data = x0
        else:
            r = previous_h / h
            data = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous_x0
        x = float(sigmas[i + 1] / sigmas[i]) * x - float(alphas[i + 1]) * math.expm1(-h) * data
        previous_x0, previous_h = x0, h
    return x


def sample_vsampler(net: torch.nn.Module, x: torch.Tensor, steps: int, t_start: float = 1.0, **conditioning) -> torch.Tensor:
    """The seed's sampler, run by the library itself: the reference the others are measured against."""
    sampler = VSampler(net=net, schedule=LinearSchedule(start=t_start, end=0.0))
    return sampler(x, num_steps=steps, **conditioning)


SOLVERS = {"ddim": sample_ddim, "dpmpp_2m": sample_dpmpp_2m}
