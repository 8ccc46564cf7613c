"""What a run leaves beside its checkpoints: the EMA model file and listenable samples."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np

from engine.audiofile import write_wav
from engine.sample_batch import Item, generate
from engine.modelfile import DrumDiffusion, save_model
from engine.settings import Settings


class RunArtifacts(pl.Callback):
    """Writes the EMA weights as an engine model file with every checkpoint, and every
    `sample_every` steps one generated one-shot per class with its spectrogram."""

    def __init__(self, model_file: Path, samples: Path, sample_every: int, sample_steps: int):
        self.model_file = model_file
        self.samples = samples
        self.sample_every = sample_every
        self.sample_steps = sample_steps
        self._last_sampled = -1

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if trainer.is_global_zero:
            save_model(pl_module.ema_model, self.model_file)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if trainer.is_global_zero and step > 0 and step % self.sample_every == 0 and step != self._last_sampled:
            self._last_sampled = step
            write_samples(pl_module.ema_model, self.samples / f"step{step:07d}", self.sample_steps)


def write_samples(model: DrumDiffusion, folder: Path, steps: int) -> list[Path]:
    classes = model.config.classes or ("sample",)
    items = [Item(seed=i, class_index=i if model.config.conditional else None) for i in range(len(classes))]
    was_training = model.training
    model.eval()
    try:
        oneshots = generate(model, items, Settings(steps=steps))
    finally:
        model.train(was_training)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, audio in zip(classes, oneshots):
        if audio is not None:
            path = folder / f"{name}.wav"
            write_wav(path, audio, model.config.sample_rate)
            write_spectrogram(path.with_suffix(".png"), audio, model.config.sample_rate, name)
            written.append(path)
    return written


def write_spectrogram(path: Path, audio: np.ndarray, rate: int, title: str) -> None:
    from matplotlib.figure import Figure   # no pyplot: no global backend, no window

    figure = Figure(figsize=(6, 3), dpi=100)
    axis = figure.subplots()
    axis.specgram(audio.mean(axis=0), NFFT=1024, noverlap=768, Fs=rate, cmap="magma", vmin=-140)
    axis.set(title=title, xlabel="s", ylabel="Hz")
    figure.tight_layout()
    figure.savefig(path)
