"""Resampling (soxr, for every rate change in noisepad) and tuning of finished one-shots, done
when a pool is filled, never while playing."""

from __future__ import annotations

import numpy as np
import soxr

from engine.fades import fade_out
from engine.pads import playback_ratio


def resample(audio: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """(channels, frames) audio at another rate, float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate == to_rate:
        return audio
    return np.ascontiguousarray(soxr.resample(audio.T, from_rate, to_rate, quality="HQ").T)


def to_playback(audio: np.ndarray, model_rate: int, device_rate: int | None, tune: float,
                decay: float | None = None) -> np.ndarray:
    """Resample (channels, frames) float32 audio for the device rate, pitch it by `tune`
    semitones and, with `decay`, fade it out so that it is silent `decay` seconds in."""
    ratio = playback_ratio(model_rate, device_rate, tune)
    out = np.array(resample(audio, model_rate, model_rate * ratio), dtype=np.float32)
    if decay is not None:
        rate = device_rate or model_rate
        out *= decay_envelope(out.shape[-1], int(round(decay * rate)))
    out[..., -1] = 0.0  # resampling can ring past the faded tail; a voice must end on zero
    return out


def decay_envelope(frames: int, decay_frames: int) -> np.ndarray:
    """fade_out over `decay_frames`, then silence."""
    envelope = np.zeros(frames, dtype=np.float32)
    n = min(frames, max(1, decay_frames))
    envelope[:n] = fade_out(n)
    return envelope
