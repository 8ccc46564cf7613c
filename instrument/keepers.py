"""Keepers: a pad's last played one-shot, written as a WAV with a JSON of how it was made.

Runs on the main thread when the keep button was pressed (`ControlMap.keep_requests`). The
slot last played stays the player's until another hit on that pad, so it is copied, then
checked not to have been lent to the generator meanwhile (as `Pools.snapshot` does).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile

from engine.cache import model_hash
from engine.outfile import replacing
from engine.pool import Pools
from instrument.preset import Pad


def last_played(pools: Pools, p: int) -> tuple[np.ndarray, int, int] | None:
    """(audio (channels, frames), seed, slot) of pad p's last played one-shot, or None."""
    s = int(pools.lru_last[p])
    if s < 0:
        return None
    lent = int(pools.lent[p, s])
    if lent != pools.filled[p, s]:
        return None
    audio = pools.audio[p][s][:, : int(pools.frames[p, s])].copy()
    seed = int(pools.seed[p, s])
    if pools.lent[p, s] != lent or pools.lru_last[p] != s:
        return None   # lent, or replaced by another hit, while copying
    return audio, seed, s


def write_keeper(pools: Pools, p: int, pad: Pad, folder: Path, sample_rate: int) -> Path | None:
    """Write pad p's last played one-shot into `folder`; None when there is none to keep."""
    found = last_played(pools, p)
    if found is None:
        return None
    audio, seed, s = found
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pad.name}-{seed}.wav"
    with replacing(path, commit=True) as temp:
        soundfile.write(temp, audio.T, sample_rate, subtype="FLOAT", format="WAV")
    with replacing(path.with_suffix(".json"), commit=True) as temp:
        Path(temp).write_text(json.dumps(_made_with(pools, p, s, pad, seed, sample_rate), indent=1) + "\n")
    return path


def _made_with(pools: Pools, p: int, s: int, pad: Pad, seed: int, sample_rate: int) -> dict:
    spec = pad.spec
    settings = spec.settings
    strength, guidance = float(pools.made_strength[p, s]), float(pools.made_guidance[p, s])
    if not math.isnan(strength):   # made while a knob had turned them
        settings = replace(settings, strength=strength, guidance=guidance)
    return {
        "pad": pad.name, "class": spec.class_name, "seed": seed,
        "model": str(spec.model), "model_hash": model_hash(Path(spec.model)),
        "settings": {k: v for k, v in settings.describe().items() if k != "finish"},
        "source": None if spec.source is None else str(spec.source),
        "tune": spec.tune_for(seed), "decay": spec.decay, "sample_rate": sample_rate,
    }
