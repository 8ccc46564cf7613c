"""Reading and writing audio files (soundfile), with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile

from engine.errors import InputError, error_line
from engine.outfile import replacing
from engine.resample import resample


def read_source(path: str | Path, sample_rate: int, channels: int, length: int) -> np.ndarray:
    """An audio file as float32 (channels, length) at `sample_rate`: resampled, channels
    matched (mono is duplicated, extra channels dropped), cropped or zero-padded."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "audio file not found")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise InputError(path, f"cannot read audio ({error_line(error, last=True)})") from None
    if data.shape[0] == 0:
        raise InputError(path, "audio file is empty")
    if not np.all(np.isfinite(data)):
        raise InputError(path, "audio file holds NaN or infinite samples")
    audio = data.T
    audio = resample(audio, rate, sample_rate)
    audio = match_channels(audio, channels)
    out = np.zeros((channels, length), dtype=np.float32)
    frames = min(length, audio.shape[1])
    out[:, :frames] = audio[:, :frames]
    return out


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """(channels, frames): extra channels dropped, missing ones copies of the first (mono
    becomes stereo)."""
    if audio.shape[0] >= channels:
        return audio[:channels]
    return np.repeat(audio[:1], channels, axis=0)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int, sidecar: dict | None = None,
              subtype: str = "PCM_24") -> None:
    """Write (channels, frames) float32 as a 24-bit WAV (or `subtype`: FLOAT keeps every bit),
    atomically, with an optional JSON sidecar."""
    path = Path(path)
    with replacing(path, commit=True) as temp:
        soundfile.write(temp, np.asarray(audio).T, sample_rate, subtype=subtype, format="WAV")
        if sidecar is not None:
            path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
