"""Keepers: a pad's last played one-shot, written as a WAV with its recipe (`engine.recipe`) as JSON.

Runs on the main thread when the keep button was pressed (`ControlMap.keep_requests`). The
slot last played stays the player's until another hit on that pad, so it is copied, then
checked not to have been lent to the generator meanwhile (as `Pools.snapshot` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.audiofile import write_wav
from engine.cache import model_hash
from engine.pads import PadSpec
from engine.pool import Made, Pools
from engine.recipe import Recipe, recipe_for


def last_played(pools: Pools, p: int) -> tuple[np.ndarray, int, Made] | None:
    """(audio (channels, frames), seed, how it was made) of pad p's last played one-shot, or None."""
    s = int(pools.lru_last[p])
    if s < 0:
        return None
    lent = int(pools.lent[p, s])
    if lent != pools.filled[p, s]:
        return None
    audio = pools.audio[p][s][:, : int(pools.frames[p, s])].copy()
    seed, made = int(pools.seed[p, s]), pools.made(p, s)
    if pools.lent[p, s] != lent or pools.lru_last[p] != s:
        return None   # lent, or replaced by another hit, while copying
    return audio, seed, made


def write_keeper(pools: Pools, p: int, name: str, spec: PadSpec, folder: Path) -> Path | None:
    """Write pad p's last played one-shot into `folder`; None when there is none to keep.
    `spec`: the pad's, at the run's rate (`RunSetup.specs`)."""
    found = last_played(pools, p)
    if found is None:
        return None
    audio, seed, made = found
    recipe = recipe_for(spec, seed, model_hash(Path(spec.model)), made)
    return write_oneshot(folder, name, audio, recipe)


def write_oneshot(folder: Path, name: str, audio: np.ndarray, recipe: Recipe, subtype: str = "FLOAT") -> Path:
    """`folder`/NAME_SEED.wav (by default 32-bit float, so it stays bit for bit) with its recipe
    beside it as JSON; returns the WAV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_{recipe.seed}.wav"
    write_wav(path, audio, recipe.sample_rate, {"pad": name, **recipe.to_dict()}, subtype=subtype)
    return path
