"""Generate one-shots in batches, each reproducible from (model, seed, settings).

Every item's starting noise comes from its own seed, drawn on the CPU in float32, so an item
comes out the same whatever batch it is in and whatever else is in that batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import InputError
from engine.modelfile import DrumDiffusion
from engine.postprocess import finish_oneshot
from engine.sampling import SCHEDULES, SOLVERS, alpha_sigma, sample_vsampler
from engine.settings import MAX_SEED, Settings


@dataclass(frozen=True)
class Item:
    """One one-shot to make: its seed, its class (conditional models) and its variation source."""

    seed: int
    class_index: int | None = None
    source: np.ndarray | None = None   # (channels, length) float32 at the model's rate


def seed_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    if not 0 <= seed <= MAX_SEED:
        raise InputError(None, f"seed must lie in [0, {MAX_SEED}], not {seed}")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def variation_steps(settings: Settings) -> int:
    """A variation only walks part of the way from noise, so it takes proportionally fewer steps."""
    return max(1, math.ceil(settings.steps * settings.strength))


@torch.inference_mode()
def sample_batch(model: DrumDiffusion, items: list[Item], settings: Settings) -> np.ndarray:
    """Raw model output for each item, float32 (batch, channels, length), before post-processing."""
    settings.check()
    config = model.config
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    shape = (config.channels, config.length)
    noise = torch.stack([seed_noise(item.seed, shape) for item in items])
    t_start = settings.strength if any(item.source is not None for item in items) else 1.0
    if t_start == 0.0:
        return np.stack([item.source for item in items]).astype(np.float32)
    scale = config.data_scale
    x = _noised_start(items, noise, t_start, scale)
    class_ids = _class_ids(model, items, device)
    conditioning = model.conditioning(class_ids, settings.guidance)
    x = x.to(device=device, dtype=dtype)
    steps = variation_steps(settings) if t_start < 1.0 else settings.steps

    if settings.sampler == "vsampler":
        out = sample_vsampler(model.net, x, steps, t_start, **conditioning)
    else:
        ts = SCHEDULES[settings.schedule](steps, t_start)
        batch = x.shape[0]

        def velocity(x_t: torch.Tensor, t: float) -> torch.Tensor:
            return model.velocity(x_t, torch.full((batch,), t, device=device, dtype=dtype), **conditioning)

        out = SOLVERS[settings.sampler](velocity, x, ts)
    return (out.float() / scale).cpu().numpy()


def _noised_start(items: list[Item], noise: torch.Tensor, t_start: float, scale: float) -> torch.Tensor:
    if t_start >= 1.0:
        return noise
    alpha, sigma = (float(v) for v in alpha_sigma(t_start))
    for item in items:
        if item.source is None:
            raise InputError(None, "a variation batch needs a source for every item")
    sources = torch.from_numpy(np.stack([item.source for item in items]).astype(np.float32))
    if sources.shape != noise.shape:
        raise InputError(None, f"variation source has shape {tuple(sources.shape[1:])}, the model makes {tuple(noise.shape[1:])}")
    return alpha * sources * scale + sigma * noise


def _class_ids(model: DrumDiffusion, items: list[Item], device: torch.device) -> torch.Tensor | None:
    if not model.config.conditional:
        return None
    if any(item.class_index is None for item in items):
        raise InputError(None, "the model is class-conditional: every item needs a class")
    return torch.tensor([item.class_index for item in items], device=device)


def generate(model: DrumDiffusion, items: list[Item], settings: Settings) -> list[np.ndarray | None]:
    """Finished one-shots, float32 (channels, length); None where the output was unusable."""
    raw = sample_batch(model, items, settings)
    rate = model.config.sample_rate
    return [finish_oneshot(audio, rate, settings.finish) for audio in raw]
