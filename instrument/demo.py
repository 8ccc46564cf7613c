"""`noisepad demo`: the bundled groove rendered with the default kit, written and played."""

from __future__ import annotations

import random
from pathlib import Path

from engine.errors import error_line
from engine.settings import MAX_SEED
from instrument.preset import DEFAULT_PRESET, load_preset
from instrument.render import render

GROOVE = DEFAULT_PRESET.parent / "groove.mid"
ONE_SHOTS_PER_PAD = 4   # enough to hear that no two hits are alike, few enough to render quickly on a CPU


def demo(output: Path, play: bool = True, seed: int | None = None, device: str = "cpu") -> None:
    seed = random.randint(0, MAX_SEED) if seed is None else seed
    preset = load_preset(DEFAULT_PRESET)
    print(f"diffusing the default kit's one-shots on {device} and rendering {GROOVE.name} (seed {seed}) ...", flush=True)
    seconds = render(GROOVE, output, preset, seed=seed, device=device, max_per_pad=ONE_SHOTS_PER_PAD)
    print(f"wrote {output} ({seconds:.1f} s)")
    if play:
        play_file(output)


def play_file(path: Path) -> None:
    """Play a WAV on the default output, or say why not: a machine without audio is no error."""
    import soundfile

    try:
        import sounddevice
    except OSError as error:   # the PortAudio library is missing
        print(f"not playing it: {error_line(error)}; open {path} in any player")
        return
    try:
        sounddevice.query_devices(kind="output")
    except (sounddevice.PortAudioError, ValueError):
        print(f"not playing it: no audio output found; open {path} in any player")
        return
    audio, rate = soundfile.read(str(path), dtype="float32")
    print("playing ...", flush=True)
    try:
        sounddevice.play(audio, rate)
        sounddevice.wait()
    except sounddevice.PortAudioError as error:
        print(f"could not play it ({error_line(error)}); open {path} in any player")

