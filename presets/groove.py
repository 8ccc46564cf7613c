"""Writes groove.mid, the four bars `noisepad demo` plays: `python -m presets.groove`.

A laid-back rock groove at 96 BPM on General MIDI notes: kick, snare with ghost notes,
eighth-note hats with an open hat, a tom fill into a crash. Velocities vary so the
velocity curves and the one-shot variety can be heard.
"""

from __future__ import annotations

from pathlib import Path

import mido

TEMPO_BPM = 96
TICKS = 480                      # per quarter note
SIXTEENTH = TICKS // 4
KICK, SNARE, HAT, OPEN_HAT, PEDAL_HAT, CRASH, TOM_HIGH, TOM_LOW, TOM_FLOOR = 36, 38, 42, 46, 44, 49, 50, 45, 41

# (sixteenth within the bar, note, velocity) for each bar
GROOVE = [(0, KICK, 112), (4, SNARE, 108), (7, SNARE, 38), (8, KICK, 100), (10, KICK, 92), (12, SNARE, 110), (15, SNARE, 34)]
HATS = [(i, HAT, 96 if i % 4 == 0 else 70) for i in range(0, 16, 2)]
FILL = [(8, SNARE, 100), (9, SNARE, 70), (10, TOM_HIGH, 104), (11, TOM_HIGH, 90), (12, TOM_LOW, 106), (13, TOM_LOW, 92),
        (14, TOM_FLOOR, 110), (15, TOM_FLOOR, 100)]


def bars() -> list[list[tuple[int, int, int]]]:
    one = [(0, CRASH, 110)] + GROOVE + HATS[1:]
    two = GROOVE + HATS[:6] + [(12, OPEN_HAT, 88), (14, PEDAL_HAT, 70)]
    three = GROOVE + HATS
    four = [hit for hit in GROOVE if hit[0] < 8] + HATS[:4] + FILL
    return [one, two, three, four, [(0, CRASH, 116), (0, KICK, 116)]]


def groove_midi() -> mido.MidiFile:
    midi = mido.MidiFile(ticks_per_beat=TICKS)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(TEMPO_BPM), time=0))
    events = []
    for bar, hits in enumerate(bars()):
        for sixteenth, note, velocity in hits:
            start = (bar * 16 + sixteenth) * SIXTEENTH
            events += [(start, 1, note, velocity), (start + SIXTEENTH // 2, 0, note, 0)]
    now = 0
    for tick, is_on, note, velocity in sorted(events):
        kind = "note_on" if is_on else "note_off"
        track.append(mido.Message(kind, channel=9, note=note, velocity=velocity, time=tick - now))
        now = tick
    return midi


if __name__ == "__main__":
    path = Path(__file__).with_name("groove.mid")
    groove_midi().save(str(path))
    print(f"wrote {path}")
