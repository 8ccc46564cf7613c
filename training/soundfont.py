"""SoundFont drum kits: every kit of a .sf2/.sf3 file rendered one hit at a time by FluidSynth.

A font's drum kits are its presets in bank 128 (a drum-only font with no bank 128, such as
the AVL drumkits, counts each preset as a kit). sf2utils reads which notes a kit plays and
the velocity layers each note has; FluidSynth (the `fluidsynth` program) renders the hits,
with its reverb and chorus off, so envelopes, filters, loops and layers sound as the font
means them. A note's class comes from its General MIDI name (training/classes.py).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile

from engine.errors import InputError
from training.classes import class_for_gm_note

SUFFIXES = {".sf2", ".sf3"}
DRUM_BANK = 128
DRUM_CHANNEL = 9
# kits whose notes do not follow the General MIDI drum map
NOT_GM_KITS = re.compile(r"sfx|metronome|marching|cm-64", re.IGNORECASE)
SLOT_SECONDS = 1.0        # one hit per slot: note on at its start, all sound off near its end
HOLD_SECONDS = 0.8        # note off after this: longer than a one-shot
RENDER_RATE = 44100


@dataclass(frozen=True)
class Hit:
    note: int
    velocity: int
    class_name: str


@dataclass(frozen=True)
class Kit:
    name: str
    bank: int
    program: int
    hits: tuple[Hit, ...]


@dataclass(frozen=True)
class Font:
    path: Path
    name: str
    license: str
    kits: tuple[Kit, ...]


def is_soundfont(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SUFFIXES


@contextmanager
def _quiet_parser():
    """sf2utils logs a warning for every odd generator it meets; a dataset build needs none."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def read_font(path: Path) -> Font:
    from sf2utils.sf2parse import Sf2File

    try:
        with path.open("rb") as file, _quiet_parser():
            parsed = Sf2File(file)
            presets = [p for p in parsed.presets if p.name != "EOP"]
            drums = [p for p in presets if p.bank == DRUM_BANK] or presets
            kits = tuple(_kit(p) for p in sorted(drums, key=lambda p: (p.bank, p.preset)) if not NOT_GM_KITS.search(p.name))
            copyright = parsed.info.copyright
    except (OSError, ValueError, KeyError, IndexError, AttributeError, TypeError) as error:
        raise InputError(path, f"not a readable SoundFont ({type(error).__name__}: {error})") from None
    return Font(path, path.name, copyright or "not stated in the font", tuple(k for k in kits if k.hits))


def _kit(preset) -> Kit:
    hits = []
    for note in range(128):
        class_name = class_for_gm_note(note)
        if class_name is not None:
            hits += [Hit(note, velocity, class_name) for velocity in _layer_velocities(preset, note)]
    return Kit(preset.name.strip(), preset.bank, preset.preset, tuple(hits))


def _layer_velocities(preset, note: int) -> list[int]:
    """One velocity per velocity layer the kit has on this note (the loudest of each layer);
    none where the note has no sample."""
    layers = set()
    for preset_zone in preset.bags:
        instrument = preset_zone.instrument
        if instrument is None or not _covers(preset_zone.key_range, note):
            continue
        preset_velocities = preset_zone.velocity_range or (0, 127)
        for zone in instrument.bags:
            if zone.sample is None or not _covers(zone.key_range, note):
                continue
            low, high = zone.velocity_range or (0, 127)
            low, high = max(low, preset_velocities[0]), min(high, preset_velocities[1])
            if 1 <= high and low <= high:
                layers.add(max(1, high))
    return sorted(layers)


def _covers(key_range, note: int) -> bool:
    return key_range is None or key_range[0] <= note <= key_range[1]


def hits_midi(kit: Kit) -> mido.MidiFile:
    """One hit per slot: note on at the slot's start, note off, all sound off before the next."""
    channel = DRUM_CHANNEL if kit.bank == DRUM_BANK else 0
    events = [] if channel == DRUM_CHANNEL else [(0, mido.Message("control_change", channel=channel, control=0, value=kit.bank))]
    events.append((0, mido.Message("program_change", channel=channel, program=kit.program)))
    for i, hit in enumerate(kit.hits):
        start = i * _ticks(SLOT_SECONDS)
        events += [
            (start, mido.Message("note_on", channel=channel, note=hit.note, velocity=hit.velocity)),
            (start + _ticks(HOLD_SECONDS), mido.Message("note_off", channel=channel, note=hit.note)),
            (start + _ticks(SLOT_SECONDS - 0.05), mido.Message("control_change", channel=channel, control=120, value=0)),
        ]
    events.append((len(kit.hits) * _ticks(SLOT_SECONDS), mido.MetaMessage("end_of_track")))
    track, now = mido.MidiTrack(), 0
    for tick, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=1000)   # at the default 120 bpm a tick is 0.5 ms
    midi.tracks.append(track)
    return midi


def _ticks(seconds: float) -> int:
    return int(round(seconds * 2000))


def render_kit(font: Font, kit: Kit, scratch: Path) -> np.ndarray:
    """float32 (frames, 2) of the whole kit's hits, one per SLOT_SECONDS."""
    program = shutil.which("fluidsynth")
    if program is None:
        raise InputError(font.path, "rendering a SoundFont needs FluidSynth (the `fluidsynth` program; Debian: apt install fluidsynth)")
    midi_path, wav_path = scratch / "kit.mid", scratch / "kit.wav"
    hits_midi(kit).save(str(midi_path))
    command = [program, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RENDER_RATE),
               "-O", "float", "-T", "wav", "-F", str(wav_path), str(font.path), str(midi_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wav_path.is_file():
        message = (result.stderr or result.stdout).strip().splitlines()
        raise InputError(font.path, f"FluidSynth could not render kit '{kit.name}' ({message[-1] if message else 'no output'})")
    audio, _ = soundfile.read(str(wav_path), dtype="float32", always_2d=True)
    return audio


def cut_hits(audio: np.ndarray, count: int, frames: int) -> list[np.ndarray]:
    """The hits of a rendered kit, each `frames` long from the start of its slot."""
    slot = int(round(SLOT_SECONDS * RENDER_RATE))
    hits = []
    for i in range(count):
        piece = np.zeros((frames, audio.shape[1]), dtype=np.float32)
        take = audio[i * slot:i * slot + frames]
        piece[:len(take)] = take
        hits.append(piece)
    return hits
