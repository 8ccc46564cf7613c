"""Turn a raw model output into a one-shot that is safe to play: finite, no DC, no clicks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

SILENCE_PEAK = 10 ** (-80 / 20)


@dataclass(frozen=True)
class Finish:
    peak_db: float = -1.0          # normalize each one-shot's peak to this level (dBFS)
    dc_cutoff_hz: float = 10.0     # zero-phase high-pass under the lowest kick fundamentals
    fade_in_ms: float = 0.25       # long enough to remove a step at the start, short enough to keep the attack
    fade_out_ms: float = 50.0      # the tail always ends at exactly zero


def finish_oneshot(audio: np.ndarray, sample_rate: int, finish: Finish = Finish()) -> np.ndarray | None:
    """A finished float32 (channels, frames) one-shot, or None when the output is unusable
    (NaN/Inf anywhere, or silent after DC removal)."""
    audio = np.asarray(audio, dtype=np.float64)
    if not np.all(np.isfinite(audio)):
        return None
    # The mean goes first: filtering a signal that starts off zero would leave a decaying step (a thump).
    audio = audio - audio.mean(axis=-1, keepdims=True)
    highpass = butter(2, finish.dc_cutoff_hz, btype="highpass", fs=sample_rate, output="sos")
    audio = sosfiltfilt(highpass, audio, axis=-1)
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK:
        return None
    audio *= _fades(audio.shape[-1], sample_rate, finish)
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK:
        return None
    audio *= 10 ** (finish.peak_db / 20) / peak
    return np.ascontiguousarray(audio, dtype=np.float32)


def _fades(frames: int, sample_rate: int, finish: Finish) -> np.ndarray:
    envelope = np.ones(frames)
    fade_in = min(frames, max(1, int(round(finish.fade_in_ms * sample_rate / 1000))))
    fade_out = min(frames, max(1, int(round(finish.fade_out_ms * sample_rate / 1000))))
    envelope[:fade_in] *= _half_cosine(fade_in)
    envelope[frames - fade_out:] *= _half_cosine(fade_out)[::-1]
    envelope[-1] = 0.0
    return envelope


def _half_cosine(n: int) -> np.ndarray:
    """Rises from 0 (first sample) towards 1 without reaching it."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
