"""Standard MIDI files as note events in seconds (mido), with errors that name the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mido

from engine.errors import InputError


@dataclass(frozen=True)
class NoteEvent:
    time: float        # seconds from the start of the file
    note: int
    velocity: int      # 0 is note-off
    channel: int       # 1-16


def read_notes(path: str | Path, channel: int | None = None) -> list[NoteEvent]:
    """Note-on/off events in time order; `channel` (1-16) keeps only that channel."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "MIDI file not found")
    try:
        midi = mido.MidiFile(str(path))
        events = list(_notes(midi))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as error:
        raise InputError(path, f"not a readable MIDI file ({str(error) or type(error).__name__})") from None
    if channel is not None:
        events = [e for e in events if e.channel == channel]
    if not any(e.velocity > 0 for e in events):
        raise InputError(path, "MIDI file has no notes" + (f" on channel {channel}" if channel else ""))
    return events


def _notes(midi: mido.MidiFile):
    now = 0.0
    for message in midi:   # merged tracks, delta times in seconds with tempo changes applied
        now += message.time
        if message.type == "note_on":
            yield NoteEvent(now, message.note, message.velocity, message.channel + 1)
        elif message.type == "note_off":
            yield NoteEvent(now, message.note, 0, message.channel + 1)
