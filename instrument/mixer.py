"""Voices and the mixer: numpy only, run on the audio callback's thread (or offline, block by block).

A hit takes a one-shot from its pad's pool and starts a voice at a sample offset inside the next
block. Voices stop without clicks: choke groups, note-off release and voice stealing all fade
over a few milliseconds. Everything is preallocated; a block costs a few numpy operations over
all its voices at once (not one round per voice) and allocates no large arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.fades import fade_out
from engine.pool import GUARD_FRAMES, Pools
from instrument.velocity import velocity_table

FADE_MS = 5.0            # choke, release and steal fade
SPARE_VOICES = 16        # room for stolen voices to finish their fade
LIMIT_CEILING = 0.98     # the safety limiter keeps peaks below this
LIMIT_RELEASE_S = 0.15   # how fast the limiter lets go
CHUNK = 256              # frames mixed in one pass over all voices; a longer block takes several
assert CHUNK <= GUARD_FRAMES   # a voice's window may reach a chunk before or after its one-shot


@dataclass(frozen=True)
class PadMix:
    """What the mixer needs of a pad, precomputed so that the callback only looks things up."""

    gain: float                  # linear, from gain_db
    pan: float                   # -1 (left) to 1 (right); a balance, the one-shots being stereo
    velocity_curve: str | float = "linear"
    choke: int = -1              # choke group index, -1 for none
    release_on_note_off: bool = False
    velocity_spread: int = 0     # humanize: each hit's velocity moves by up to this, either way


@dataclass
class MixerCounters:
    hits: int = 0
    unmapped: int = 0           # notes no pad maps (counted by the caller, kept here)
    empty: int = 0              # hits on a pad whose pool had nothing to play
    steals: int = 0
    limited_blocks: int = 0     # blocks where the safety limiter reduced gain


class Mixer:
    def __init__(self, pools: Pools, pads: list[PadMix], sample_rate: int, max_blocksize: int,
                 max_voices: int = 64, channels: int = 2, seed: int | None = None, hit_log=None):
        """`seed`: of the velocity spread (None: a new one each run). `hit_log`: a HitLog
        (instrument.hitlog) that every hit is written into."""
        self.pools = pools
        self.hit_log = hit_log
        self.frame = 0           # of the take, at the coming block's first sample
        self.sample_rate = sample_rate
        self.max_voices = max_voices
        self.counters = MixerCounters()
        self._gains = [p.gain for p in pads]
        self._pans = [p.pan for p in pads]
        self._pad_gains = np.array([[_balance(p.pan, side) * p.gain for side in (0, 1)] for p in pads], np.float32)
        self._velocity = np.stack([velocity_table(p.velocity_curve) for p in pads])
        self._choke = [p.choke for p in pads]
        self._spread = _velocity_spreads(pads, seed)
        self._pad_hits = [0] * len(pads)
        self._decay_frames = np.zeros(len(pads), np.int64)   # the decay knob's: 0 for none
        self._release = [p.release_on_note_off for p in pads]
        fade = max(2, int(round(FADE_MS * sample_rate / 1000)))
        self._ramp = np.zeros(fade + CHUNK, np.float32)   # past the fade: silence, so no bounds checks
        self._ramp[:fade] = fade_out(fade)
        self._fade = fade
        self._limit_gain = 1.0
        self._envelope = np.ones(max(max_blocksize, CHUNK), np.float32)
        self._count = np.arange(1, max_blocksize + 1, dtype=np.float32)
        self._allocate_voices(max_voices + SPARE_VOICES, channels)
        self._allocate_chunk_buffers(max_voices + SPARE_VOICES, channels)

    def _allocate_voices(self, n: int, channels: int) -> None:
        self.active = np.zeros(n, bool)
        self.pad = np.zeros(n, np.int64)
        self.slot = np.zeros(n, np.int64)
        self.position = np.zeros(n, np.int64)   # next frame of the one-shot to play
        self.delay = np.zeros(n, np.int64)      # offset in the coming block where the voice starts
        self.fade_at = np.full(n, -1, np.int64) # offset in the coming block where its fade starts
        self.fade_pos = np.full(n, -1, np.int64)  # -1: not fading; else frames of fade done
        self.gain = np.zeros((n, 2), np.float32)
        self._gain_columns = self.gain[:, :, None]   # (voices, 2, 1): a voice's gains against (channels, frames)
        self.decay = np.zeros(n, np.int64)      # frames to silence (the decay knob), 0: none
        self.length = np.zeros(n, np.int64)     # frames it plays: its one-shot's, or its decay's if shorter
        self.base = np.zeros((n, channels), np.int64)   # where each output channel's samples start, in audio_flat
        self.started = np.zeros(n, np.int64)    # start order, for stealing the oldest
        self._order = 0

    def _allocate_chunk_buffers(self, n: int, channels: int) -> None:
        """What mixing a chunk works in, flat: a chunk's arrays are views of their first elements."""
        self._pad_frames = np.array([audio.shape[2] for audio in self.pools.audio], np.int64)
        self._pad_channels = np.array([audio.shape[1] for audio in self.pools.audio], np.int64)
        self._channel_numbers = np.arange(channels, dtype=np.int64)
        self._frame_numbers = np.arange(CHUNK, dtype=np.int64)
        self._frame_counts = np.arange(CHUNK, dtype=np.float32)
        self._weights = np.zeros(n * CHUNK, np.float32)
        self._curve = np.zeros(n * CHUNK, np.float32)
        self._rows = np.zeros(n * channels, np.int64)
        self._index = np.zeros(n * channels * CHUNK, np.int64)
        self._samples = np.zeros(n * channels * CHUNK, np.float32)
        self._mixed = np.zeros(channels * CHUNK, np.float32)

    # ---- events, at sample offsets inside the coming block ---------------------------------

    def note_on(self, pad: int, velocity: int, offset: int = 0, note: int = -1, slot: int = -1) -> bool:
        """A hit on `pad`; `slot`, if given, is the one-shot to play (a replay), else the pool
        chooses."""
        self.counters.hits += 1
        group = self._choke[pad]
        if group >= 0:
            for v in np.flatnonzero(self.active):
                if self._choke[self.pad[v]] == group:
                    self._start_fade(v, offset)
        slot = self.pools.take(pad) if slot < 0 else self.pools.take_slot(pad, slot)
        if slot < 0:
            self.counters.empty += 1
            return False
        v = self._free_voice(offset)
        self.active[v] = True
        self.pad[v], self.slot[v], self.position[v] = pad, slot, 0
        self.delay[v], self.fade_at[v], self.fade_pos[v] = offset, -1, -1
        sent, spread = velocity, self._spread[pad]
        if spread is not None:   # the table is drawn before play: here only a lookup
            velocity = min(127, max(1, velocity + int(spread[self._pad_hits[pad] % len(spread)])))
        self._pad_hits[pad] += 1
        self.gain[v] = self._pad_gains[pad] * self._velocity[pad, velocity]
        self.decay[v] = self._decay_frames[pad]
        frames = self.pools.frames[pad, slot]
        self.length[v] = min(frames, self.decay[v]) if self.decay[v] > 0 else frames
        self._set_base(v, pad, slot)
        if self.hit_log is not None:
            self.hit_log.note_on(self.frame + offset, pad, slot, note, sent, velocity, self._pad_gains[pad],
                                 self.decay[v])
        self.started[v] = self._order
        self._order += 1
        return True

    def set_gain_db(self, pad: int, gain_db: float) -> None:
        """From the next hit on (a knob): the pad's gain."""
        self._gains[pad] = 10 ** (gain_db / 20)
        self._update_pad_gain(pad)

    def set_pan(self, pad: int, pan: float) -> None:
        self._pans[pad] = pan
        self._update_pad_gain(pad)

    def set_decay_frames(self, pad: int, frames: int) -> None:
        """From the next hit on (a knob): the pad's hits fade to silence over `frames` from
        their start, flat at first as the preset's decay (0: they play out)."""
        self._decay_frames[pad] = max(0, frames)

    def set_pad_gains(self, pad: int, left: float, right: float) -> None:
        """The pad's gain per channel, pan included, as set_gain_db and set_pan make it (a replay)."""
        self._pad_gains[pad] = left, right

    def _update_pad_gain(self, pad: int) -> None:
        for side in (0, 1):
            self._pad_gains[pad, side] = _balance(self._pans[pad], side) * self._gains[pad]

    def note_off(self, pad: int, offset: int = 0, note: int = -1) -> None:
        if self.hit_log is not None:
            self.hit_log.note_off(self.frame + offset, pad, note)
        if not self._release[pad]:
            return
        for v in np.flatnonzero(self.active & (self.pad == pad)):
            self._start_fade(v, offset)

    def _start_fade(self, v: int, offset: int) -> None:
        if self.fade_pos[v] < 0 and self.fade_at[v] < 0:
            self.fade_at[v] = max(offset, self.delay[v])

    def _free_voice(self, offset: int) -> int:
        sounding = self.active & (self.fade_pos < 0) & (self.fade_at < 0)
        if np.count_nonzero(sounding) >= self.max_voices:
            oldest = np.flatnonzero(sounding)[np.argmin(self.started[sounding])]
            self._start_fade(oldest, offset)
            self.counters.steals += 1
        free = np.flatnonzero(~self.active)
        if len(free):
            return int(free[0])
        # every spare is busy fading out: cut the voice nearest the end of its fade
        v = int(np.argmax(np.where(self.fade_pos >= 0, self.fade_pos, -1)))
        self._end_voice(v)
        return v

    # ---- rendering ---------------------------------------------------------------------------

    def render(self, out: np.ndarray, pad_outs: np.ndarray | None = None) -> None:
        """Mix the coming block into `out` (frames, channels), overwriting it, then make it safe.
        `pad_outs` (pads, frames, channels), if given, also gets each pad on its own: direct
        outputs, after gain, pan and velocity but before the main mix's limiter."""
        frames = out.shape[0]
        out.fill(0.0)
        if pad_outs is not None:
            pad_outs.fill(0.0)
        for first in range(0, frames, CHUNK):
            voices = np.flatnonzero(self.active)
            if len(voices):
                last = min(frames, first + CHUNK)
                self._mix_chunk(voices, out[first:last], None if pad_outs is None else pad_outs[:, first:last])
        self.pools.service()
        self._limit(out)
        self.frame += frames
        if pad_outs is not None:
            _finite_peak(pad_outs)   # for its zeroing of any NaN or infinity; the peak is not needed
            _clip_to_unit(pad_outs)

    def _mix_chunk(self, voices: np.ndarray, out: np.ndarray, pad_outs: np.ndarray | None) -> None:
        """Every voice at once: a weight per voice and frame (its window in this chunk, its fade
        and decay), the samples under it gathered from the pools, summed in voice order.
        Offsets inside the block (delay, fade_at) are kept relative to the chunk."""
        m = out.shape[0]
        starts, positions, lengths, decays = self.delay[voices], self.position[voices], self.length[voices], self.decay[voices]
        counts = np.maximum(np.minimum(m - starts, lengths - positions), 0)
        weights = self._window_weights(starts, counts, m)
        if decays.any():
            self._apply_decay(weights, np.flatnonzero(decays), positions - starts, decays, m)
        for i in np.flatnonzero((self.fade_at[voices] >= 0) | (self.fade_pos[voices] >= 0)):
            start, n = int(starts[i]), int(counts[i])
            envelope = self._fade_envelope(int(voices[i]), start, n, m)
            if envelope is not None:
                weights[i, start:start + n] *= envelope
        samples = self._gather(voices, positions - starts, m)
        samples *= self._gain_columns[voices]
        samples *= weights[:, None, :]
        mixed = _view(self._mixed, out.shape[1], m)
        np.sum(samples, axis=0, out=mixed)
        out += mixed.T
        if pad_outs is not None:   # voice by voice: views only, nothing allocated
            for i, p in enumerate(self.pad[voices].tolist()):
                pad_outs[p] += samples[i].T
        self.position[voices] = positions + counts
        self.delay[voices] = np.where(starts < m, 0, starts - m)
        for v in voices[(positions + counts >= lengths) | (self.fade_pos[voices] >= self._fade)]:
            self._end_voice(int(v))

    def _window_weights(self, starts: np.ndarray, counts: np.ndarray, m: int) -> np.ndarray:
        """(voices, m): 1 where a voice sounds in this chunk, 0 elsewhere. Most voices sound
        through the whole chunk; only those that start or end in it are cut."""
        weights = _view(self._weights, len(starts), m)
        weights.fill(1.0)
        for i in np.flatnonzero((starts > 0) | (counts < m)).tolist():
            start, end = int(starts[i]), int(starts[i] + counts[i])
            weights[i, :start] = 0.0
            weights[i, end:] = 0.0
        return weights

    def _apply_decay(self, weights: np.ndarray, rows: np.ndarray, firsts: np.ndarray, decays: np.ndarray, m: int) -> None:
        """engine.fades' fade_out over each decaying voice's `decay` frames; `firsts`: the
        one-shot's frame at the chunk's first frame (computed here, chunk by chunk, as the
        decay changes from hit to hit)."""
        curve = _view(self._curve, len(rows), m)
        np.add(self._frame_counts[:m], firsts[rows, None].astype(np.float32), out=curve)
        np.multiply(curve, (0.5 * np.pi / decays[rows])[:, None], out=curve)
        np.cos(curve, out=curve)
        np.multiply(curve, curve, out=curve)
        weights[rows] *= curve

    def _fade_envelope(self, v: int, start: int, n: int, m: int) -> np.ndarray | None:
        """The voice's fade over its n frames from `start` in this chunk of m frames, or None
        when it is not fading here."""
        if self.fade_at[v] >= m:
            self.fade_at[v] -= m      # the fade starts in a later chunk
            return None
        if self.fade_at[v] >= 0:
            hold = self.fade_at[v] - start
            self.fade_at[v], self.fade_pos[v] = -1, 0
        elif self.fade_pos[v] >= 0:
            hold = 0
        else:
            return None
        hold = min(max(hold, 0), n)
        envelope = self._envelope[:n]
        envelope[:hold] = 1.0
        done = self.fade_pos[v]
        envelope[hold:] = self._ramp[done:done + n - hold]
        self.fade_pos[v] = done + n - hold
        return envelope

    def _set_base(self, v: int, pad: int, slot: int) -> None:
        """Where voice v's samples start in the pools' audio_flat, per output channel (a mono
        one-shot feeds every channel)."""
        channels, frames = self._pad_channels[pad], self._pad_frames[pad]
        first = self.pools.audio_offsets[pad] + slot * channels * frames
        np.minimum(self._channel_numbers, channels - 1, out=self.base[v])
        self.base[v] *= frames
        self.base[v] += first

    def _gather(self, voices: np.ndarray, firsts: np.ndarray, m: int) -> np.ndarray:
        """(voices, channels, m): each voice's one-shot from frame `firsts` on, m frames per
        channel, read across its ends into the pools' guard zeros or other audio (the weights
        silence what lies outside a voice's window)."""
        count, channels = len(voices), self.base.shape[1]
        rows = _view(self._rows, count, channels)
        np.add(self.base[voices], firsts[:, None], out=rows)
        index = _view(self._index, count, channels, m)
        np.add(rows[:, :, None], self._frame_numbers[:m], out=index)
        samples = _view(self._samples, count, channels, m)
        # "clip" keeps the reads of voices silent in this chunk inside audio_flat; "raise" would copy through a buffer
        np.take(self.pools.audio_flat, index, out=samples, mode="clip")
        return samples

    def _end_voice(self, v: int) -> None:
        self.pools.release(int(self.pad[v]), int(self.slot[v]))
        self.active[v] = False
        self.fade_at[v], self.fade_pos[v] = -1, -1

    def _limit(self, out: np.ndarray) -> None:
        """Safety stage: every sample finite and within [-1, 1]. A block-rate peak limiter
        (instant attack, smooth release, gain ramped across the block) keeps loud hits from
        clipping; the final clip is only a guarantee."""
        peak = _finite_peak(out)
        frames = out.shape[0]
        target = min(1.0, LIMIT_CEILING / peak) if peak > 0 else 1.0
        released = 1.0 - (1.0 - self._limit_gain) * math.exp(-frames / (LIMIT_RELEASE_S * self.sample_rate))
        gain = min(target, released)
        if gain < self._limit_gain:
            out *= gain  # attack: at once, the whole block
        elif self._limit_gain < 1.0:
            ramp = self._envelope[:frames]
            np.multiply(self._count[:frames], (gain - self._limit_gain) / frames, out=ramp)
            ramp += self._limit_gain
            out *= ramp[:, None]
        self.counters.limited_blocks += gain < 1.0
        self._limit_gain = gain
        _clip_to_unit(out)

    @property
    def voices(self) -> int:
        return int(np.count_nonzero(self.active))


def _finite_peak(block: np.ndarray) -> float:
    """The largest magnitude in `block`, once any NaN or infinity in it has been zeroed."""
    if not block.size:
        return 0.0
    peak = max(float(block.max()), -float(block.min()))   # NaN if any sample is NaN
    if math.isfinite(peak):
        return peak
    np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return max(float(block.max()), -float(block.min()))


def _clip_to_unit(block: np.ndarray) -> None:
    np.minimum(block, 1.0, out=block)
    np.maximum(block, -1.0, out=block)


def _view(flat: np.ndarray, *shape: int) -> np.ndarray:
    """The first elements of a preallocated flat buffer, as a contiguous array of `shape`."""
    return flat[:math.prod(shape)].reshape(shape)


def _balance(pan: float, side: int) -> float:
    """Gain of the left (0) or right (1) channel: unity in the centre, the far side fades out."""
    return min(1.0, 1.0 - pan) if side == 0 else min(1.0, 1.0 + pan)


def _velocity_spreads(pads: list[PadMix], seed: int | None, length: int = 4096) -> list[np.ndarray | None]:
    """Per pad, a seeded table of velocity offsets the hits step through (None: no spread)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(-p.velocity_spread, p.velocity_spread, size=length, endpoint=True, dtype=np.int64)
            if p.velocity_spread else None for p in pads]
