"""Turn a raw model output into a one-shot that is safe to play: finite, no DC, no clicks, and
no hiss left standing in the tail once it has decayed (the tail gate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import fades

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
        audio = tail_gate(audio, sample_rate)
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
GATE_BAND_EDGES_HZ = (300, 1000, 3000, 6000, 10000, 16000)
GATE_SMOOTH_HOPS = 5


def tail_gate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """The one-shot with its tail following its own decay, per band and then as a whole.

    Once a band (or the whole) has fallen GATE_BELOW_DB under the one-shot's peak level and
    stopped decaying (a noise floor, or a swell back up), it is held under a line that goes on
    at the rate it was decaying before it stalled (a band: at least the rate at which the whole
    one-shot fell to GATE_BELOW_DB; always at least GATE_MIN_RATE_DB_S): a floor fades
    out, a swell is pulled back down, and the gain never rises again. Per band, because a
    model's hiss sits above 6 kHz under a kick's still-sounding body. Real one-shots keep
    decaying in every band, so it leaves them all but untouched (benchmarks/quality.py
    measures what it takes from real ones). Gains move smoothly, in time (10 ms hops) and
    across frequency."""
    audio = _gate_bands(audio, sample_rate)
    hop = max(1, int(round(GATE_HOP_S * sample_rate)))
    count = audio.shape[-1] // hop
    if count < 2:
        return audio
    power = np.mean(audio[..., :count * hop].reshape(-1, count, hop) ** 2, axis=(0, 2))
    hop_gain_db = _stall_gain_db(_db(power) - _db(power.max()))
    centres = np.arange(count) * hop + hop / 2
    gain = np.interp(np.arange(audio.shape[-1]), centres, 10 ** (hop_gain_db / 20))
    return audio * gain


def _gate_bands(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    from scipy.signal import istft, stft

    hop = max(1, int(round(GATE_HOP_S * sample_rate)))
    if audio.shape[-1] < 16 * hop:   # too short to have a tail
        return audio
    frequencies, _, spectrum = stft(audio, sample_rate, nperseg=4 * hop, noverlap=3 * hop)
    power = np.mean(np.abs(spectrum) ** 2, axis=0)                      # (bins, hops)
    whole = _db(power.sum(axis=0))
    peak_db = whole.max()
    whole_rate = _decay_rate(whole - peak_db)
    edges = [0, *[e for e in GATE_BAND_EDGES_HZ if e < sample_rate / 2], sample_rate / 2 + 1]
    gains, centres = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        band = (frequencies >= low) & (frequencies < high)
        gains.append(_stall_gain_db(_db(power[band].sum(axis=0)) - peak_db, whole_rate))
        centres.append(np.log(np.sqrt(max(low, 50.0) * high)))
    gains = np.array(gains)
    if not gains.any():
        return audio
    log_f = np.log(np.maximum(frequencies, 50.0))
    per_bin = np.stack([np.interp(log_f, centres, gains[:, t]) for t in range(gains.shape[1])], axis=1)
    _, gated = istft(spectrum * 10 ** (per_bin / 20), sample_rate, nperseg=4 * hop, noverlap=3 * hop)
    return gated[..., :audio.shape[-1]]


def _stall_gain_db(level: np.ndarray, min_rate: float = GATE_MIN_RATE_DB_S) -> np.ndarray:
    """Per hop, the gain (dB, <= 0) that holds a level (dB under the peak) under the line its
    decay from its own peak would have followed after it stalled; 0 where it never stalls."""
    gain = np.zeros(len(level))
    # the decay is read from a smoothed level: a noisy band's chance dips are not a decay
    smooth = GATE_SMOOTH_HOPS
    level = _db(np.convolve(10 ** (level / 10), np.ones(smooth) / smooth, mode="same"))
    top = int(np.argmax(level))
    decay = np.minimum.accumulate(level[top:])     # the decay so far, swells ignored
    span = max(1, int(round(GATE_STALL_S / GATE_HOP_S)))
    stalled = np.flatnonzero((decay[:-span] < GATE_BELOW_DB) & (decay[:-span] - decay[span:] < GATE_STALL_DB))
    if not len(stalled):
        return gain
    k = int(stalled[0])
    back = max(0, k - span)
    rate = max(min_rate, (decay[back] - decay[k]) / (max(k - back, 1) * GATE_HOP_S))
    after = np.arange(k, len(decay))
    line = decay[k] - rate * (after - k) * GATE_HOP_S
    gain[top + k:] = np.minimum.accumulate(np.minimum(0.0, line - level[top + after]))
    return gain


def _decay_rate(level: np.ndarray) -> float:
    """dB/s at which the whole one-shot fell from its peak to GATE_BELOW_DB (at least the minimum)."""
    top = int(np.argmax(level))
    below = np.flatnonzero(level[top:] < GATE_BELOW_DB)
    if not len(below):
        return GATE_MIN_RATE_DB_S
    return max(GATE_MIN_RATE_DB_S, -GATE_BELOW_DB / (max(int(below[0]), 1) * GATE_HOP_S))


def _db(power) -> np.ndarray:
    return 10 * np.log10(np.maximum(power, 1e-30))


def _fades(frames: int, sample_rate: int, finish: Finish) -> np.ndarray:
    envelope = np.ones(frames)
    fade_in = min(frames, max(1, int(round(finish.fade_in_ms * sample_rate / 1000))))
    fade_out = min(frames, max(1, int(round(finish.fade_out_ms * sample_rate / 1000))))
    envelope[:fade_in] *= fades.fade_in(fade_in)
    envelope[frames - fade_out:] *= fades.fade_in(fade_out)[::-1]
    envelope[-1] = 0.0
    return envelope

