"""Turn a raw model output into a one-shot that is safe to play: finite, no DC, no clicks, and
no hiss left standing in the tail once it has decayed (the tail gate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SILENCE_PEAK = 10 ** (-80 / 20)


@dataclass(frozen=True)
class Finish:
    peak_db: float = -1.0          # normalize each one-shot's peak to this level (dBFS)
    dc_cutoff_hz: float = 10.0     # zero-phase high-pass under the lowest kick fundamentals
    fade_in_ms: float = 0.25       # long enough to remove a step at the start, short enough to keep the attack
    fade_out_ms: float = 50.0      # the tail always ends at exactly zero
    tail_gate: bool = True         # see tail_gate()


def finish_oneshot(audio: np.ndarray, sample_rate: int, finish: Finish = Finish()) -> np.ndarray | None:
    """A finished float32 (channels, frames) one-shot, or None when the output is unusable
    (NaN/Inf anywhere, or silent after DC removal)."""
    from scipy.signal import butter, sosfiltfilt   # here: scipy.signal takes most of a second to import

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
    if finish.tail_gate:
        audio *= tail_gate(audio, sample_rate)
    audio *= _fades(audio.shape[-1], sample_rate, finish)
    peak = float(np.max(np.abs(audio)))
    if peak < SILENCE_PEAK:
        return None
    audio *= 10 ** (finish.peak_db / 20) / peak
    return np.ascontiguousarray(audio, dtype=np.float32)


GATE_HOP_S = 0.01          # envelope resolution
GATE_BELOW_DB = -30.0      # the gate never acts on anything louder than this below the peak
GATE_STALL_S = 0.1         # decayed less than GATE_STALL_DB over this long: the decay has stalled
GATE_STALL_DB = 3.0
GATE_MIN_RATE_DB_S = 40.0  # the slowest the gate lets a stalled tail fade


def tail_gate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A gain per frame that follows the one-shot's own decay. Once the tail has fallen
    GATE_BELOW_DB under its peak and stopped decaying (a noise floor, or a swell back up), it
    is held under a line that goes on at the rate it was decaying before it stalled (at least
    GATE_MIN_RATE_DB_S): a floor fades out, a swell is pulled back down within a hop, and the
    gain never rises again. Real one-shots keep decaying, so it leaves nearly all of them
    untouched (benchmarks/quality.py measures what it takes from real ones). The gain starts
    at exactly 1 and only ever falls, by at most 1 over a hop."""
    frames = audio.shape[-1]
    hop = max(1, int(round(GATE_HOP_S * sample_rate)))
    count = frames // hop
    gain = np.ones(frames)
    if count < 2:
        return gain
    power = np.mean(audio[..., :count * hop].reshape(-1, count, hop) ** 2, axis=(0, 2))
    level = 10 * np.log10(np.maximum(power, 1e-30) / max(power.max(), 1e-30))
    top = int(np.argmax(level))
    decay = np.minimum.accumulate(level[top:])     # the decay so far, swells ignored
    span = max(1, int(round(GATE_STALL_S / GATE_HOP_S)))
    stalled = np.flatnonzero((decay[:-span] < GATE_BELOW_DB) & (decay[:-span] - decay[span:] < GATE_STALL_DB))
    if not len(stalled):
        return gain
    k = int(stalled[0])
    back = max(0, k - span)
    rate = max(GATE_MIN_RATE_DB_S, (decay[back] - decay[k]) / (max(k - back, 1) * GATE_HOP_S))
    after = np.arange(k, len(decay))
    line = decay[k] - rate * (after - k) * GATE_HOP_S
    hop_gain_db = np.minimum.accumulate(np.minimum(0.0, line - level[top + after]))
    centres = (top + after) * hop + hop / 2
    start = int(centres[0]) - hop      # so the gain moves at most from 1 to 0 over a whole hop
    gain[start:] = np.interp(np.arange(start, frames), np.r_[start, centres], np.r_[1.0, 10 ** (hop_gain_db / 20)])
    return gain


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
