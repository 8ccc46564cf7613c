"""Standard MIDI files as channel events in seconds (mido), with errors that name the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mido

from engine.errors import InputError

NOTE_OFF, NOTE_ON, CONTROL_CHANGE = 0x80, 0x90, 0xB0


@dataclass(frozen=True)
class MidiEvent:
    """A note-on, note-off or control change, as the bytes a MIDI port would carry."""

    time: float        # seconds from the start of the file
    status: int        # kind in the high nibble, channel - 1 in the low one
    data1: int         # note or controller number
    data2: int         # velocity (a note-on at 0 is a note-off) or controller value

    @property
    def channel(self) -> int:
        return (self.status & 0x0F) + 1

    @property
    def is_note_on(self) -> bool:
        return self.status & 0xF0 == NOTE_ON and self.data2 > 0


def read_events(path: str | Path, channel: int | None = None) -> list[MidiEvent]:
    """Notes and control changes in time order; `channel` (1-16) keeps only that channel."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "MIDI file not found")
    try:
        midi = mido.MidiFile(str(path))
        events = list(_events(midi))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        raise InputError(path, f"not a readable MIDI file ({str(error) or type(error).__name__})") from None
    if channel is not None:
        events = [e for e in events if e.channel == channel]
    if not any(e.is_note_on for e in events):
        raise InputError(path, "MIDI file has no notes" + (f" on channel {channel}" if channel else ""))
    return events


def _events(midi: mido.MidiFile):
    now = 0.0
    for message in midi:   # merged tracks, delta times in seconds with tempo changes applied
        now += message.time
        if message.type == "note_on":
            yield MidiEvent(now, NOTE_ON | message.channel, message.note, message.velocity)
        elif message.type == "note_off":
            yield MidiEvent(now, NOTE_OFF | message.channel, message.note, 0)
        elif message.type == "control_change":
            yield MidiEvent(now, CONTROL_CHANGE | message.channel, message.control, message.value)
