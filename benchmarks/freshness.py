"""How many hits are fresh: the share of hits that play a one-shot nobody heard before, by hit rate.

    python -m benchmarks.freshness                       # default kit, 1-16 hits/s, 60 s each
    python -m benchmarks.freshness --preset P.yaml --seconds 120 --rates 2 4

Each rate is a first launch of `noisepad play` (an empty cache, so the pools hold only the
shipped starter one-shots, already played) as a JACK client on a private dummy server, with
its generator at the priority play gives it. Once the generator delivers (play's status line,
every 10 s, counts a fresh one-shot), a JACK MIDI client sends notes at the rate for
`--seconds`, drawn from the pads the demo groove plays, in its proportions (hats, snare and
kick most). From play's closing line: fresh hits / hits, and hits per fresh one-shot (how often
a new one-shot is heard, on average, before the next one replaces it). Then the time until
every pad sounds: first launch, and again with the cache that launch left (warm).
Prints Markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.realtime import RATE, _start_play, _stop_play, _time_to_ready, _wait_for

DEFAULT_PRESET = Path(__file__).resolve().parent.parent / "presets" / "default.yaml"
# The demo groove's notes (presets/groove.mid) and how often each occurs in it.
GROOVE_NOTES = {42: 25, 38: 16, 36: 11, 49: 2, 50: 2, 45: 2, 41: 2, 46: 1, 44: 1}


def fresh_share(server, preset: Path, folder: Path, rate: float, seconds: float) -> dict:
    """Play `seconds` of notes at `rate` hits/s into a first launch; play's closing counts."""
    from tests.jacktest import JackRecorder

    folder.mkdir()
    sender = JackRecorder(server, channels=0, name="keys")
    play = _start_play(server, preset, folder, "jack")
    try:
        _wait_for(folder / "play.log", "every pad ready", play, timeout=600)
        _wait_for_first_fresh(folder / "play.log", play)
        server.wait_for_port("noisepad:midi_in")
        sender.connect_midi("noisepad:midi_in")
        sender.schedule_midi(_notes(sender.frame_time + RATE // 2, rate, seconds), timeout=seconds + 60)
        server.settle()   # a few cycles more: the last note has reached play
    finally:
        sender.close()
        summary = _stop_play(play, folder / "play.log")
    line = next(l for l in summary.splitlines() if "stopped" in l)
    hits, fresh = (int(n) for n in re.search(r"hits (\d+), fresh (\d+)", line).groups())
    generated = int(re.search(r"generated (\d+)", line).group(1))
    rates = re.findall(r"([\d.]+) shots/s", summary)   # the generator's own rate, from the status lines
    return dict(hits=hits, fresh=fresh, generated=generated, per_second=float(rates[-1]) if rates else float("nan"))


def _wait_for_first_fresh(log: Path, play) -> None:
    """Until play's status line counts a fresh one-shot: the generator has loaded and delivers."""
    while not re.search(r"fresh [1-9]\d*/", log.read_text()):
        if play.poll() is not None:
            raise RuntimeError(f"noisepad play ended:\n{log.read_text()}")
        time.sleep(0.2)


def _notes(start: int, rate: float, seconds: float) -> list[tuple[int, list[int]]]:
    rng = np.random.default_rng(int(rate * 100))
    notes = np.array(list(GROOVE_NOTES))
    weights = np.array(list(GROOVE_NOTES.values()), float)
    count = int(rate * seconds)
    chosen = rng.choice(notes, size=count, p=weights / weights.sum())
    velocities = rng.integers(70, 128, size=count)
    return [(start + int(i * RATE / rate), [0x99, int(note), int(velocity)])
            for i, (note, velocity) in enumerate(zip(chosen, velocities))]


def table(preset: Path, rates: list[float], seconds: float) -> str:
    from tests.jacktest import jack_server

    rows = [f"| {Path(preset).name}, {seconds:g} s per rate | hits | fresh hits | fresh share | hits per fresh one-shot "
            "| one-shots made in the launch | generator one-shots/s |", "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as folder, jack_server(rate=RATE, period=128) as server:
        folder = Path(folder)
        for rate in rates:
            r = fresh_share(server, preset, folder / f"rate{rate:g}", rate, seconds)
            per_fresh = f"{r['hits'] / r['fresh']:.2f}" if r["fresh"] else "-"
            rows.append(f"| {rate:g} hits/s | {r['hits']} | {r['fresh']} | {r['fresh'] / max(r['hits'], 1):.0%} "
                        f"| {per_fresh} | {r['generated']} | {r['per_second']:.2f} |")
        first = _time_to_ready(server, preset, folder / "first")
        warm = _time_to_ready(server, preset, folder / "first")   # again, with the cache the first left
    rows += ["", "| launch to every pad sounding | seconds |", "|---|---|",
             f"| first launch (empty cache, starter pool) | {first:.2f} |", f"| warm cache | {warm:.2f} |"]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", type=Path, default=DEFAULT_PRESET)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rates", type=float, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    print(f"Machine: {platform.machine()} {platform.processor()}, Python {platform.python_version()}\n")
    print(table(args.preset, args.rates, args.seconds))


if __name__ == "__main__":
    main()
