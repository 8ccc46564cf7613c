"""`noisepad render`: a MIDI file through the same voices and mixer as live play, offline.

Block by block as in real time, each note at its exact sample. Pools are filled first, in this
process, with one-shots seeded from `--seed` (as many per pad as the file hits it, up to the
pad's pool size), so the same seed renders the same file, bit for bit.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.audiofile import write_wav
from engine.errors import InputError
from engine.modelconfig import read_config
from engine.outfile import check_writable
from engine.pool import Pools
from engine.progress import progress
from engine.supervisor import GeneratorConfig, pool_layout
from instrument.kit import pad_mixes
from instrument.midifile import NoteEvent, read_notes
from instrument.mixer import Mixer
from instrument.preset import Preset

TAIL_LIMIT_S = 10.0


def render(midi: Path, output: Path, preset: Preset, seed: int = 0, device: str = "cpu",
           max_per_pad: int | None = None, show_progress: bool = True) -> float:
    """Write the rendering as a WAV file; returns its length in seconds. `max_per_pad` caps the
    one-shots made per pad below its pool size (a quicker render that replays more). Progress
    goes to stderr: a bar on a terminal, plain lines otherwise."""
    from engine.generator import Producer  # torch: only once there is something to render

    events = read_notes(midi, preset.midi_channel)
    _check_mapped(midi, events, preset)
    check_writable(output)   # now, not after minutes of generating
    rate = preset.samplerate or read_config(preset.pads[0].spec.model).sample_rate
    specs = _specs_for(events, preset, rate, max_per_pad)
    with Pools.create(pool_layout(specs)) as pools:
        config = GeneratorConfig(tuple(specs), pools.handle, device=device, seed=seed)
        needed = sum(spec.pool_size for spec in specs)
        with progress(needed, "one-shots made", show=show_progress) as bar:
            Producer(config, pools, strict=True).fill(on_made=bar.update)
        if show_progress:
            print(f"rendering {midi.name} ...", file=sys.stderr, flush=True)
        audio = _play(events, preset, pools, rate, seed)
    write_wav(output, audio.T, rate)
    return audio.shape[0] / rate


def _check_mapped(midi: Path, events: list[NoteEvent], preset: Preset) -> None:
    unmapped = sorted({e.note for e in events if e.velocity > 0 and preset.note_to_pad[e.note] < 0})
    if unmapped:
        notes = ", ".join(map(str, unmapped[:12])) + (" ..." if len(unmapped) > 12 else "")
        raise InputError(midi, f"notes {notes} are mapped to no pad of {preset.path.name}")


def _specs_for(events: list[NoteEvent], preset: Preset, rate: int, max_per_pad: int | None = None):
    hits = [0] * len(preset.pads)
    for event in events:
        if event.velocity > 0:
            hits[preset.note_to_pad[event.note]] += 1
    cap = max_per_pad or 256
    return [replace(pad.spec, pool_size=max(1, min(count, pad.spec.pool_size, cap)), sample_rate=rate)
            for pad, count in zip(preset.pads, hits)]


def _play(events: list[NoteEvent], preset: Preset, pools: Pools, rate: int, seed: int) -> np.ndarray:
    block = preset.blocksize
    mixer = Mixer(pools, pad_mixes(preset), rate, block, seed=seed)
    positions = [int(round(e.time * rate)) for e in events]
    end = positions[-1] + int(TAIL_LIMIT_S * rate)
    chunks, index, start = [], 0, 0
    while start < end:
        while index < len(events) and positions[index] < start + block:
            event, offset = events[index], positions[index] - start
            pad = preset.note_to_pad[event.note]
            if pad >= 0:
                mixer.note_on(pad, event.velocity, offset) if event.velocity > 0 else mixer.note_off(pad, offset)
            index += 1
        out = np.zeros((block, 2), np.float32)
        mixer.render(out)
        chunks.append(out)
        start += block
        if index == len(events) and mixer.voices == 0:
            break
    return np.concatenate(chunks)
