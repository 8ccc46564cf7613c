"""MIDI input with mido over python-rtmidi: open a port by name or make a virtual one.

Messages arrive on rtmidi's own thread; each note is stamped with the audio clock and pushed
into the `EventQueue` the audio callback drains. Everything but notes is dropped on arrival.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable

import mido

from engine.errors import InputError
from instrument.scheduler import NOTE_OFF, NOTE_ON, EventQueue

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
        raise InputError(None, f"MIDI system unavailable ({_reason(error)})") from None


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
    """`api` None: the first MIDI system that works here."""
    api = pick_api(api)
    """Open a port (or a virtual port named 'noisepad') feeding `queue`; returns the mido port."""

    def on_message(message) -> None:
        kind = message.type
        if kind == "note_on":
            queue.push(clock(), NOTE_ON | message.channel, message.note, message.velocity)
        elif kind == "note_off":
            queue.push(clock(), NOTE_OFF | message.channel, message.note, 0)

    try:
        port_name = VIRTUAL_PORT_NAME if virtual else find_input(name, api)
        with _quiet_stderr():
            return backend(api).open_input(port_name, virtual=virtual, callback=on_message)
    except InputError:
        raise
    except Exception as error:
        raise InputError(None, f"cannot open MIDI input ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__
