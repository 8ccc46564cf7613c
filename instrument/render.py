"""`noisepad render`: a MIDI file, or a take's hit log, through the same voices and mixer as
live play, offline.

Block by block as in real time, each note at its exact sample. For a MIDI file, pools are
filled first, in this process, with one-shots seeded from `--seed` (as many per pad as the
file hits it, up to the pad's pool size), so the same seed renders the same file, bit for bit.
For a hit log, every one-shot the take played is made again from its recipe and each hit
plays it at the sample, velocity and gain the log says, in the take's own block size.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engine.audiofile import write_wav
from engine.errors import InputError
from engine.outfile import check_writable
from engine.pool import PadLayout, Pools
from engine.progress import progress
from instrument.hitlog import Hit, Take, read_take
from instrument.midifile import MidiEvent, read_events
from instrument.mixer import Mixer
from instrument.preset import Preset
from instrument.run_setup import RunSetup, setup_run

TAIL_LIMIT_S = 10.0


def render(midi: Path, output: Path, preset: Preset, seed: int = 0, device: str = "cpu",
           max_per_pad: int | None = None, show_progress: bool = True) -> float:
    """Write the rendering as a WAV file; returns its length in seconds. `max_per_pad` caps the
    one-shots made per pad below its pool size (a quicker render that replays more). Progress
    goes to stderr: a bar on a terminal, plain lines otherwise."""
    from engine.generator_process import PoolFiller  # torch: only once there is something to render

    events = read_events(midi, preset.midi_channel)
    _check_mapped(midi, events, preset)
    check_writable(output)   # now, not after minutes of generating
    setup = setup_run(preset, pool_sizes=_pool_sizes(events, preset, max_per_pad))
    with setup.create_pools() as pools:
        needed = sum(spec.pool_size for spec in setup.specs)
        with progress(needed, "one-shots made", show=show_progress) as bar:
            PoolFiller(setup.generator_config(pools, device=device, seed=seed), pools, strict=True).fill(on_made=bar.update)
        if show_progress:
            print(f"rendering {midi.name} ...", file=sys.stderr, flush=True)
        audio = _play(events, setup, pools, seed)
    write_wav(output, audio.T, setup.rate)
    return audio.shape[0] / setup.rate


def _check_mapped(midi: Path, events: list[MidiEvent], preset: Preset) -> None:
    buttons = {control.number for control in preset.controls if control.source == "note"}
    unmapped = sorted({e.data1 for e in events
                       if e.is_note_on and preset.note_to_pad[e.data1] < 0 and e.data1 not in buttons})
    if unmapped:
        notes = ", ".join(map(str, unmapped[:12])) + (" ..." if len(unmapped) > 12 else "")
        raise InputError(midi, f"notes {notes} are mapped to no pad of {preset.path.name}")


def _pool_sizes(events: list[MidiEvent], preset: Preset, max_per_pad: int | None = None) -> list[int]:
    """As many one-shots per pad as the file hits it, within its pool size and the cap."""
    hits = [0] * len(preset.pads)
    for event in events:
        if event.is_note_on and preset.note_to_pad[event.data1] >= 0:
            hits[preset.note_to_pad[event.data1]] += 1
    cap = max_per_pad or 256
    return [max(1, min(count, pad.spec.pool_size, cap)) for pad, count in zip(preset.pads, hits)]


def _play(events: list[MidiEvent], setup: RunSetup, pools: Pools, seed: int) -> np.ndarray:
    """Through the live path's scheduler and controls: notes, and knobs turned by CCs (those
    of the next hit; the one-shots were all made before)."""
    block, rate = setup.preset.blocksize, setup.rate
    mixer = setup.mixer(pools, block, seed=seed)
    scheduler = setup.scheduler(mixer, setup.controls(mixer, pools))
    positions = [int(round(e.time * rate)) for e in events]
    end = positions[-1] + int(TAIL_LIMIT_S * rate)
    chunks, index, start = [], 0, 0
    while start < end:
        while index < len(events) and positions[index] < start + block:
            event = events[index]
            scheduler.apply(event.status, event.data1, event.data2, positions[index] - start)
            index += 1
        out = np.zeros((block, 2), np.float32)
        mixer.render(out)
        chunks.append(out)
        start += block
        if index == len(events) and mixer.voices == 0:
            break
    return np.concatenate(chunks)


def render_take(log: Path, output: Path, device: str = "cpu", show_progress: bool = True) -> float:
    """Render a take again from its hit log into a WAV file; returns its length in seconds."""
    from engine.recipe import Remaker   # torch: only once the log has been read

    take = read_take(log)
    check_writable(output)
    shots = list(dict.fromkeys((hit.pad, hit.recipe) for hit in take.hits if hit.on))   # each once
    remaker, remade = Remaker(device), []
    with progress(len(shots), "one-shots made again", show=show_progress) as bar:
        for first in range(0, len(shots), 16):   # in steps, for the progress bar
            remade += remaker.remake_all([recipe for _, recipe in shots[first:first + 16]])
            bar.update(min(16, len(shots) - first))
    with Pools.create(_take_layout(len(take.pad_names), shots, remade)) as pools:
        slots = {}
        for (pad, recipe), audio in zip(shots, remade):
            slots[pad, recipe] = int(pools.owned_slots(pad)[0])
            pools.preload(pad, audio, recipe.seed, fresh=False)
        audio = _replay(take, pools, slots)
    write_wav(output, audio.T, take.sample_rate)
    return audio.shape[0] / take.sample_rate


def _take_layout(pads: int, shots, remade) -> list[PadLayout]:
    """Room for each pad's one-shots (one slot, at least)."""
    counts, channels, frames = [0] * pads, [2] * pads, [1] * pads
    for (pad, _), audio in zip(shots, remade):
        counts[pad] += 1
        channels[pad], frames[pad] = audio.shape[0], max(frames[pad], audio.shape[1])
    return [PadLayout(max(1, n), c, f) for n, c, f in zip(counts, channels, frames)]


def _replay(take: Take, pools: Pools, slots: dict) -> np.ndarray:
    """The take's blocks; until its logged end, or until the last voice ends."""
    block, hits = take.blocksize, take.hits
    mixer = Mixer(pools, take.mixes, take.sample_rate, take.mixer_blocksize)
    end = take.end if take.end is not None else (hits[-1].frame if hits else 0) + int(TAIL_LIMIT_S * take.sample_rate)
    chunks, index, start = [], 0, 0
    while start < end:
        while index < len(hits) and hits[index].frame < start + block:
            _play_hit(mixer, hits[index], hits[index].frame - start, slots)
            index += 1
        out = np.zeros((block, 2), np.float32)
        mixer.render(out)
        chunks.append(out)
        start += block
        if take.end is None and index == len(hits) and mixer.voices == 0:
            break
    return np.concatenate(chunks) if chunks else np.zeros((0, 2), np.float32)


def _play_hit(mixer: Mixer, hit: Hit, offset: int, slots: dict) -> None:
    if not hit.on:
        mixer.note_off(hit.pad, offset)
        return
    mixer.set_pad_gains(hit.pad, *hit.gains)
    mixer.set_decay_frames(hit.pad, hit.decay_frames)
    mixer.note_on(hit.pad, hit.played, offset, slot=slots[hit.pad, hit.recipe])
