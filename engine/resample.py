"""Resampling and tuning of finished one-shots, done when a pool is filled, never while playing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from engine.pads import playback_ratio


def to_playback(audio: np.ndarray, model_rate: int, device_rate: int | None, tune: float,
                decay: float | None = None) -> np.ndarray:
    """Resample (channels, frames) float32 audio for the device rate, pitch it by `tune`
    semitones and, with `decay`, fade it out so that it is silent `decay` seconds in."""
    ratio = Fraction(playback_ratio(model_rate, device_rate, tune)).limit_denominator(1000)
    out = audio if ratio == 1 else resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1)
    out = np.array(out, dtype=np.float32)
    if decay is not None:
        rate = device_rate or model_rate
        out *= decay_envelope(out.shape[-1], int(round(decay * rate)))
    out[..., -1] = 0.0  # resampling can ring past the faded tail; a voice must end on zero
    return out


def decay_envelope(frames: int, decay_frames: int) -> np.ndarray:
    """cos^2 from 1 to 0 over `decay_frames`: flat at the start, so the attack stays intact."""
    envelope = np.zeros(frames, dtype=np.float32)
    n = min(frames, max(1, decay_frames))
    envelope[:n] = np.cos(0.5 * np.pi * np.arange(n) / n) ** 2
    return envelope
