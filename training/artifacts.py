"""What a run leaves beside its checkpoints: the EMA model file and listenable samples."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np

from engine.audiofile import write_wav
from engine.generate import Item, generate
from engine.modelfile import DrumDiffusion, save_model
from engine.settings import Settings

MODEL_FILE = "model.safetensors"


class RunArtifacts(pl.Callback):
    """Writes RUN/model.safetensors (EMA weights, an engine model file) with every checkpoint,
    and every `sample_every` steps one generated one-shot per class with its spectrogram."""

    def __init__(self, run: Path, sample_every: int, sample_steps: int):
        self.run = run
        self.sample_every = sample_every
        self.sample_steps = sample_steps
        self._last_sampled = -1

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if trainer.is_global_zero:
            save_model(pl_module.ema_model, self.run / MODEL_FILE)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if trainer.is_global_zero and step % self.sample_every == 0 and step != self._last_sampled and step > 0:
            self._last_sampled = step
            write_samples(pl_module.ema_model, self.run / "samples" / f"step{step:07d}", self.sample_steps)


def write_samples(model: DrumDiffusion, folder: Path, steps: int) -> list[Path]:
    was_training = model.training
    model.eval()
    classes = model.config.classes or ("sample",)
    items = [Item(seed=i, class_index=i if model.config.conditional else None) for i in range(len(classes))]
    oneshots = generate(model, items, Settings(steps=steps))
    model.train(was_training)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, audio in zip(classes, oneshots):
        if audio is None:
            continue
        path = folder / f"{name}.wav"
        write_wav(path, audio, model.config.sample_rate)
        write_spectrogram(path.with_suffix(".png"), audio, model.config.sample_rate, name)
        written.append(path)
    return written


def write_spectrogram(path: Path, audio: np.ndarray, rate: int, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3), dpi=100)
    axis.specgram(audio.mean(axis=0), NFFT=1024, noverlap=768, Fs=rate, cmap="magma", vmin=-140)
    axis.set(title=title, xlabel="s", ylabel="Hz")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
