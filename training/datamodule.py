"""Batches for training: the whole (small) dataset held in memory, classes sampled evenly-ish."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from training.dataset import Manifest, load_split

VALIDATION_FRACTION = 0.05


class DrumData(pl.LightningDataModule):
    def __init__(self, folder: Path, manifest: Manifest, batch_size: int):
        super().__init__()
        self.folder, self.manifest, self.batch_size = folder, manifest, batch_size

    def setup(self, stage=None):
        audio, labels = load_split(self.folder, self.manifest, "train")
        if self.manifest.split("eval"):
            self.validation = TensorDataset(*map(torch.from_numpy, load_split(self.folder, self.manifest, "eval")))
        else:   # no held-out kit: validate on a fixed few of the training one-shots
            count = max(1, int(len(labels) * VALIDATION_FRACTION))
            pick = np.random.default_rng(0).choice(len(labels), count, replace=False)
            self.validation = TensorDataset(torch.from_numpy(audio[pick]), torch.from_numpy(labels[pick]))
        self.training = TensorDataset(torch.from_numpy(audio), torch.from_numpy(labels))
        self.weights = _class_balancing_weights(labels)

    def train_dataloader(self):
        # rare classes drawn more often (1/sqrt(count)), so that claps are not drowned by toms
        sampler = WeightedRandomSampler(self.weights, num_samples=max(len(self.weights), self.batch_size) * 20, replacement=True)
        return DataLoader(self.training, batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.validation, batch_size=self.batch_size)


def _class_balancing_weights(labels: np.ndarray) -> torch.Tensor:
    counts = np.bincount(labels)
    return torch.from_numpy(1.0 / np.sqrt(counts[labels])).double()
