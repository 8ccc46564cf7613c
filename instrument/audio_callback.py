"""The audio callback: drain MIDI events, mix voices, keep counters. numpy only.

It never blocks, locks, logs, does I/O or touches torch, and allocates no large arrays: the
mixer and every buffer here are preallocated. Slow things (writing a recording, printing
the status) happen on other threads, reading what the callback leaves in shared arrays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from instrument.controls import ControlMap
from instrument.mixer import Mixer
from instrument.scheduler import EventQueue, Scheduler

TIMING_WINDOW = 2048        # recent callback durations kept for p50/p99
SAFETY_MARGIN_S = 0.0005    # added to the measured output latency for the fixed note delay


@dataclass(frozen=True)
class CallbackStats:
    xruns: int
    callbacks: int
    p50_ms: float
    p99_ms: float
    longest_ms: float
    overruns: int        # callbacks that took longer than their block lasts (the callback's own xruns)
    budget_ms: float
    voices: int
    hits: int
    late: int
    unmapped: int
    empty: int
    delay_ms: float


class Recorder:
    """A ring of audio blocks the callback copies into and a writer thread drains."""

    def __init__(self, seconds: float, sample_rate: int, channels: int = 2):
        self.buffer = np.zeros((int(seconds * sample_rate), channels), np.float32)
        self.written = 0   # frames the callback has put in (callback-owned)
        self.read = 0      # frames the writer has taken out (writer-owned)
        self.dropped = 0   # frames lost because the writer fell behind (callback-owned)

    def put(self, block: np.ndarray) -> None:
        frames, size = block.shape[0], self.buffer.shape[0]
        if self.written + frames - self.read > size:
            self.dropped += frames
            return
        start = self.written % size
        first = min(frames, size - start)
        self.buffer[start:start + first] = block[:first]
        self.buffer[:frames - first] = block[first:]
        self.written += frames

    def take(self) -> np.ndarray:
        """Everything recorded since the last take (a copy; writer thread only)."""
        size, written = self.buffer.shape[0], self.written
        start, count = self.read % size, written - self.read
        first = min(count, size - start)
        out = np.concatenate([self.buffer[start:start + first], self.buffer[:count - first]])
        self.read = written
        return out


class AudioCallback:
    """Owns what the audio callback touches. `callback` is a sounddevice OutputStream's callback;
    a JACK client applies its MIDI events through `scheduler.apply`, then calls `render`."""

    def __init__(self, mixer: Mixer, queue: EventQueue, note_to_pad, sample_rate: int,
                 channel: int | None = None, recorder: Recorder | None = None, controls: ControlMap | None = None):
        self.mixer = mixer
        self.sample_rate = sample_rate
        self.scheduler = Scheduler(queue, mixer, note_to_pad, sample_rate, delay=-1.0, channel=channel, controls=controls)
        self.recorder = recorder
        self.durations = np.zeros(TIMING_WINDOW, np.float64)
        self.callbacks = 0
        self.xruns = 0
        self.overruns = 0
        self.longest = 0.0
        self.budget = 0.0

    def callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        started = time.perf_counter()
        if status:
            self.xruns += 1
        block_time = time_info.outputBufferDacTime
        if self.scheduler.delay < 0:
            self._fix_delay(block_time - time_info.currentTime, frames)
        self.scheduler.run_block(block_time, frames)
        self.render(outdata, started)

    def render(self, out: np.ndarray, started: float, pad_outs: np.ndarray | None = None) -> None:
        """Mix the block, record it, and time the callback from `started` (perf_counter)."""
        self.mixer.render(out, pad_outs)
        if self.recorder is not None:
            self.recorder.put(out)
        took = time.perf_counter() - started
        self.durations[self.callbacks % TIMING_WINDOW] = took
        self.longest = max(self.longest, took)
        self.overruns += took * self.sample_rate > out.shape[0]
        self.callbacks += 1

    def _fix_delay(self, output_latency: float, frames: int) -> None:
        """A note seen in this callback may have arrived up to one block ago and is heard no
        sooner than the output latency from now: that sum, fixed once, is every note's delay."""
        self.budget = frames / self.sample_rate
        self.scheduler.delay = max(0.0, output_latency) + self.budget + SAFETY_MARGIN_S

    def stats(self) -> CallbackStats:
        count = min(self.callbacks, TIMING_WINDOW)
        recent = self.durations[:count] if count else np.zeros(1)
        counters = self.mixer.counters
        return CallbackStats(
            xruns=self.xruns, callbacks=self.callbacks,
            p50_ms=float(np.percentile(recent, 50) * 1000), p99_ms=float(np.percentile(recent, 99) * 1000),
            longest_ms=self.longest * 1000, overruns=self.overruns,
            budget_ms=self.budget * 1000, voices=self.mixer.voices, hits=counters.hits,
            late=self.scheduler.late, unmapped=self.scheduler.unmapped, empty=counters.empty,
            delay_ms=max(0.0, self.scheduler.delay) * 1000,
        )
