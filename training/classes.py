"""Drum classes and the table that maps instrument names (as drumkits spell them) to them.

The first rule whose pattern matches the lower-cased name wins, so the order matters:
"snare rimshot" is a snare, "side stick" a rim, "cowbell" percussion, "ride bell" a ride.
"""

from __future__ import annotations

import re

CLASSES = ("kick", "snare", "rim", "clap", "hihat_closed", "hihat_open", "tom", "crash", "ride", "perc")

NAME_RULES: tuple[tuple[str, str], ...] = (
    ("kick",         r"kick|bass ?drum|\bbd\b"),
    ("snare",        r"rimshot|snare"),
    ("rim",          r"stick|\brim\b|click"),
    ("clap",         r"clap|snap"),
    ("perc",         r"cowbell|conga|bongo|djembe|tambourine|shaker|maraca|clave|woodblock|agogo|cajon|cabasa|guiro|triangle|timbale|sangban|dununba|kenkeni|waterglass|jingle|bell tree|castanet|surdo|cuica|vibraslap"),
    ("hihat_open",   r"(hat|\bhh\b).*(open|\bop\b)|open.*(hat|\bhh\b)|semi-?open|\bohh\b"),
    ("hihat_closed", r"hi-?hat|\bhat\b|\bhh\b"),
    ("tom",          r"\btom|floor"),
    ("ride",         r"ride|\bbell\b"),
    ("crash",        r"crash|splash|china|cymbal"),
)


def class_for_name(name: str) -> str | None:
    """The class of an instrument name, or None when the table does not know it."""
    text = re.sub(r"[_\s]+", " ", name.lower())
    for class_name, pattern in NAME_RULES:
        if re.search(pattern, text):
            return class_name
    return None


def folder_class(name: str) -> str:
    """A class name from a folder name, as the user spelled it (lower case, no spaces)."""
    return re.sub(r"\s+", "_", name.strip().lower())


def class_order(names: set[str]) -> tuple[str, ...]:
    """Known classes in the table's order, then any others alphabetically."""
    known = [c for c in CLASSES if c in names]
    return tuple(known + sorted(names - set(CLASSES)))


def mapping_table() -> str:
    """The name-to-class table as text, for `noisepad dataset --show-classes` and the README."""
    width = max(len(c) for c, _ in NAME_RULES)
    return "\n".join(f"{c:<{width}}  {pattern}" for c, pattern in NAME_RULES)


# The General MIDI percussion key map (GM Level 1's notes 35-81, and GM2's drums among 27-31
# and 82-87; its metronome and square clicks are no drums). SoundFont drum kits are laid out
# by it, so a note's name gives its class.
GM_DRUM_NOTES = {
    27: "High Q", 28: "Slap", 29: "Scratch Push", 30: "Scratch Pull", 31: "Sticks",
    35: "Acoustic Bass Drum", 36: "Bass Drum 1", 37: "Side Stick", 38: "Acoustic Snare", 39: "Hand Clap",
    40: "Electric Snare", 41: "Low Floor Tom", 42: "Closed Hi-Hat", 43: "High Floor Tom", 44: "Pedal Hi-Hat",
    45: "Low Tom", 46: "Open Hi-Hat", 47: "Low-Mid Tom", 48: "Hi-Mid Tom", 49: "Crash Cymbal 1", 50: "High Tom",
    51: "Ride Cymbal 1", 52: "Chinese Cymbal", 53: "Ride Bell", 54: "Tambourine", 55: "Splash Cymbal",
    56: "Cowbell", 57: "Crash Cymbal 2", 58: "Vibraslap", 59: "Ride Cymbal 2", 60: "Hi Bongo", 61: "Low Bongo",
    62: "Mute Hi Conga", 63: "Open Hi Conga", 64: "Low Conga", 65: "High Timbale", 66: "Low Timbale",
    67: "High Agogo", 68: "Low Agogo", 69: "Cabasa", 70: "Maracas", 71: "Short Whistle", 72: "Long Whistle",
    73: "Short Guiro", 74: "Long Guiro", 75: "Claves", 76: "Hi Woodblock", 77: "Low Woodblock",
    78: "Mute Cuica", 79: "Open Cuica", 80: "Mute Triangle", 81: "Open Triangle",
    82: "Shaker", 83: "Jingle Bell", 84: "Bell Tree", 85: "Castanets", 86: "Mute Surdo", 87: "Open Surdo",
}


def class_for_gm_note(note: int) -> str | None:
    """The class of a General MIDI drum note, through its name and the table above."""
    name = GM_DRUM_NOTES.get(note)
    return class_for_name(name) if name else None
