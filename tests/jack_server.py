"""A private JACK server (dummy driver) for tests that play audio and MIDI for real.

    with jack_server() as server:            # jackd -d dummy, a name no live server has
        subprocess.Popen(cmd, env=server.env)  # children find it via JACK_DEFAULT_SERVER
        with JackRecorder(server) as rec:      # record ports, send MIDI at exact frames
            ...

What the server gives (Debian jackd2 1.9.21, dummy driver; measured on a 2-core box):

- ready ~0.1-0.3 s after launch; stops in ~20 ms on SIGTERM. No dbus, no realtime
  rights, no JACK_NO_AUDIO_RESERVATION needed (the dummy driver reserves no device).
- ports system:playback_1/2 and system:capture_1/2. PortAudio's JACK host API ("JACK Audio
  Connection Kit") shows one device, "system" (2 in, 2 out), at the server's rate only,
  and auto-connects a stream's ports PortAudio:out_0/out_1 (numbered from 0) to
  system:playback_1/2. PortAudio scans host APIs when initialised: start the server first.
- a frame clock that follows the wall clock; cycles start at multiples of the period, and
  jack_last_frame_time() in a process callback is the frame time of that cycle's first
  sample (libjack's microsecond clock is CLOCK_MONOTONIC_RAW, not time.monotonic()).
- MIDI via python-rtmidi's JACK API (rtmidi.API_UNIX_JACK): a virtual port "P" of client
  "C" is the JACK port "C:P".

Defaults chosen from what failed otherwise:
- --sync: a late client delays the cycle instead of being skipped, so a recording has no
  holes (async: the recorder lost cycles). Late cycles are logged ("JackTimedDriver::Process
  XRun = N usec"); Server.xruns() counts them.
- --timeout 5000 (client timeout, ms): with jackd's default, client opens failed with
  "server_error" on a loaded 2-core machine.
- names from a fixed pool, starts and stops serialised by a file lock, parent-death signal
  (setpriv): see NAME_POOL, _one_at_a_time and _start.

Keep python-rtmidi out of a process that uses PortAudio or JACK-Client (see JackMidiSender).

JackRecorder and JackMidiSender need JACK-Client (`pip install JACK-Client`, `import jack`);
jack_server itself needs only jackd and jack_lsp (Debian package jackd2).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Default server names. JACK registers each running server in /dev/shm/jack-shm-registry,
# which has 8 slots per machine; a server that dies uncleanly (killed, or stopped while a
# client hangs) leaves its slot taken, and only a server of the *same name* reclaims it.
# Reusing this pool of names keeps the registry from filling up ("Too many servers already
# active"), and a name in use by a live server is skipped.
NAME_POOL = tuple(f"noisepad-test-{i}" for i in range(8))

# Where Debian's jackd2 puts its sockets and semaphores (`jackd --version` prints it).
JACK_TMPDIR = Path("/dev/shm")

# Variables a JACK client library reads when it opens a client.
_ENV_KEYS = ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")


def skip_unless_jackd() -> bool:
    """True when jackd and jack_lsp are installed (tests: skipif(not skip_unless_jackd()))."""
    return shutil.which("jackd") is not None and shutil.which("jack_lsp") is not None


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

    def settle(self, cycles: int = 8) -> None:
        """Sleep a few cycles. A connection takes effect a cycle or more after jack_connect
        returns (an event sent at once was lost 1-2 times in 100), and the latency
        notifications it triggers race with a port unregistered meanwhile (segfaults in
        JackClient::HandleLatencyCallback, cf. jackaudio/jack2#216, seen with the libjack
        bundled in python-rtmidi's wheel). Used after every connect in this module."""
        time.sleep(max(0.02, cycles * self.period / self.rate))

    def wait_for_port(self, port: str, timeout: float = 5.0) -> None:
        """Wait until a port exists (clients in other processes register theirs late)."""
        deadline = time.monotonic() + timeout
        while port not in self.ports():
            if time.monotonic() > deadline:
                raise TimeoutError(f"JACK port {port!r} did not appear on {self.name}: {self.ports()}")
            time.sleep(0.01)

    @contextlib.contextmanager
    def in_process(self):
        """Point this process's JACK clients (PortAudio, and any client opened inside) at
        this server.

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


def _jack_lsp(env: dict, *flags: str, attempts: int = 3) -> str:
    # A client open fails now and then (status 0x21) while another process starts or stops
    # a server of another name: about 1 in 100 here. Hence the retries.
    for attempt in range(attempts):
        result = subprocess.run(["jack_lsp", *flags], env=env, capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.05)
    raise RuntimeError(f"jack_lsp failed ({result.returncode}): {result.stderr.strip()}")


def jackd_command(name: str, rate: int, period: int, sync: bool = True, realtime: bool = False,
                  client_timeout_ms: int | None = None) -> list[str]:
    """The jackd command line. Server options come before `-d dummy`; after it, -r is the
    rate and -p the period (before it, -r means --no-realtime and -p --port-max)."""
    command = ["jackd", "--name", name, "--realtime" if realtime else "--no-realtime"]
    if sync:
        command.append("--sync")
    if client_timeout_ms is not None:
        command += ["--timeout", str(client_timeout_ms)]
    return command + ["-d", "dummy", "--rate", str(rate), "--period", str(period)]


@contextlib.contextmanager
def jack_server(name: str | None = None, rate: int = 44100, period: int = 128, *,
                sync: bool = True, realtime: bool = False, client_timeout_ms: int | None = 5000,
                timeout: float = 10.0):
    """Start `jackd -d dummy` under a name no running server has, wait until it serves
    clients, yield a Server, and stop it (SIGTERM, then SIGKILL) however the body ends.

    client_timeout_ms: how long the server waits for a client before giving up on it
    (jackd -t). The default 5000 keeps client opens from failing ("server_error") on a
    loaded 2-core machine; None leaves jackd's own default.
    """
    command = functools.partial(jackd_command, rate=rate, period=period, sync=sync,
                                realtime=realtime, client_timeout_ms=client_timeout_ms)
    server = _start(NAME_POOL if name is None else (name,), command, rate, period, timeout,
                    explicit=name is not None)
    try:
        yield server
    finally:
        _stop(server)
        server.log_text = server.log()  # kept for post-mortems after the file is gone
        server.log_path.unlink(missing_ok=True)


class _NameTaken(Exception):
    pass


@contextlib.contextmanager
def _one_at_a_time():
    """Serialise jackd starts and stops across processes (pytest-xdist workers, parallel
    sessions). jackd 1.9.21 starting while another stops has died of SIGBUS here, and a
    start also races with one of the same name."""
    with open(Path(tempfile.gettempdir()) / "noisepad-jackd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _start(names, command, rate: int, period: int, timeout: float, explicit: bool) -> Server:
    with _one_at_a_time():
        return _start_unlocked(names, command, rate, period, timeout, explicit)


def _start_unlocked(names, command, rate: int, period: int, timeout: float, explicit: bool) -> Server:
    for name in names:
        env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
        if _name_in_use(name):
            if explicit:
                raise RuntimeError(f"a JACK server named {name!r} is already running")
            continue
        log_fd, log_name = tempfile.mkstemp(prefix=f"jackd-{name}-", suffix=".log")
        argv = command(name)
        if shutil.which("setpriv"):  # util-linux: jackd gets SIGTERM if this process dies
            argv = ["setpriv", "--pdeathsig", "TERM", *argv]
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not jackd
        )
        os.close(log_fd)
        server = Server(name, rate, period, process, Path(log_name), env)
        try:
            _wait_until_ready(server, timeout)
            return server
        except _NameTaken:  # another process started a server of this name just now
            server.log_path.unlink(missing_ok=True)
            if explicit:
                raise RuntimeError(f"a JACK server named {name!r} is already running") from None
        except BaseException:
            _terminate(process)  # we hold the lock already
            server.log_path.unlink(missing_ok=True)
            raise
    raise RuntimeError(f"every JACK server name in {names} is in use")


def _name_in_use(name: str) -> bool:
    """Whether a live server listens on that name's socket. A plain connect, not a JACK
    client: a client (jack_lsp) that reaches a server while it starts or stops can hang for
    seconds and delays that server's shutdown by its client timeout."""
    path = JACK_TMPDIR / f"jack_{name}_{os.getuid()}_0"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):  # none, or left by a killed one
            return False
        except OSError:
            return True
        return True


def _wait_until_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not server.running():
            log = server.log()
            if "already active" in log and "Too many servers" not in log:
                raise _NameTaken(server.name)
            hint = ("\nThe JACK server registry is full of dead servers; with no jackd running, "
                    "`rm /dev/shm/jack-shm-registry` resets it.") if "Too many servers" in log else ""
            raise RuntimeError(f"jackd {server.name} exited with {server.process.returncode}:\n{log}{hint}")
        listening = _name_in_use(server.name)
        result = listening and subprocess.run(["jack_lsp"], env=server.env, capture_output=True,
                                              text=True, timeout=30)
        if listening and result.returncode == 0 and "system:playback_1" in result.stdout:
            # jack_lsp may have reached another server of this name whose start raced ours;
            # ours would then exit at once with "already active".
            try:
                server.process.wait(0.05)
            except subprocess.TimeoutExpired:
                return
            continue
        if time.monotonic() > deadline:
            raise TimeoutError(f"jackd {server.name} not ready after {timeout} s:\n{server.log()}")
        time.sleep(0.01)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        with _one_at_a_time():
            _terminate(server.process)


def _terminate(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # No clean-up of /dev/shm here: a server stopped by SIGTERM removes its socket and
    # semaphores itself, and what a killed one leaves (socket, semaphores, registry slot,
    # /dev/shm/jack-UID-N segments) is reclaimed by the next server of the same name; deleting
    # by name could hit a new server that already took the name from the pool.


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
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.0005))   # the callbacks wait less for the GIL
        self.server = server
        self.client = _jack_client(server, name)
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


# The rtmidi side of JackMidiSender, in a process of its own (see JackMidiSender).
_RTMIDI_SENDER = """
import sys, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=sys.argv[1])
out.open_virtual_port("out")
print("ready", flush=True)
for line in sys.stdin:
    out.send_message(bytes.fromhex(line))
out.close_port()
out.delete()  # python-rtmidi closes its JACK client here, not on `del`
"""


class JackMidiSender:
    """Sends MIDI through python-rtmidi's JACK API and reports the exact frame time at which
    each message entered the JACK graph.

        with JackMidiSender(server) as midi:       # JACK port "sender:out"
            midi.connect("noisepad:noisepad")
            frame = midi.note_on(36, 100)

    The rtmidi MidiOut runs in a child process; this process only keeps a JACK-Client tap on
    "sender:out" that timestamps each event (cycle frame time + offset). RtMidi writes a
    queued message at offset 0 of the next cycle its client processes, so a note lands on a
    block boundary, up to a block after the call.

    Why a child process: python-rtmidi's manylinux wheel bundles its own libjack (1.9.22,
    in site-packages/python_rtmidi.libs) while PortAudio and JACK-Client use Debian's 1.9.21:
    in one process they have segfaulted (JackClient::HandleLatencyCallback) and deadlocked
    (jack_client_close waiting on a mutex held by a dead thread). And python-rtmidi holds the
    GIL while it opens or closes its JACK client, so next to a running Python JACK callback
    (PortAudio, JACK-Client) that stalls ~1 s (async server) or fails after the client
    timeout (--sync server).
    """

    def __init__(self, server: Server, name: str = "sender", timeout: float = 10.0):
        self.server = server
        self.name = name
        self.port_name = f"{name}:out"
        self.sent: list[tuple[int, list[int]]] = []  # (frame time, message), as tapped
        self._lock = threading.Lock()
        self._child = subprocess.Popen(
            [sys.executable, "-c", _RTMIDI_SENDER, name], env=server.env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            if self._child.stdout.readline().strip() != "ready":
                self._child.kill()
                raise RuntimeError(f"rtmidi sender did not start: {self._child.stderr.read()}")
            server.wait_for_port(self.port_name, timeout)
            self._tap = _jack_client(server, f"{name}_tap")
            self._tap_port = self._tap.midi_inports.register("in")
            self._tapped: collections.deque = collections.deque()
            self._tap.set_process_callback(self._process)
            self._tap.activate()
            self._tap.connect(self.port_name, self._tap_port)
            server.settle()
        except BaseException:
            self._child.kill()
            self._child.wait()
            raise

    def _process(self, frames: int) -> None:
        cycle = self._tap.last_frame_time
        for offset, data in self._tap_port.incoming_midi_events():
            self._tapped.append((cycle + offset, bytes(data)))

    def connect(self, port: str, timeout: float = 5.0) -> None:
        """Connect "sender:out" to a JACK MIDI input port such as "noisepad:noisepad"."""
        self.server.wait_for_port(port, timeout)
        self._tap.connect(self.port_name, port)
        self.server.settle()

    @property
    def frame_time(self) -> int:
        """The server's current frame time (an estimate between cycles)."""
        return self._tap.frame_time

    def send(self, message, timeout: float = 5.0) -> int:
        """Send MIDI bytes; wait until the message is in the graph; return its frame time."""
        message = bytes(message)
        with self._lock:
            self._child.stdin.write(message.hex() + "\n")
            self._child.stdin.flush()
            deadline = time.monotonic() + timeout
            while not self._tapped:
                if time.monotonic() > deadline or self._child.poll() is not None:
                    raise TimeoutError(f"MIDI {message.hex()} not seen on {self.port_name}")
                time.sleep(0.0005)
            frame, data = self._tapped.popleft()
            assert data == message, (data, message)
            self.sent.append((frame, list(message)))
        return frame

    def note_on(self, note: int, velocity: int = 100, channel: int = 0) -> int:
        return self.send([0x90 | channel, note, velocity])

    def note_off(self, note: int, velocity: int = 0, channel: int = 0) -> int:
        return self.send([0x80 | channel, note, velocity])

    def close(self) -> None:
        if self._child.poll() is None:
            self._child.stdin.close()
            try:
                self._child.wait(10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        self._tap.deactivate()
        self._tap.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
