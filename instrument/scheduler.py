"""From MIDI arrival times to sample offsets: constant latency instead of block-quantized jitter.

The MIDI thread pushes (arrival time, status, note, velocity) into an `EventQueue`; the audio
callback drains it. Each note sounds at its arrival time plus a fixed delay, so a note is placed
at its exact sample inside whichever block covers that moment, and latency is the same for
every note. Times are in the audio stream's clock (PortAudio's stream time).
"""

from __future__ import annotations

from collections import deque

from instrument.controls import ControlMap
from instrument.mixer import Mixer

NOTE_OFF, NOTE_ON, CONTROL_CHANGE = 0x80, 0x90, 0xB0


class EventQueue:
    """Single producer (the MIDI thread), single consumer (the audio callback). deque's append
    and popleft are atomic in CPython and never block; when full, the oldest event is dropped."""

    def __init__(self, capacity: int = 4096):
        self._events: deque = deque(maxlen=capacity)

    def push(self, time: float, status: int, note: int, velocity: int) -> None:
        self._events.append((time, status, note, velocity))

    def pop(self):
        try:
            return self._events.popleft()
        except IndexError:
            return None


class Scheduler:
    def __init__(self, queue: EventQueue, mixer: Mixer, note_to_pad, sample_rate: int,
                 delay: float, channel: int | None = None, controls: ControlMap | None = None):
        self.queue = queue
        self.controls = controls
        self.mixer = mixer
        self.note_to_pad = list(note_to_pad)
        self.sample_rate = sample_rate
        self.delay = delay                  # seconds from arrival to sound
        self.channel = None if channel is None else channel - 1
        self.pending: list[tuple] = []      # events due in a later block
        self.late = 0                       # events that arrived too late for their slot
        self.unmapped = 0

    def run_block(self, block_time: float, frames: int) -> None:
        """Apply every event due before `block_time + frames`; `block_time` is when the block's
        first sample will be heard."""
        event = self.queue.pop()
        while event is not None:
            self.pending.append(event)
            event = self.queue.pop()
        if not self.pending:
            return
        keep = 0
        for event in self.pending:
            offset = int(round((event[0] + self.delay - block_time) * self.sample_rate))
            if offset >= frames:
                self.pending[keep] = event
                keep += 1
                continue
            if offset < 0:
                self.late += 1
                offset = 0
            self.apply(event[1], event[2], event[3], offset)
        del self.pending[keep:]

    def apply(self, status: int, note: int, velocity: int, offset: int) -> None:
        """One MIDI message, at a sample offset inside the coming block."""
        kind = status & 0xF0
        if self.channel is not None and status & 0x0F != self.channel:
            return
        if kind == CONTROL_CHANGE:
            if self.controls is not None:
                self.controls.cc(note, velocity)
            return
        if kind not in (NOTE_ON, NOTE_OFF):
            return
        if self.controls is not None and self.controls.handles_note(note):
            self.controls.note(note, pressed=kind == NOTE_ON and velocity > 0)
            return
        pad = self.note_to_pad[note]
        if pad < 0:
            self.unmapped += kind == NOTE_ON and velocity > 0
            return
        if kind == NOTE_ON and velocity > 0:
            self.mixer.note_on(pad, velocity, offset, note)
        else:
            self.mixer.note_off(pad, offset, note)
