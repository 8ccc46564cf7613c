"""A private JACK server (dummy driver) for tests that play audio and MIDI for real.

    with jack_server() as server:          # jackd -d dummy under a unique name
        subprocess.run(cmd, env=server.env)  # children find it through JACK_DEFAULT_SERVER
        with server.in_process():            # or use it from this process (PortAudio, rtmidi)
            ...

What the server gives (Debian jackd2 1.9.21, dummy driver):

- ports system:playback_1/2 and system:capture_1/2; PortAudio's JACK host API shows one
  device, "system" (2 in, 2 out), at the server's rate only, and auto-connects a stream's
  ports (PortAudio:out_0, PortAudio:out_1, numbered from 0) to system:playback_*.
- a frame clock that follows the wall clock; jack_last_frame_time() in a process callback
  is the frame time of the first sample of that cycle's buffers.
- python-rtmidi's JACK API (rtmidi.API_UNIX_JACK) for MIDI: a virtual port "P" of a client
  named "C" is the JACK port "C:P".

The server runs with --sync by default: a client that is late delays the cycle instead of
being skipped, so a recording has no holes. Late cycles are still logged by jackd
("JackTimedDriver::Process XRun = N usec"); `Server.xruns()` counts them.

JackRecorder and JackMidiSender need JACK-Client (`pip install JACK-Client`, `import jack`);
jack_server itself needs only the jackd and jack_lsp programs.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_counter = itertools.count()

# Variables a JACK client library reads when it opens a client.
_ENV_KEYS = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")


def skip_unless_jackd() -> bool:
    """True when jackd and jack_lsp are installed (tests: skipif(not skip_unless_jackd()))."""
    return shutil.which("jackd") is not None and shutil.which("jack_lsp") is not None


def unique_server_name() -> str:
    """A server name no other test, worker or process uses at the same time."""
    return f"np{os.getpid()}x{next(_counter)}"


@dataclass
class Server:
    """A running jackd. Pass `env` to subprocesses; use `in_process()` for this process."""

    name: str
    rate: int
    period: int
    process: subprocess.Popen
    log_path: Path
    env: dict = field(repr=False)
    log_text: str = field(default="", repr=False)  # jackd's output, filled in when it stops

    @property
    def client_env(self) -> dict:
        """Only the variables that point a JACK client at this server."""
        return {key: self.env[key] for key in _ENV_KEYS}

    def log(self) -> str:
        """What jackd has printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return self.log_text

    def xruns(self) -> int:
        """How many xruns (late or missed cycles) jackd has reported."""
        return len(re.findall(r"xrun", self.log(), flags=re.IGNORECASE))

    def running(self) -> bool:
        return self.process.poll() is None

    def ports(self, *flags: str) -> list[str]:
        """Port names, from `jack_lsp` (flags as jack_lsp takes them, e.g. "-t")."""
        return _jack_lsp(self.env, *flags).splitlines()

    def connections(self) -> dict[str, list[str]]:
        """{port: [ports it is connected to]} for every port."""
        result: dict[str, list[str]] = {}
        port = None
        for line in _jack_lsp(self.env, "-c").splitlines():
            if line.startswith((" ", "\t")):
                result[port].append(line.strip())
            else:
                port = line.strip()
                result[port] = []
        return result

    def wait_for_port(self, port: str, timeout: float = 5.0) -> None:
        """Wait until a port exists (clients in other processes register theirs late)."""
        deadline = time.monotonic() + timeout
        while port not in self.ports():
            if time.monotonic() > deadline:
                raise TimeoutError(f"JACK port {port!r} did not appear on {self.name}: {self.ports()}")
            time.sleep(0.01)

    @contextlib.contextmanager
    def in_process(self):
        """Point this process's JACK clients (PortAudio, rtmidi) at this server.

        Sets JACK_DEFAULT_SERVER/JACK_NO_START_SERVER in os.environ and, if sounddevice is
        imported, re-initialises PortAudio so that its JACK host API appears (PortAudio
        scans host APIs once, at initialisation). On exit it terminates PortAudio (closing
        its streams) *before* the server can stop: PortAudio 19.6 asserts, and aborts the
        whole process at exit, when its JACK client outlives the server. Then it restores
        the environment and re-initialises PortAudio without JACK.
        """
        try:
            with self.environ():
                _reinit_portaudio()
                try:
                    yield self
                finally:
                    _terminate_portaudio()
        finally:
            _initialize_portaudio()

    @contextlib.contextmanager
    def environ(self):
        """Only set JACK_DEFAULT_SERVER/JACK_NO_START_SERVER in os.environ (libjack reads
        them when a client opens: enough for rtmidi, not for an initialised PortAudio)."""
        saved = {key: os.environ.get(key) for key in _ENV_KEYS}
        os.environ.update(self.client_env)
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _terminate_portaudio() -> None:
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()


def _initialize_portaudio() -> None:
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._initialize()


def _reinit_portaudio() -> None:
    _terminate_portaudio()
    _initialize_portaudio()


def _jack_lsp(env: dict, *flags: str) -> str:
    result = subprocess.run(["jack_lsp", *flags], env=env, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"jack_lsp failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def jackd_command(name: str, rate: int, period: int, sync: bool = True, realtime: bool = False) -> list[str]:
    """The jackd command line. Server options come before `-d dummy`; after it, -r is the
    rate and -p the period (before it, -r means --no-realtime and -p --port-max)."""
    command = ["jackd", "--name", name, "--realtime" if realtime else "--no-realtime"]
    if sync:
        command.append("--sync")
    return command + ["-d", "dummy", "--rate", str(rate), "--period", str(period)]


@contextlib.contextmanager
def jack_server(name: str | None = None, rate: int = 44100, period: int = 128, *,
                sync: bool = True, realtime: bool = False, timeout: float = 10.0):
    """Start `jackd -d dummy` under a unique name, wait until it serves clients, yield a
    Server, and stop it (SIGTERM, then SIGKILL) however the body ends."""
    name = name or unique_server_name()
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    if subprocess.run(["jack_lsp"], env=env, capture_output=True).returncode == 0:
        # A second jackd of that name would exit at once, while jack_lsp answered for the first.
        raise RuntimeError(f"a JACK server named {name!r} is already running")
    log_fd, log_name = tempfile.mkstemp(prefix=f"jackd-{name}-", suffix=".log")
    process = subprocess.Popen(
        jackd_command(name, rate, period, sync, realtime),
        stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT, env=env,
        start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not jackd
    )
    os.close(log_fd)
    server = Server(name, rate, period, process, Path(log_name), env)
    try:
        _wait_until_ready(server, timeout)
        yield server
    finally:
        _stop(server)
        server.log_text = server.log()  # kept for post-mortems after the file is gone
        server.log_path.unlink(missing_ok=True)


def _wait_until_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not server.running():
            raise RuntimeError(f"jackd {server.name} exited with {server.process.returncode}:\n{server.log()}")
        result = subprocess.run(["jack_lsp"], env=server.env, capture_output=True, text=True)
        if result.returncode == 0 and "system:playback_1" in result.stdout:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"jackd {server.name} not ready after {timeout} s:\n{server.log()}")
        time.sleep(0.01)


def _stop(server: Server, timeout: float = 5.0) -> None:
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # jackd removes these itself unless it was killed; the large shared memory segments
    # (/dev/shm/jack-UID-N) of a killed server are reclaimed by the next server that starts.
    for leftover in Path("/dev/shm").glob(f"jack_{server.name}_*"):
        leftover.unlink(missing_ok=True)
    for leftover in Path("/dev/shm").glob(f"jack_sem.*_{server.name}_*"):
        leftover.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# Clients for end-to-end tests (need JACK-Client)


def _jack_client(server: Server, name: str):
    import jack

    return jack.Client(name, servername=server.name, no_start_server=True)


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
        self.server = server
        self.client = _jack_client(server, name)
        self.inports = [self.client.inports.register(f"in_{i + 1}") for i in range(channels)]
        self.midi_out = self.client.midi_outports.register("midi_out") if midi else None
        self.buffer = np.zeros((int(seconds * server.rate), channels), np.float32)
        self.start_frame: int | None = None  # frame time of buffer[0]
        self.end = 0  # rows recorded so far
        self.gaps = 0
        self.overflowed = False
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

    def connect_midi(self, destination: str) -> None:
        """Connect midi_out to a JACK MIDI input port such as "noisepad:noisepad"."""
        self.client.connect(self.midi_out, destination)

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
            time.sleep(0.001)
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
        self.client.deactivate()
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class JackMidiSender:
    """Sends MIDI through python-rtmidi's JACK API and notes the frame time of each send.

        with JackMidiSender(server) as midi:
            midi.connect("noisepad:noisepad")
            frame = midi.note_on(36, 100)

    `frame` is the server's frame time just before the send. RtMidi's JACK output queues the
    message and its process callback writes it at offset 0 of the next cycle it processes:
    the cycle that contains `frame` or the one after (JackRecorder.send_midi is exact to the
    frame instead).

    Create it before any JACK client with a Python process callback (PortAudio stream with a
    callback, JackRecorder, rtmidi input with a callback) runs in this process: python-rtmidi
    holds the GIL while it opens its JACK client, that callback waits for the GIL, and the
    server waits for the callback: the open stalls ~1 s (async server) or fails after ~5 s
    with "JACK server not running?" (--sync server).
    """

    def __init__(self, server: Server, name: str = "sender"):
        import rtmidi

        self.server = server
        with server.environ():  # rtmidi's libjack reads JACK_DEFAULT_SERVER at open
            self.midiout = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=name)
        self.clock = _jack_client(server, f"{name}_clock")
        self.sent: list[tuple[int, list[int]]] = []  # (frame time, message)
        self._lock = threading.Lock()

    def connect(self, port: str, timeout: float = 5.0) -> None:
        """Open the sender's port and connect it to a JACK MIDI input port such as "noisepad:noisepad"."""
        deadline = time.monotonic() + timeout
        while port not in self.midiout.get_ports():
            if time.monotonic() > deadline:
                raise TimeoutError(f"MIDI port {port!r} not found: {self.midiout.get_ports()}")
            time.sleep(0.01)
        self.midiout.open_port(self.midiout.get_ports().index(port), "out")

    def send(self, message: list[int]) -> int:
        """Send raw MIDI bytes; return the frame time just before the send."""
        with self._lock:
            frame = self.clock.frame_time
            self.midiout.send_message(message)
            self.sent.append((frame, list(message)))
        return frame

    def note_on(self, note: int, velocity: int = 100, channel: int = 0) -> int:
        return self.send([0x90 | channel, note, velocity])

    def note_off(self, note: int, velocity: int = 0, channel: int = 0) -> int:
        return self.send([0x80 | channel, note, velocity])

    def close(self) -> None:
        self.midiout.close_port()
        self.midiout.delete()  # closes the JACK client; `del` alone leaves it open until exit
        self.clock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
