"""`play` as one JACK client: MIDI in and audio out in the same process callback.

A note read at frame offset k of a cycle starts its voice at offset k of that cycle's output,
so every note has the same latency (the server's own) and no jitter: the frame offsets JACK
gives each MIDI event are used as they are. Needs the system's libjack (jackd2, or PipeWire's
JACK) through JACK-Client; python-rtmidi is not used on this path.

Ports: midi_in; out_L and out_R (the main mix, connected to the system's playback ports);
with per-pad outputs also PAD_L and PAD_R for every pad (direct outputs, not connected).
The MIDI sources asked for are followed: one that goes away (a controller unplugged) is
reported, and connected again when a port of that name comes back.
"""

from __future__ import annotations

import errno
import re
import threading
import time

import numpy as np

from engine.errors import InputError
from instrument.audio_callback import AudioCallback

CLIENT_NAME = "noisepad"
MAX_BLOCK = 8192      # JACK periods are at most this long in practice; longer ones play silence


def open_client(name: str = CLIENT_NAME):
    """A JACK client of the running server, or None when no server answers (or no libjack)."""
    try:
        import jack
    except (ImportError, OSError):    # JACK-Client missing, or libjack not installed
        return None
    jack.set_error_function(lambda message: None)   # "cannot connect to server" is expected here
    jack.set_info_function(lambda message: None)
    try:
        return jack.Client(name, no_start_server=True)
    except jack.JackError:
        return None


def port_name(pad_name: str) -> str:
    """A pad name as a JACK port name: the same name on every start, nothing JACK rejects."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", pad_name)


class JackPlayer:
    """Registers the ports, runs the process callback, and reports the server going away."""

    def __init__(self, client, pad_names: list[str] | None = None):
        self.client = client
        self.midi_in = client.midi_inports.register("midi_in")
        self.outs = [client.outports.register("out_L"), client.outports.register("out_R")]
        self.pad_ports = [[client.outports.register(f"{port_name(name)}_{side}") for side in "LR"]
                          for name in (pad_names or [])]
        self.block = np.zeros((MAX_BLOCK, 2), np.float32)
        self.pad_block = np.zeros((len(self.pad_ports), MAX_BLOCK, 2), np.float32) if self.pad_ports else None
        self.label = f"JACK ({client.name})"
        self.server_gone = threading.Event()
        self.ports_changed = threading.Event()
        self.engine: AudioCallback | None = None
        self.following: tuple[str | None] | None = None   # (wanted,) once MIDI sources are followed
        self.listening: set[str] = set()

    @property
    def rate(self) -> int:
        return self.client.samplerate

    @property
    def blocksize(self) -> int:
        return self.client.blocksize

    def start(self, engine: AudioCallback, wanted: str | None, virtual: bool) -> list[str]:
        """Run `engine`, connect the main outputs to the system's playback and the MIDI
        outputs `wanted` names (`midi_sources`) to midi_in, unless `virtual`; returns those."""
        sources = [] if virtual else self.midi_sources(wanted)
        self.engine = engine
        engine.budget = self.blocksize / self.rate
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.set_shutdown_callback(self._shutdown)
        self.client.set_port_registration_callback(self._port_registered, only_available=False)
        self.client.activate()
        # a note sounds in the cycle it came in: one period, plus the server's own output
        # latency, which JACK-Client does not report
        engine.scheduler.delay = self.blocksize / self.rate
        playback = self.client.get_ports(is_audio=True, is_input=True, is_physical=True)
        for out, system in zip(self.outs, playback):
            self.client.connect(out, system)
        for source in sources:
            self.client.connect(source, self.midi_in)
        if not virtual:
            self.following, self.listening = (wanted,), set(sources)
        return sources

    def follow_midi(self) -> list[str]:
        """After ports came or went: connect the wanted MIDI sources that are back (or new) and
        say what changed, one line each. Called from the main thread, never from a callback."""
        if self.following is None or not self.ports_changed.is_set():
            return []
        self.ports_changed.clear()
        present = set(self._matching(self.following[0]))
        notices = [f"MIDI input {name} went away" for name in sorted(self.listening - present)]
        attached = {port.name for port in self.client.get_all_connections(self.midi_in)}
        for name in sorted(present - attached):
            try:
                self.client.connect(name, self.midi_in)
            except Exception as error:   # jack.JackError: it went again meanwhile
                if getattr(error, "code", None) != errno.EEXIST:
                    notices.append(f"MIDI input {name} could not be connected ({error})")
                    present.discard(name)
                    continue
                if name in self.listening:
                    continue   # connected already; the server had not listed it yet
            notices.append(f"MIDI input {name} connected")
        self.listening = present
        return notices

    def midi_sources(self, wanted: str | None) -> list[str]:
        """The JACK MIDI outputs to listen to: those whose name has `wanted` in it (exactly
        that one if it is a full name), else every physical MIDI output (controllers)."""
        found = self._matching(wanted)
        if wanted is not None and not found:
            names = ", ".join(port.name for port in self.client.get_ports(is_midi=True, is_output=True)) or "none"
            raise InputError(None, f"no JACK MIDI output matches '{wanted}' (JACK MIDI outputs: {names})")
        return found

    def _matching(self, wanted: str | None) -> list[str]:
        outputs = self.client.get_ports(is_midi=True, is_output=True)
        if wanted is None:
            return [port.name for port in outputs if port.is_physical]
        exact = [port.name for port in outputs if port.name == wanted]
        return exact or [port.name for port in outputs if wanted.lower() in port.name.lower()]

    def _process(self, frames: int) -> None:
        started = time.perf_counter()
        engine = self.engine
        for offset, data in self.midi_in.incoming_midi_events():
            if len(data) == 3:
                message = bytes(data)
                engine.scheduler.apply(message[0], message[1], message[2], offset)
        if frames > MAX_BLOCK:
            for port in self.outs:
                port.get_array().fill(0.0)
            return
        block = self.block[:frames]
        pads = None if self.pad_block is None else self.pad_block[:, :frames]
        engine.render(block, started, pads)
        for channel, port in enumerate(self.outs):
            port.get_array()[:] = block[:, channel]
        for pad, ports in enumerate(self.pad_ports):
            for channel, port in enumerate(ports):
                port.get_array()[:] = pads[pad, :, channel]

    def _xrun(self, delay_usecs: float) -> None:
        if self.engine is not None:
            self.engine.xruns += 1

    def _port_registered(self, port, registered: bool) -> None:
        self.ports_changed.set()   # JACK forbids connecting from its callbacks: follow_midi does

    def _shutdown(self, status, reason: str) -> None:
        self.server_gone.set()   # only a flag: the client must not be touched from here

    def close(self) -> None:
        """Stop the callback and leave the server; a second call does nothing."""
        client, self.client = self.client, None
        if client is None:
            return
        if not self.server_gone.is_set():
            client.deactivate()
        client.close()
