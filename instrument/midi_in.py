"""MIDI input: open a port by name (or part of it) or make a virtual one named 'noisepad'.

Ports are listed through mido's rtmidi backend; the live input is python-rtmidi itself, so that
clock, sysex and active sensing are dropped inside RtMidi before they reach Python, and a note
costs one small tuple. Messages arrive on rtmidi's thread; each note is stamped with the audio
clock and pushed into the `EventQueue` the audio callback drains.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

import mido

from engine.errors import InputError, error_line
from instrument.scheduler import CONTROL_CHANGE, NOTE_OFF, NOTE_ON, EventQueue

VIRTUAL_PORT_NAME = "noisepad"
APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}


def backend(api: str):
    if api not in APIS:
        raise InputError(None, f"unknown MIDI API '{api}' (one of {', '.join(APIS)})")
    return mido.Backend(f"mido.backends.rtmidi/{APIS[api]}")


def pick_api(api: str | None = None) -> str:
    """The requested MIDI API, or the first one that works here (ALSA, then JACK on Linux)."""
    if api is not None:
        input_names(api)  # fails clearly when that API's MIDI system is not running
        return api
    problems = []
    for name in compiled_apis():
        try:
            input_names(name)
            return name
        except InputError as error:
            problems.append(f"{name}: {error.problem}")
    raise InputError(None, "no MIDI system available (" + "; ".join(problems) + ")")


def compiled_apis() -> list[str]:
    import rtmidi

    names = {getattr(rtmidi, f"API_{value}"): key for key, value in APIS.items() if hasattr(rtmidi, f"API_{value}")}
    return [names[api] for api in rtmidi.get_compiled_api() if api in names]


def input_names(api: str) -> list[str]:
    try:
        with _quiet_stderr():
            return list(backend(api).get_input_names())
    except InputError:
        raise
    except Exception as error:  # rtmidi raises its own errors when an API has no server (e.g. no ALSA sequencer)
        raise InputError(None, f"MIDI system unavailable ({error_line(error, last=True)})") from None


@contextlib.contextmanager
def _quiet_stderr():
    """ALSA and JACK print their own diagnostics when they find no server; we report one line."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def find_input(wanted: str | None, api: str) -> str:
    """A port name: the exact name, else the first containing `wanted`, else the first port."""
    names = input_names(api)
    if not names:
        raise InputError(None, "no MIDI input ports found (connect a controller, or use --virtual)")
    if wanted is None:
        return names[0]
    for name in names:
        if name == wanted:
            return name
    for name in names:
        if wanted.lower() in name.lower():
            return name
    raise InputError(None, f"no MIDI input matches '{wanted}' (ports: {', '.join(names)})")


def open_input(queue: EventQueue, clock: Callable[[], float], name: str | None = None,
               virtual: bool = False, api: str | None = None):
    """Open a port (or a virtual port 'noisepad') feeding `queue`; returns the rtmidi.MidiIn.
    `api` None: the first MIDI system that works here."""
    import rtmidi

    api = pick_api(api)

    arrival = ArrivalClock(clock)

    def on_message(event, _data) -> None:
        message, delta = event
        when = arrival.stamp(delta)
        status = message[0]
        if len(message) != 3:
            return
        if status & 0xE0 == NOTE_OFF:   # note-off 0x8n or note-on 0x9n
            queue.push(when, status, message[1], message[2] if status & 0xF0 == NOTE_ON else 0)
        elif status & 0xF0 == CONTROL_CHANGE:
            queue.push(when, status, message[1], message[2])

    try:
        with _quiet_stderr():
            port = rtmidi.MidiIn(getattr(rtmidi, f"API_{APIS[api]}"), VIRTUAL_PORT_NAME)
            port.ignore_types(sysex=True, timing=True, active_sense=True)
            if virtual:
                port.open_virtual_port(VIRTUAL_PORT_NAME)
            else:
                wanted = find_input(name, api)
                port.open_port(port.get_ports().index(wanted), VIRTUAL_PORT_NAME)
            port.set_callback(on_message)
    except InputError:
        raise
    except Exception as error:
        raise InputError(None, f"cannot open MIDI input ({error_line(error, last=True)})") from None
    return port


class ArrivalClock:
    """Arrival times with less jitter than reading the clock when Python gets the message.

    RtMidi stamps each message (as the time since the previous one) when its driver receives
    it; Python sees it later, by a varying amount. The previous arrival plus RtMidi's delta is
    exact up to the previous estimate's error, and reading the clock now is never early, so
    the smaller of the two is the better estimate. It is kept within MAX_LAG of the clock, so
    a drift between RtMidi's clock and the audio clock cannot accumulate.
    """

    MAX_LAG = 0.005

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.last: float | None = None

    def stamp(self, delta: float) -> float:
        now = self.clock()
        if self.last is None or now <= 0.0:   # first message, or the audio clock not running yet
            estimate = now
        else:
            estimate = min(now, max(self.last + delta, now - self.MAX_LAG))
        self.last = estimate if now > 0.0 else None
        return estimate

