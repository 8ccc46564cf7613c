"""The hit log: every hit of a take, with the recipe of the one-shot it played, so the take can be
rendered again (`noisepad render --hits`) and any hit's one-shot kept later (`noisepad keep`).

The mixer writes each hit into a `HitLog`, a preallocated ring, from the audio callback; a
writer thread (`HitLogWriter`) drains it into a JSON Lines file: a header line (rates, block
sizes, the pads' mixing), then one line per note-on that sounded and per note-off, each at the
sample of the take it fell on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.cache import model_hash
from engine.errors import InputError
from engine.pool import Made, Pools
from engine.recipe import Recipe, recipe_for
from instrument.mixer import PadMix
from instrument.run_setup import RunSetup

FORMAT = "noisepad hits 1"
NOTE_OFF, NOTE_ON = 0, 1
INTS = ("frame", "kind", "pad", "note", "velocity", "played", "decay", "seed", "batch", "position", "threads", "origin")
FLOATS = ("strength", "guidance", "tune", "gain_left", "gain_right")


def hit_log_path(recording: Path) -> Path:
    """take.wav's hit log: take.hits.jsonl beside it."""
    return recording.with_name(recording.stem + ".hits.jsonl")


class HitLog:
    """A ring the audio callback writes hits into (scalars into preallocated arrays) and a
    writer thread drains; when the writer falls behind, hits are counted as dropped."""

    def __init__(self, pools: Pools, capacity: int = 65536):
        self.pools = pools
        self.ints = np.zeros((capacity, len(INTS)), np.int64)
        self.floats = np.zeros((capacity, len(FLOATS)), np.float64)
        self.written = 0   # callback-owned
        self.read = 0      # writer-owned
        self.dropped = 0   # callback-owned

    def note_on(self, frame: int, pad: int, slot: int, note: int, velocity: int, played: int,
                gains: np.ndarray, decay: int) -> None:
        row = self._row()
        if row < 0:
            return
        pools, ints, floats = self.pools, self.ints[row], self.floats[row]
        ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = frame, NOTE_ON, pad, note, velocity, played
        ints[6], ints[7], ints[8] = decay, pools.seed[pad, slot], pools.made_batch[pad, slot]
        ints[9], ints[10], ints[11] = pools.made_position[pad, slot], pools.made_threads[pad, slot], pools.origin[pad, slot]
        floats[0], floats[1], floats[2] = pools.made_strength[pad, slot], pools.made_guidance[pad, slot], pools.made_tune[pad, slot]
        floats[3], floats[4] = gains[0], gains[1]
        self.written += 1

    def note_off(self, frame: int, pad: int, note: int) -> None:
        row = self._row()
        if row < 0:
            return
        ints = self.ints[row]
        ints[0], ints[1], ints[2], ints[3] = frame, NOTE_OFF, pad, note
        self.written += 1

    def _row(self) -> int:
        if self.written - self.read >= len(self.ints):
            self.dropped += 1
            return -1
        return self.written % len(self.ints)

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """Every hit logged since the last take, as copies (writer thread only)."""
        written, size = self.written, len(self.ints)
        rows = np.arange(self.read, written) % size
        taken = self.ints[rows], self.floats[rows]
        self.read = written
        return taken


class HitLogWriter:
    """Writes a HitLog to a JSON Lines file as the take goes on."""

    def __init__(self, path: Path, log: HitLog, setup: RunSetup, blocksize: int, mixer_blocksize: int):
        self.path = path
        self.log = log
        self.specs = setup.specs
        self.names = setup.names
        self.hashes = {Path(spec.model): model_hash(Path(spec.model)) for spec in self.specs}
        self.rate = setup.rate
        self.file = open(path, "w")
        header = {
            "format": FORMAT, "sample_rate": setup.rate, "blocksize": blocksize, "mixer_blocksize": mixer_blocksize,
            "pads": [{"name": name, "velocity_curve": mix.velocity_curve, "choke": mix.choke,
                      "release_on_note_off": mix.release_on_note_off} for name, mix in zip(self.names, setup.mixes)],
        }
        self._line(header)

    def drain(self) -> None:
        ints, floats = self.log.take()
        for row, knobs in zip(ints.tolist(), floats.tolist()):
            self._line(self._event(dict(zip(INTS, row)), dict(zip(FLOATS, knobs))))
        self.file.flush()

    def _event(self, hit: dict, knobs: dict) -> dict:
        pad = hit["pad"]
        event = {"t": round(hit["frame"] / self.rate, 6), "frame": hit["frame"], "pad": self.names[pad],
                 "note": hit["note"]}
        if hit["kind"] == NOTE_OFF:
            return {**event, "off": True}
        spec = self.specs[pad]
        made = Made(knobs["strength"], knobs["guidance"], hit["batch"], hit["position"], hit["threads"], hit["origin"],
                    knobs["tune"])
        recipe = recipe_for(spec, hit["seed"], self.hashes[Path(spec.model)], made)
        return {**event, "velocity": hit["velocity"], "played": hit["played"],
                "gain": [knobs["gain_left"], knobs["gain_right"]], "decay_frames": hit["decay"], "recipe": recipe.to_dict()}

    def close(self, end_frame: int, recording_dropped: int = 0) -> None:
        """The last hits, and a closing line: where the take ended and what was lost."""
        try:
            self.drain()
            self._line({"end": end_frame, "dropped_hits": self.log.dropped, "dropped_frames": recording_dropped})
        finally:
            self.file.close()

    def _line(self, data: dict) -> None:
        self.file.write(json.dumps(data, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Hit:
    frame: int
    pad: int
    on: bool
    played: int = 0
    gains: tuple[float, float] = (1.0, 1.0)
    decay_frames: int = 0
    recipe: Recipe | None = None


@dataclass(frozen=True)
class Take:
    """A hit log read back."""

    sample_rate: int
    blocksize: int
    mixer_blocksize: int
    pad_names: list[str]
    mixes: list[PadMix]    # unity gain and no spread: each hit carries the gain and velocity it played at
    hits: list[Hit]
    end: int | None        # the take's last sample, if the log was closed


def read_take(path: Path) -> Take:
    """A hit log, checked line by line: a problem is an InputError naming file:line."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(path, "is not a noisepad hit log (not text)") from None
    records = [_record(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not records or records[0][1].get("format") != FORMAT:
        raise InputError(path, f"is not a noisepad hit log (its first line should say format '{FORMAT}')")
    (_, header), events = records[0], records[1:]
    try:
        names = [str(pad["name"]) for pad in header["pads"]]
        mixes = [PadMix(1.0, 0.0, pad["velocity_curve"], int(pad["choke"]), bool(pad["release_on_note_off"]))
                 for pad in header["pads"]]
        rates = int(header["sample_rate"]), int(header["blocksize"]), int(header["mixer_blocksize"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}:1", f"header is incomplete ({error})") from None
    hits, end = [], None
    for number, event in events:
        if "end" in event:
            end = int(event["end"])
            continue
        hit = _hit(f"{path}:{number}", event, names)
        if hits and hit.frame // rates[1] < hits[-1].frame // rates[1]:   # in a block, any order
            raise InputError(f"{path}:{number}", f"frame {hit.frame} is in a block before the hit above it")
        hits.append(hit)
    return Take(*rates, names, mixes, hits, end)


def _record(path: Path, number: int, line: str) -> tuple[int, dict]:
    try:
        data = json.loads(line)
    except ValueError as error:
        raise InputError(f"{path}:{number}", f"is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}:{number}", "is not a JSON object")
    return number, data


def _hit(where: str, event: dict, names: list[str]) -> Hit:
    try:
        frame, name = int(event["frame"]), event["pad"]
        if name not in names:
            raise InputError(where, f"pad '{name}' is not in the log's header")
        if frame < 0:
            raise InputError(where, f"frame {frame} is before the take began")
        if event.get("off"):
            return Hit(frame, names.index(name), on=False)
        played, gains = int(event["played"]), tuple(float(g) for g in event["gain"])
        decay = int(event.get("decay_frames", 0))
        if not 1 <= played <= 127 or len(gains) != 2 or decay < 0:
            raise InputError(where, f"velocity {played}, gain {list(gains)} or decay {decay} out of range")
        return Hit(frame, names.index(name), True, played, gains, decay, Recipe.from_dict(event["recipe"], where))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(where, f"is not a hit ({type(error).__name__}: {error})") from None


def find_hit(take: Take, where: Path, at: float | None = None, pad: str | None = None,
             number: int | None = None) -> Hit:
    """The note-on sounding at `at` seconds (the last to start at or before it), or `pad`'s
    `number`th; only `pad`'s hits when it is given."""
    if pad is not None and pad not in take.pad_names:
        raise InputError(where, f"has no pad '{pad}' (pads: {', '.join(take.pad_names)})")
    hits = [h for h in take.hits if h.on and (pad is None or take.pad_names[h.pad] == pad)]
    if at is not None:
        started = [h for h in hits if h.frame <= round(at * take.sample_rate)]
        if not started:
            raise InputError(where, f"no hit{' of ' + pad if pad else ''} starts at or before {at} s")
        return started[-1]
    if pad is None:
        raise InputError(None, "--hit needs --pad")
    if not 1 <= number <= len(hits):
        raise InputError(where, f"{pad} has {len(hits)} hits, so there is no hit {number}")
    return hits[number - 1]
