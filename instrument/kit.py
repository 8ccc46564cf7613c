"""From a preset to what the mixer needs."""

from __future__ import annotations

from instrument.mixer import PadMix
from instrument.preset import Preset


def pad_mixes(preset: Preset) -> list[PadMix]:
    groups = sorted({pad.choke for pad in preset.pads if pad.choke is not None})
    return [
        PadMix(
            gain=10 ** (pad.gain_db / 20), pan=pad.pan, velocity_curve=pad.velocity_curve,
            choke=groups.index(pad.choke) if pad.choke is not None else -1,
            release_on_note_off=pad.release_on_note_off, velocity_spread=pad.velocity_spread,
        )
        for pad in preset.pads
    ]
