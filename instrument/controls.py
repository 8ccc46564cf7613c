"""Live controls: MIDI CCs and notes mapped to knobs and buttons on one pad or all.

Knobs (a CC's 0-127 mapped onto a range): `gain_db`, `pan` and `decay` (seconds to silence)
apply to the next hit; `tune` (semitones on top of the pad's),
`strength` (variation) and `guidance` to the one-shots made from then on. Buttons (a note, or a
CC pressed at 64 and above): `refresh` makes every one-shot the pad holds stale, so the
generator replaces them first; `hold` stops the pad's refills while pressed (a CC) or until
pressed again (a note); `keep` asks for the pad's last played one-shot to be written to the
keepers' folder. Everything here runs in the audio callback: it only writes numbers into the
mixer and the shared pools, never waits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.pool import Pools

KNOBS = {"gain_db": (-60.0, 12.0), "pan": (-1.0, 1.0), "decay": (0.005, 10.0), "strength": (0.0, 1.0),
         "guidance": (0.0, 20.0), "tune": (-12.0, 12.0)}
DEFAULT_RANGES = {"gain_db": (-24.0, 6.0), "pan": (-1.0, 1.0), "decay": (0.05, 1.0), "strength": (0.0, 1.0),
                  "guidance": (1.0, 4.0), "tune": (-2.0, 2.0)}
BUTTONS = ("refresh", "hold", "keep")


@dataclass(frozen=True)
class Control:
    source: str                 # "cc" or "note"
    number: int                 # the CC or note number, 0-127
    action: str                 # a knob or a button name
    pad: int | None             # pad index; None: every pad
    low: float = 0.0            # knobs: the value at 0 ...
    high: float = 1.0           # ... and at 127

    @property
    def is_knob(self) -> bool:
        return self.action in KNOBS

    def value(self, data: int) -> float:
        return self.low + (self.high - self.low) * data / 127.0


class ControlMap:
    """Applies mapped CCs and button notes; built before play, then only read and written in
    the callback. `keep_requests[p]` counts presses of keep for pad p (the main thread writes
    the files and counts them in `keeps_done`)."""

    def __init__(self, controls: tuple[Control, ...], pads: int, mixer, pools: Pools):
        self.mixer = mixer
        self.pools = pools
        self.pads = pads
        self.by_cc = [tuple(c for c in controls if c.source == "cc" and c.number == n) for n in range(128)]
        self.by_note = [tuple(c for c in controls if c.source == "note" and c.number == n) for n in range(128)]
        self.keep_requests = np.zeros(pads, np.int64)
        self.keeps_done = np.zeros(pads, np.int64)   # main thread only
        self.buttons_down: set[tuple[str, int]] = set()

    def handles_note(self, note: int) -> bool:
        return bool(self.by_note[note])

    def cc(self, number: int, data: int) -> None:
        for control in self.by_cc[number]:
            if control.is_knob:
                self._turn(control, control.value(data))
            else:
                self._button(control, pressed=data >= 64)

    def note(self, note: int, pressed: bool) -> None:
        for control in self.by_note[note]:
            if control.action == "hold":   # a key has no latch of its own: each press toggles
                if pressed:
                    self._hold(control, not self._held(control))
            elif pressed:
                self._button(control, pressed=True)

    def _pads(self, control: Control) -> range:
        return range(self.pads) if control.pad is None else range(control.pad, control.pad + 1)

    def _turn(self, control: Control, value: float) -> None:
        for p in self._pads(control):
            if control.action == "gain_db":
                self.mixer.set_gain_db(p, value)
            elif control.action == "pan":
                self.mixer.set_pan(p, value)
            elif control.action == "decay":
                self.mixer.set_decay_frames(p, round(value * self.mixer.sample_rate))
            elif control.action == "strength":
                self.pools.strength[p] = value
            elif control.action == "tune":
                self.pools.tune[p] = value
            else:
                self.pools.guidance[p] = value

    def _button(self, control: Control, pressed: bool) -> None:
        key = (control.action, -1 if control.pad is None else control.pad)
        was_down = key in self.buttons_down
        if pressed:
            self.buttons_down.add(key)
        else:
            self.buttons_down.discard(key)
        if control.action == "hold":
            self._hold(control, pressed)
        elif pressed and not was_down:   # on the press, not on every CC message while held down
            for p in self._pads(control):
                if control.action == "refresh":
                    self.pools.refresh(p)
                else:
                    self.keep_requests[p] += 1

    def _held(self, control: Control) -> bool:
        return all(self.pools.held[p] for p in self._pads(control))

    def _hold(self, control: Control, on: bool) -> None:
        for p in self._pads(control):
            self.pools.held[p] = int(on)
