"""The LightningModule: v-diffusion on a DrumDiffusion, AdamW with warmup, EMA weights."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch.optim.swa_utils import AveragedModel

from engine.modelfile import DrumDiffusion, copy_model
from training.config import Recipe
from training.objective import v_loss


class DiffusionTraining(pl.LightningModule):
    def __init__(self, model: DrumDiffusion, recipe: Recipe):
        super().__init__()
        self.model = model
        self.recipe = recipe
        self.ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(recipe.ema_decay), use_buffers=True)
        self.ema.module = copy_model(model)   # AveragedModel's deep copy would run the online model's layers
        self.ema.requires_grad_(False)

    @property
    def ema_model(self) -> DrumDiffusion:
        return self.ema.module

    def training_step(self, batch, batch_idx):
        audio, class_ids = augment(*batch, self.recipe)
        loss = v_loss(self.model, audio, class_ids, self.recipe.cfg_dropout,
                      noise_shift=self.recipe.noise_shift, min_snr_gamma=self.recipe.min_snr_gamma)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_train_start(self):
        # after a resume is restored: a resumed session draws new batches and noise, each GPU its own
        torch.manual_seed(self.recipe.seed + 1000 * self.global_rank + 7919 * self.global_step)
        self._take_recipe_rates()

    def _take_recipe_rates(self):
        """A resumed run trains at its train section's rate and weight decay, not the checkpoint's."""
        optimizer, schedule = self.optimizers(use_pl_optimizer=False), self.lr_schedulers()
        schedule.base_lrs = [self.recipe.learning_rate] * len(optimizer.param_groups)
        factor = schedule.lr_lambdas[0](schedule.last_epoch)
        for group in optimizer.param_groups:
            group.update(initial_lr=self.recipe.learning_rate, lr=self.recipe.learning_rate * factor,
                         weight_decay=self.recipe.weight_decay)

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        self.ema.update_parameters(self.model)   # only on real steps: after accumulation, before callbacks

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if torch.cuda.is_available():
            self.log("gpu_peak_mib", torch.cuda.max_memory_allocated() / 2**20, on_step=True, on_epoch=False)
            # what the caching allocator holds: nearer to what the card must have free
            self.log("gpu_peak_reserved_mib", torch.cuda.max_memory_reserved() / 2**20, on_step=True, on_epoch=False)

    def validation_step(self, batch, batch_idx):
        audio, class_ids = batch
        generator = torch.Generator().manual_seed(1000 + batch_idx)   # the same noise at every validation
        loss = v_loss(self.ema_model, audio, class_ids, 0.0, generator)
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=audio.shape[0])

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.recipe.learning_rate, weight_decay=self.recipe.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate_factor(self.recipe))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def rate_factor(recipe: Recipe):
    """The learning rate's factor at each step: a linear warmup, then constant or, with
    decay_steps, a half cosine from 1 down to final_lr_fraction, which it keeps."""
    warmup, decay, final = max(1, recipe.warmup_steps), recipe.decay_steps, recipe.final_lr_fraction

    def factor(step: int) -> float:
        ramp = min(1.0, (step + 1) / warmup)
        if decay <= 0:
            return ramp
        progress = min(1.0, max(0, step + 1 - warmup) / decay)
        return ramp * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))

    return factor


def ema_with_warmup(decay: float):
    """EMA whose decay grows with the number of updates n as (1 + n) / (10 + n), up to `decay`:
    a short run is not dominated by its random initial weights (after 500 steps a plain 0.999
    EMA is still 61% initialisation)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = float(updates)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    return update


def augment(audio: torch.Tensor, class_ids: torch.Tensor, recipe: Recipe):
    """Label-preserving variety: random polarity and left/right swap per item; with the recipe's
    settings, a random gain cut and a small change of pitch (resampling, cropped or padded)."""
    batch = audio.shape[0]
    polarity = torch.where(torch.rand(batch, device=audio.device) < 0.5, -1.0, 1.0).view(-1, 1, 1)
    swap = torch.rand(batch, device=audio.device) < 0.5
    audio = torch.where(swap.view(-1, 1, 1), audio.flip(1), audio) * polarity.to(audio.dtype)
    if recipe.augment_pitch > 0:
        audio = torch.stack([_repitch(a, float(torch.empty(1).uniform_(-recipe.augment_pitch, recipe.augment_pitch)))
                             for a in audio])
    if recipe.augment_gain_db > 0:
        gain_db = torch.empty(batch, 1, 1, device=audio.device).uniform_(-recipe.augment_gain_db, 0.0)
        audio = audio * (10 ** (gain_db / 20)).to(audio.dtype)
    return audio, class_ids


def _repitch(audio: torch.Tensor, semitones: float) -> torch.Tensor:
    """Played back faster (up) or slower (down), at the same length."""
    length = audio.shape[-1]
    stretched = int(round(length * 2 ** (-semitones / 12)))
    resampled = torch.nn.functional.interpolate(audio[None], size=stretched, mode="linear", align_corners=False)[0]
    out = audio.new_zeros(audio.shape)
    out[:, :min(length, stretched)] = resampled[:, :length]
    return out
