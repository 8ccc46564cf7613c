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
    ("perc",         r"cowbell|conga|bongo|djembe|tambourine|shaker|maraca|clave|woodblock|agogo|cajon|cabasa|guiro|triangle|timbale|sangban|dununba|kenkeni|waterglass"),
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
