"""Preparing one training one-shot: any file in, a fixed-length 44.1 kHz stereo clip out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyloudnorm

from engine.audiofile import match_channels
from engine.fades import fade_in
from engine.resample import resample


@dataclass(frozen=True)
class OneShotFormat:
    sample_rate: int = 44100
    length: int = 32768
    channels: int = 2
    loudness_lufs: float = -20.0
    peak_ceiling: float = 0.98         # loudness normalization never pushes a peak past this
    onset_below_peak_db: float = 40.0  # the one-shot starts where it first rises to this below its peak
    pre_roll: int = 16                 # samples kept before that onset
    fade_ms: float = 30.0              # fade where a longer sound is cut


class Unusable(Exception):
    """A file that reads but makes no training example (silent, non-finite)."""


def prepare(audio: np.ndarray, rate: int, shape: OneShotFormat = OneShotFormat()) -> np.ndarray:
    """float32 (channels, length): resampled, channels matched, leading silence trimmed,
    cropped (with a fade) or zero-padded, loudness normalized."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.size == 0:
        raise Unusable("no samples")
    if not np.all(np.isfinite(audio)):
        raise Unusable("NaN or infinite samples")
    audio = match_channels(resample(audio.T, rate, shape.sample_rate), shape.channels)
    audio = audio - audio.mean(axis=-1, keepdims=True)
    audio = _trim_leading_silence(audio, shape)
    audio = _fit_length(audio, shape)
    return _normalize(audio, shape)


def _trim_leading_silence(audio: np.ndarray, shape: OneShotFormat) -> np.ndarray:
    level = np.max(np.abs(audio), axis=0)
    peak = float(level.max())
    if peak < 1e-5:
        raise Unusable("silent")
    onset = int(np.argmax(level >= peak * 10 ** (-shape.onset_below_peak_db / 20)))
    return audio[:, max(0, onset - shape.pre_roll):]


def _fit_length(audio: np.ndarray, shape: OneShotFormat) -> np.ndarray:
    out = np.zeros((shape.channels, shape.length), dtype=np.float32)
    if audio.shape[1] <= shape.length:
        out[:, :audio.shape[1]] = audio
        return out
    out[:] = audio[:, :shape.length]
    fade = min(shape.length, int(shape.fade_ms * shape.sample_rate / 1000))
    out[:, -fade:] *= fade_in(fade)[::-1]   # ends on exactly 0
    return out


def _normalize(audio: np.ndarray, shape: OneShotFormat) -> np.ndarray:
    meter = pyloudnorm.Meter(shape.sample_rate)
    # the meter needs one 400 ms block; silence added to a short clip is gated out of the measure
    measured = np.zeros((max(audio.shape[1], int(meter.block_size * shape.sample_rate) + 1), audio.shape[0]))
    measured[:audio.shape[1]] = audio.T
    loudness = meter.integrated_loudness(measured)
    gain = 10 ** ((shape.loudness_lufs - loudness) / 20) if np.isfinite(loudness) else np.inf
    peak = float(np.max(np.abs(audio)))
    gain = min(gain, shape.peak_ceiling / peak)
    return (audio * gain).astype(np.float32)
