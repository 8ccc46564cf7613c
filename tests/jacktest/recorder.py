"""A JACK client that records ports by frame time and sends MIDI at exact frames."""

from __future__ import annotations

import collections
import sys
import time

import numpy as np

from tests.jacktest.server import Server, jack_client


class JackRecorder:
    """A JACK client that records audio ports into a numpy buffer indexed by frame time, and
    can send MIDI at exact frame times.

        with JackRecorder(server, channels=2) as rec:
            rec.connect("PortAudio:out_0", "PortAudio:out_1")
            rec.connect_midi("noisepad:noisepad")
            frame = rec.send_midi([0x90, 36, 100])   # enters the graph at this frame time
            rec.wait_until(frame + 4410)              # recorded up to that frame time
            onset = rec.first_onset(after=frame)      # first sample over a threshold

    Row i of the buffer holds frame time start_frame + i, so MIDI frames and onsets are
    directly comparable. `gaps` counts cycles this client missed (async server, late
    callback); those frames stay zero.
    """

    def __init__(self, server: Server, channels: int = 2, name: str = "recorder",
                 seconds: float = 10.0, midi: bool = True):
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))   # the callbacks wait less for the GIL
        self.server = server
        self.client = jack_client(server, name)
        self.inports = [self.client.inports.register(f"in_{i + 1}") for i in range(channels)]
        self.midi_out = self.client.midi_outports.register("midi_out") if midi else None
        self.buffer = np.zeros((int(seconds * server.rate), channels), np.float32)
        self.start_frame: int | None = None  # frame time of buffer[0]
        self.end = 0  # rows recorded so far
        self.gaps = 0
        self.overflowed = False
        self.closed = False
        self._next_frame: int | None = None
        self._midi_queue: collections.deque = collections.deque()  # [at, bytes, sent frame]
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        frame = self.client.last_frame_time
        if self.start_frame is None:
            self.start_frame = frame
        elif frame != self._next_frame:
            self.gaps += 1
        self._next_frame = (frame + frames) & 0xFFFFFFFF
        offset = (frame - self.start_frame) & 0xFFFFFFFF
        if offset + frames > len(self.buffer):
            self.overflowed = True
        else:
            for channel, port in enumerate(self.inports):
                self.buffer[offset:offset + frames, channel] = port.get_array()
            self.end = offset + frames
        if self.midi_out is not None:
            self.midi_out.clear_buffer()
            while self._midi_queue:
                item = self._midi_queue[0]
                at = frame if item[0] is None else item[0]
                if at - frame >= frames:
                    break
                position = max(at - frame, 0)  # a late event goes out at once
                self.midi_out.write_midi_event(position, item[1])
                item[2] = frame + position
                self._midi_queue.popleft()

    @property
    def port_names(self) -> list[str]:
        return [port.name for port in self.inports]

    def connect(self, *sources: str) -> None:
        """Connect source ports, in order, to in_1, in_2, ..."""
        for source, port in zip(sources, self.inports):
            self.client.connect(source, port)
        self.server.settle()

    def connect_midi(self, destination: str) -> None:
        """Connect midi_out to a JACK MIDI input port such as "noisepad:noisepad"."""
        self.client.connect(self.midi_out, destination)
        self.server.settle()

    def send_midi(self, message, at: int | None = None, timeout: float = 5.0) -> int:
        """Send MIDI bytes at frame time `at` (default: the next cycle); wait until the
        event is written and return the frame time at which it entered the graph."""
        return self.schedule_midi([(at, message)], timeout)[0]

    def schedule_midi(self, events, timeout: float = 5.0) -> list[int]:
        """Send [(frame time or None, MIDI bytes), ...], in time order and later than any
        event still queued; wait until all are written; return their frame times. An event
        whose time has passed goes out at the start of the next cycle."""
        items = [[at, bytes(message), None] for at, message in events]
        self._midi_queue.extend(items)  # one call: the process callback sees all or none
        deadline = time.monotonic() + timeout
        while items[-1][2] is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"MIDI events not sent: {events}")
            # seldom: every wake-up takes the GIL this process's JACK callbacks need
            time.sleep(0.001 if len(items) == 1 else 0.05)
        return [item[2] for item in items]

    @property
    def frame_time(self) -> int:
        """The server's current frame time (an estimate between cycles)."""
        return self.client.frame_time

    @property
    def recorded_until(self) -> int | None:
        """Frame time just after the last recorded frame."""
        return None if self.start_frame is None else self.start_frame + self.end

    def wait_until(self, frame: int, timeout: float = 5.0) -> None:
        """Wait until every frame before `frame` (a frame time) has been recorded."""
        deadline = time.monotonic() + timeout
        while self.start_frame is None or self.start_frame + self.end < frame:
            if time.monotonic() > deadline or self.overflowed:
                raise TimeoutError(f"recorded up to {self.recorded_until}, waited for {frame}")
            time.sleep(0.005)

    def audio(self, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """A copy of the recording between two frame times (default: all of it)."""
        base = self.start_frame or 0
        lo = 0 if start is None else max(0, start - base)
        hi = self.end if stop is None else min(self.end, stop - base)
        return self.buffer[lo:max(lo, hi)].copy()

    def first_onset(self, after: int | None = None, threshold: float = 1e-3) -> int | None:
        """Frame time of the first sample at or after `after` whose |value| exceeds threshold."""
        base = self.start_frame or 0
        lo = 0 if after is None else max(0, after - base)
        loud = np.flatnonzero(np.abs(self.buffer[lo:self.end]).max(axis=1) > threshold)
        return None if len(loud) == 0 else base + lo + int(loud[0])

    def close(self) -> None:
        """Leave the server (its ports go away); a second call does nothing."""
        if not self.closed:
            self.closed = True
            self.client.deactivate()
            self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
