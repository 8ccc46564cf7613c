"""Resampling and tuning of finished one-shots, done when a pool is filled, never while playing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from engine.pads import playback_ratio


def to_playback(audio: np.ndarray, model_rate: int, device_rate: int | None, tune: float) -> np.ndarray:
    """Resample (channels, frames) float32 audio for the device rate and pitch it by `tune` semitones."""
    ratio = Fraction(playback_ratio(model_rate, device_rate, tune)).limit_denominator(1000)
    if ratio == 1:
        return np.ascontiguousarray(audio, dtype=np.float32)
    out = resample_poly(audio, ratio.numerator, ratio.denominator, axis=-1)
    return np.ascontiguousarray(out, dtype=np.float32)
