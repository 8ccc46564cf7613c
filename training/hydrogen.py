"""Hydrogen drumkits: `drumkit.xml` read in all its formats.

Hydrogen 0.9.3 put a `<filename>` straight in each `<instrument>`; later 0.9 versions a list of
`<layer>`s; 1.x wraps the layers in `<instrumentComponent>`s. Every sample file an instrument
names, at any depth, is one one-shot of that instrument.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputError

KIT_FILE = "drumkit.xml"


@dataclass(frozen=True)
class Instrument:
    name: str
    samples: tuple[Path, ...]


@dataclass(frozen=True)
class Drumkit:
    name: str
    license: str
    folder: Path
    instruments: tuple[Instrument, ...]


def is_drumkit(folder: Path) -> bool:
    return (folder / KIT_FILE).is_file()


def read_drumkit(folder: Path) -> Drumkit:
    path = folder / KIT_FILE
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise InputError(path, f"not a readable drumkit ({error})") from None
    instruments = []
    for element in root.iterfind(".//{*}instrument"):
        samples = tuple(dict.fromkeys(folder / f.text.strip() for f in element.iterfind(".//{*}filename") if f.text and f.text.strip()))
        if samples:
            instruments.append(Instrument(_text(element, "name"), samples))
    return Drumkit(
        name=_text(root, "name") or folder.name,
        license=_text(root, "license") or "not stated in drumkit.xml",
        folder=folder,
        instruments=tuple(instruments),
    )


def _text(element, tag: str) -> str:
    child = element.find(f"{{*}}{tag}")
    return (child.text or "").strip() if child is not None else ""
