"""Tiny random-weight models: the real architecture and file format, small enough for tests."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.modelconfig import ModelConfig
from engine.modelfile import DrumDiffusion, save_model

TINY_UNET = dict(
    in_channels=2, channels=[8, 16, 16], factors=[1, 2, 2], items=[1, 1, 1],
    attentions=[0, 0, 1], attention_heads=2, attention_features=8, modulation_features=32,
)
TINY_CONDITIONING = dict(use_embedding_cfg=True, embedding_features=16, embedding_max_length=1, cross_attentions=[0, 0, 1])


def tiny_config(classes: tuple[str, ...] = (), length: int = 1024) -> ModelConfig:
    unet = dict(TINY_UNET, **(TINY_CONDITIONING if classes else {}))
    return ModelConfig(unet=unet, length=length, classes=classes)


def tiny_model(classes: tuple[str, ...] = (), seed: int = 0) -> DrumDiffusion:
    torch.manual_seed(seed)
    model = DrumDiffusion(tiny_config(classes)).eval()
    if model.class_embedding is not None:
        # nn.Embedding starts at N(0, 1); make the classes clearly apart so guidance has an effect
        model.class_embedding.weight.data.mul_(3.0)
    return model


def write_tiny_model(path: Path, classes: tuple[str, ...] = (), seed: int = 0) -> Path:
    save_model(tiny_model(classes, seed), path)
    return path


def write_kit_preset(path: Path, model_file: Path, pads: dict[str, str]) -> Path:
    """A preset with one model named 'kit'; `pads` maps pad names to their YAML flow mappings,
    e.g. {"kick": "notes: [36], class: kick, steps: 2"} ('model: kit' is added)."""
    lines = ["models:", f"  kit: {{path: {model_file}}}", "pads:"]
    lines += [f"  {name}: {{{fields}, model: kit}}" for name, fields in pads.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
