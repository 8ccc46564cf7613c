"""Model configs: what a model file says about itself, read without loading weights or torch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from safetensors import SafetensorError, safe_open

from engine.errors import InputError, error_line

FORMAT = "noisepad-model"
FORMAT_VERSION = 1
REQUIRED_UNET_KEYS = ("in_channels", "channels", "factors", "items")
LIST_UNET_KEYS = ("channels", "factors", "items", "attentions", "cross_attentions")
SAMPLING_KEYS = {"steps", "sampler", "schedule", "guidance"}


@dataclass(frozen=True)
class ModelConfig:
    """What it takes to rebuild a model: UNetV0's arguments and the audio it makes."""

    unet: dict
    sample_rate: int = 44100
    length: int = 32768
    channels: int = 2
    classes: tuple[str, ...] = field(default_factory=tuple)
    # The net works on audio times this: training data scaled to a standard deviation near 0.5
    # puts the noise schedule's signal-to-noise range where drums have their structure.
    data_scale: float = 1.0
    # How the model is meant to be sampled when a preset or command does not say (steps,
    # sampler, schedule, guidance; a distilled student records its own). Empty: the defaults.
    sampling: dict = field(default_factory=dict)

    @property
    def conditional(self) -> bool:
        return len(self.classes) > 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, source: str | Path | None = None) -> "ModelConfig":
        try:
            config = cls(
                unet=dict(data["unet"]),
                sample_rate=int(data["sample_rate"]),
                length=int(data["length"]),
                channels=int(data["channels"]),
                classes=tuple(str(c) for c in data.get("classes", ())),
                data_scale=float(data.get("data_scale", 1.0)),
                sampling=dict(data.get("sampling", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(source, f"model config is incomplete or malformed ({error!r})") from None
        config.check(source)
        return config

    def check(self, source: str | Path | None = None) -> None:
        unet = self.unet
        missing = [key for key in REQUIRED_UNET_KEYS if key not in unet]
        if missing:
            raise InputError(source, f"model config lacks UNet settings {', '.join(missing)}")
        depth = len(unet["channels"])
        for key in LIST_UNET_KEYS:
            if key in unet and len(unet[key]) != depth:
                raise InputError(source, f"model config: '{key}' has {len(unet[key])} entries, 'channels' {depth}")
        if unet["in_channels"] != self.channels:
            raise InputError(source, f"model config: in_channels {unet['in_channels']} != channels {self.channels}")
        downsampling = 1
        for factor in unet["factors"]:
            downsampling *= int(factor)
        if self.length % downsampling:
            raise InputError(source, f"model config: length {self.length} is not a multiple of the UNet's downsampling {downsampling}")
        if self.conditional and not unet.get("use_embedding_cfg"):
            raise InputError(source, "model config names classes but the UNet has no embedding conditioning")
        if not 0 < self.data_scale < 1e6:
            raise InputError(source, f"model config: data_scale must be positive, not {self.data_scale}")
        if len(set(self.classes)) != len(self.classes):
            raise InputError(source, "model config: class names repeat")
        unknown = set(self.sampling) - SAMPLING_KEYS
        if unknown:
            raise InputError(source, f"model config: unknown sampling settings {', '.join(sorted(unknown))}")


def read_config(path: str | Path) -> ModelConfig:
    """The config stored in a model file, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise InputError(path, f"not a readable safetensors model file ({error_line(error)})") from None
    return config_from_metadata(metadata, path)


def config_from_metadata(metadata: dict, path: str | Path) -> ModelConfig:
    if metadata.get("format") != FORMAT:
        raise InputError(path, "safetensors file without a noisepad model config (convert or export it first)")
    try:
        data = json.loads(metadata["config"])
    except (KeyError, json.JSONDecodeError) as error:
        raise InputError(path, f"model config is not valid JSON ({error})") from None
    return ModelConfig.from_dict(data, path)


def file_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
