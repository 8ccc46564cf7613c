"""Voices and the mixer: numpy only, run on the audio callback's thread (or offline, block by block).

A hit takes a one-shot from its pad's pool and starts a voice at a sample offset inside the next
block. Voices stop without clicks: choke groups, note-off release and voice stealing all fade
over a few milliseconds. Everything is preallocated; a block costs a few small numpy operations
per active voice and allocates no large arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.fades import fade_out
from engine.pool import Pools
from instrument.velocity import velocity_table

FADE_MS = 5.0            # choke, release and steal fade
SPARE_VOICES = 16        # room for stolen voices to finish their fade
LIMIT_CEILING = 0.98     # the safety limiter keeps peaks below this
LIMIT_RELEASE_S = 0.15   # how fast the limiter lets go


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
        self._ramp = np.zeros(fade + max_blocksize, np.float32)   # past the fade: silence, so no bounds checks
        self._ramp[:fade] = fade_out(fade)
        self._fade = fade
        self._limit_gain = 1.0
        self._limit_release = float(np.exp(-max_blocksize / (LIMIT_RELEASE_S * sample_rate)))
        self._scratch = np.zeros((channels, max_blocksize), np.float32)
        self._envelope = np.ones(max_blocksize, np.float32)
        self._count = np.arange(1, max_blocksize + 1, dtype=np.float32)
        self._decay_curve = np.zeros(max_blocksize, np.float32)
        self._allocate_voices(max_voices + SPARE_VOICES)

    def _allocate_voices(self, n: int) -> None:
        self.active = np.zeros(n, bool)
        self.pad = np.zeros(n, np.int64)
        self.slot = np.zeros(n, np.int64)
        self.position = np.zeros(n, np.int64)   # next frame of the one-shot to play
        self.delay = np.zeros(n, np.int64)      # offset in the coming block where the voice starts
        self.fade_at = np.full(n, -1, np.int64) # offset in the coming block where its fade starts
        self.fade_pos = np.full(n, -1, np.int64)  # -1: not fading; else frames of fade done
        self.gain = np.zeros((n, 2), np.float32)
        self.decay = np.zeros(n, np.int64)      # frames to silence (the decay knob), 0: none
        self.started = np.zeros(n, np.int64)    # start order, for stealing the oldest
        self._order = 0

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
        for v in np.flatnonzero(self.active):
            self._mix_voice(int(v), out, frames, pad_outs)
        self.pools.service()
        self._limit(out)
        self.frame += frames
        if pad_outs is not None:
            np.nan_to_num(pad_outs, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            np.clip(pad_outs, -1.0, 1.0, out=pad_outs)

    def _mix_voice(self, v: int, out: np.ndarray, frames: int, pad_outs: np.ndarray | None) -> None:
        p, s, start = self.pad[v], self.slot[v], self.delay[v]
        audio = self.pools.audio[p]
        length = int(self.pools.frames[p, s])
        if self.decay[v]:
            length = min(length, int(self.decay[v]))
        n = min(frames - start, length - self.position[v])
        if n > 0:
            source = audio[s, :, self.position[v]:self.position[v] + n]
            envelope = self._fade_envelope(v, start, n)
            if self.decay[v]:
                envelope = self._decay_envelope(v, n, envelope)
            scratch = self._scratch[:, :n]
            for channel in range(out.shape[1]):
                np.multiply(source[min(channel, source.shape[0] - 1)], self.gain[v, channel], out=scratch[0])
                if envelope is not None:
                    scratch[0] *= envelope
                out[start:start + n, channel] += scratch[0]
                if pad_outs is not None:
                    pad_outs[p, start:start + n, channel] += scratch[0]
            self.position[v] += n
        self.delay[v] = 0
        if self.position[v] >= length or self.fade_pos[v] >= self._fade:
            self._end_voice(v)

    def _fade_envelope(self, v: int, start: int, n: int) -> np.ndarray | None:
        """The voice's gain over its n frames this block, or None when it is not fading."""
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

    def _decay_envelope(self, v: int, n: int, fade: np.ndarray | None) -> np.ndarray:
        """engine.fades' fade_out over the voice's decay, at its next n frames (times the fade,
        if it is fading): computed here, block by block, as the decay changes from hit to hit."""
        curve = self._decay_curve[:n]
        np.add(self._count[:n], self.position[v] - 1, out=curve)
        curve *= 0.5 * np.pi / self.decay[v]
        np.cos(curve, out=curve)
        np.multiply(curve, curve, out=curve)
        if fade is not None:
            curve *= fade
        return curve

    def _end_voice(self, v: int) -> None:
        self.pools.release(int(self.pad[v]), int(self.slot[v]))
        self.active[v] = False
        self.fade_at[v], self.fade_pos[v] = -1, -1

    def _limit(self, out: np.ndarray) -> None:
        """Safety stage: every sample finite and within [-1, 1]. A block-rate peak limiter
        (instant attack, smooth release, gain ramped across the block) keeps loud hits from
        clipping; the final clip is only a guarantee."""
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        peak = float(np.max(np.abs(out))) if out.size else 0.0
        target = min(1.0, LIMIT_CEILING / peak) if peak > 0 else 1.0
        released = 1.0 - (1.0 - self._limit_gain) * self._limit_release
        gain = min(target, released)
        if gain < self._limit_gain:
            out *= gain  # attack: at once, the whole block
        elif self._limit_gain < 1.0:
            frames = out.shape[0]
            ramp = self._envelope[:frames]
            np.multiply(self._count[:frames], (gain - self._limit_gain) / frames, out=ramp)
            ramp += self._limit_gain
            out *= ramp[:, None]
        self.counters.limited_blocks += gain < 1.0
        self._limit_gain = gain
        np.clip(out, -1.0, 1.0, out=out)

    @property
    def voices(self) -> int:
        return int(np.count_nonzero(self.active))


def _balance(pan: float, side: int) -> float:
    """Gain of the left (0) or right (1) channel: unity in the centre, the far side fades out."""
    return min(1.0, 1.0 - pan) if side == 0 else min(1.0, 1.0 + pan)


def _velocity_spreads(pads: list[PadMix], seed: int | None, length: int = 4096) -> list[np.ndarray | None]:
    """Per pad, a seeded table of velocity offsets the hits step through (None: no spread)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(-p.velocity_spread, p.velocity_spread, size=length, endpoint=True, dtype=np.int64)
            if p.velocity_spread else None for p in pads]
