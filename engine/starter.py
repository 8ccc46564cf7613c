"""Starter pools: a few one-shots per class that ship beside a model, so that a kit sounds the
moment it starts on a machine that has never generated anything.

MODEL.safetensors may have MODEL.starter.flac beside it (the one-shots, finished, at the
model's rate and length, one after another; 16-bit FLAC) and MODEL.starter.json (the model's
sha256 and each one-shot's class and seed). `load_starters` puts them into pools that are
still empty after the cache was loaded, tuned for each pad as the generator would, and marked
as already played, so the generator replaces every one of them first. A starter that does not
belong to the model file (another hash) or cannot be read is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import soundfile

from engine.cache import model_hash
from engine.errors import InputError
from engine.modelconfig import read_config
from engine.outfile import replacing
from engine.pads import PadSpec
from engine.pool import ORIGIN_STARTER, Made, Pools
from engine.resample import to_playback

FORMAT = "noisepad-starter"
log = logging.getLogger("noisepad.starter")


def starter_files(model: str | Path) -> tuple[Path, Path]:
    """(audio, description) beside a model file."""
    base = Path(model).with_suffix("")
    return base.with_name(base.name + ".starter.flac"), base.with_name(base.name + ".starter.json")


def write_starter(model: str | Path, shots: list[np.ndarray], classes: list[str | None], seeds: list[int]) -> None:
    """Store finished (channels, length) one-shots made by `model` as its starter."""
    config = read_config(model)
    audio_path, description_path = starter_files(model)
    audio = np.concatenate([np.asarray(shot, np.float32).T for shot in shots])
    description = {"format": FORMAT, "model_sha256": model_hash(Path(model)),
                   "shots": [{"class": c, "seed": int(s)} for c, s in zip(classes, seeds)]}
    with replacing(audio_path, commit=True) as temp:
        soundfile.write(temp, audio, config.sample_rate, subtype="PCM_16", format="FLAC")
    with replacing(description_path, commit=True) as temp:
        Path(temp).write_text(json.dumps(description, indent=1) + "\n")


def read_starter(model: str | Path) -> tuple[np.ndarray, list[dict]] | None:
    """(one-shots (n, channels, length), their descriptions), or None when the model has no
    starter of its own."""
    audio_path, description_path = starter_files(model)
    if not audio_path.is_file():
        return None
    try:
        description = json.loads(description_path.read_text())
        if description.get("format") != FORMAT or description.get("model_sha256") != model_hash(Path(model)):
            log.warning("%s: not made by %s; not used", audio_path, Path(model).name)
            return None
        config = read_config(model)
        audio, _ = soundfile.read(str(audio_path), dtype="float32", always_2d=True)
        shots = description["shots"]
        audio = audio.reshape(len(shots), config.length, audio.shape[1]).transpose(0, 2, 1)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        log.warning("%s: cannot be read (%s); not used", audio_path, error)
        return None
    return np.ascontiguousarray(audio), shots


def load_starters(pools: Pools, specs: list[PadSpec]) -> list[int]:
    """Fill each empty pool that plays a model's own sound (no variation source) from that
    model's starter; one-shots loaded per pad. Only before the audio and the generator start."""
    starters: dict[Path, tuple | None] = {}
    loaded = []
    for p, spec in enumerate(specs):
        count = 0
        model = Path(spec.model).resolve()
        if pools.available(p) == 0 and spec.source is None:
            if model not in starters:
                starters[model] = read_starter(model)
            count = _preload(pools, p, spec, starters[model])
        loaded.append(count)
    return loaded


def _preload(pools: Pools, p: int, spec: PadSpec, starter) -> int:
    if starter is None:
        return 0
    audio, shots = starter
    rate = read_config(spec.model).sample_rate
    count = 0
    for shot, about in zip(audio, shots):
        if about["class"] == spec.class_name:
            played = to_playback(shot, rate, spec.sample_rate, spec.tune, spec.decay)
            if not pools.preload(p, played, int(about["seed"]), fresh=False, made=Made(origin=ORIGIN_STARTER)):
                break
            count += 1
    return count


def make_starter(model: str | Path, per_class: int, seed: int = 0, device: str = "cpu") -> int:
    """Generate `per_class` one-shots of each class (of the model, if unconditional) at the
    settings the model asks for and store them as its starter; returns how many."""
    from engine.sample_batch import Item, generate
    from engine.modelfile import load_model
    from engine.settings import model_settings

    loaded = load_model(model, device)
    settings = model_settings(loaded.config)
    shots, names, seeds = [], [], []
    for c, name in enumerate(loaded.config.classes or (None,)):
        index = None if name is None else loaded.class_index(name)
        made = 0
        for first in range(seed + 1000 * c, seed + 1000 * c + 4 * per_class, per_class):  # retries if silent
            items = [Item(first + i, index) for i in range(per_class)]
            for item, audio in zip(items, generate(loaded, items, settings)):
                if audio is not None and made < per_class:
                    shots.append(audio)
                    names.append(name)
                    seeds.append(item.seed)
                    made += 1
            if made == per_class:
                break
    write_starter(model, shots, names, seeds)
    return len(shots)


def starter_shot(model: str | Path, class_name: str | None, seed: int) -> np.ndarray:
    """The starter one-shot of this class and seed, at the model's rate, as stored."""
    starter = read_starter(model)
    if starter is not None:
        audio, shots = starter
        for shot, about in zip(audio, shots):
            if about["class"] == class_name and int(about["seed"]) == seed:
                return shot
    raise InputError(starter_files(model)[0], f"holds no {class_name or 'one-shot'} of seed {seed}")
