"""What the engine needs to know about a pad to keep its pool full."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.settings import Settings


@dataclass(frozen=True)
class PadSpec:
    name: str
    model: Path                      # engine model file
    class_name: str | None = None    # for class-conditional models
    pool_size: int = 12
    settings: Settings = field(default_factory=Settings)
    source: Path | None = None       # variation source (audio file); settings.strength applies
    tune: float = 0.0                # semitones, applied when the pool is filled
    decay: float | None = None       # seconds until the one-shot has faded out; None: as made
    sample_rate: int | None = None   # the audio device's rate; None: the model's
    pitch_spread: float = 0.0        # humanize: cents each one-shot is tuned by at most, either way
    tune_room: float = 0.0           # semitones a tune knob can take it below `tune` (slots sized for it)

    def output_frames(self, model_rate: int, model_length: int) -> int:
        """Frames of the longest finished one-shot after resampling to the device rate and
        tuning (the lowest a pitch spread can take it)."""
        lowest = self.tune - self.tune_room - self.pitch_spread / 100
        return math.ceil(model_length * playback_ratio(model_rate, self.sample_rate, lowest))

    def tune_for(self, seed: int) -> float:
        """The semitones a one-shot of this seed is tuned by: `tune`, spread by the seed."""
        if not self.pitch_spread:
            return self.tune
        spread = np.random.default_rng([seed, 0x70697463]).uniform(-1.0, 1.0)
        return self.tune + float(spread) * self.pitch_spread / 100

    def cache_key(self, model_hash: str) -> str:
        """Same model file and same sound settings: same key, so cached one-shots still fit."""
        settings = asdict(self)
        settings.pop("name")
        settings.pop("pool_size")
        settings["model"] = model_hash
        settings["source"] = None if self.source is None else _file_digest(self.source)
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def playback_ratio(model_rate: int, device_rate: int | None, tune: float) -> float:
    """Output frames per model frame: resampling to the device rate, then down `tune` semitones
    stretches, up shortens (a tuned sampler changes pitch and length together)."""
    return ((device_rate or model_rate) / model_rate) * 2 ** (-tune / 12)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
