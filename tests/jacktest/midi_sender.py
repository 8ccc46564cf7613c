"""MIDI sent through python-rtmidi's JACK API, each message's frame time tapped as it enters the graph."""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time

from tests.jacktest.server import Server, jack_client

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
            self._tap = jack_client(server, f"{name}_tap")
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
