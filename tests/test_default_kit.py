"""The shipped kit: presets/default.yaml and gm.yaml on presets/models/default.safetensors, and
`noisepad demo`, which a new user runs first. Uses the real shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from engine.sample_batch import Item, generate
from engine.modelconfig import read_config
from engine.modelfile import load_model
from engine.settings import Settings
from noisepad_cli import main
from instrument.demo import GROOVE, play_file
from instrument.midifile import read_events
from instrument.preset import DEFAULT_PRESET, load_preset

GM_PRESET = DEFAULT_PRESET.with_name("gm.yaml")
MODEL = DEFAULT_PRESET.parent / "models" / "default.safetensors"


def class_of(preset, note: int) -> str:
    return preset.pads[preset.note_to_pad[note]].spec.class_name


def test_the_shipped_model_fits_in_16_mib_and_knows_the_kit_classes():
    assert MODEL.stat().st_size <= 16 * 2**20
    config = read_config(MODEL)
    assert set(config.classes) == {"kick", "snare", "rim", "clap", "hihat_closed", "hihat_open", "tom", "crash", "ride", "perc"}


@pytest.mark.parametrize("path", [DEFAULT_PRESET, GM_PRESET], ids=["default", "gm"])
def test_presets_map_the_general_midi_drum_notes(path):
    preset = load_preset(path)
    expected = {35: "kick", 36: "kick", 37: "rim", 38: "snare", 39: "clap", 40: "snare", 42: "hihat_closed",
                44: "hihat_closed", 46: "hihat_open", 49: "crash", 51: "ride", 57: "crash", 59: "ride"}
    assert {note: class_of(preset, note) for note in expected} == expected
    assert {class_of(preset, n) for n in (41, 43, 45, 47, 48, 50)} == {"tom"}
    tunes = [preset.pads[preset.note_to_pad[n]].spec.tune for n in (41, 43, 45, 47, 48, 50)]
    assert tunes == sorted(tunes) and tunes[0] < tunes[-1], "toms rise in pitch from floor to high"
    hats = {preset.pads[preset.note_to_pad[n]].choke for n in (42, 44, 46)}
    assert len(hats) == 1 and None not in hats, "closed, pedal and open hat choke each other"
    classes = set(read_config(MODEL).classes)
    assert {pad.spec.class_name for pad in preset.pads} <= classes


def test_gm_preset_maps_every_general_midi_percussion_note():
    preset = load_preset(GM_PRESET)
    assert [n for n in range(35, 82) if preset.note_to_pad[n] < 0] == []


def test_the_shipped_model_makes_kicks_lower_than_hats():
    model = load_model(MODEL)
    settings = Settings(steps=8)
    kicks = generate(model, [Item(seed=s, class_index=model.class_index("kick")) for s in (1, 2)], settings)
    hats = generate(model, [Item(seed=s, class_index=model.class_index("hihat_closed")) for s in (1, 2)], settings)
    assert all(a is not None for a in kicks + hats)
    centroid = lambda audio: spectral_centroid(audio.mean(axis=0), model.config.sample_rate)  # noqa: E731
    assert max(map(centroid, kicks)) < min(map(centroid, hats))


def spectral_centroid(audio: np.ndarray, rate: int) -> float:
    power = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(audio.size, 1 / rate)
    return float((power * frequencies).sum() / power.sum())


def test_demo_renders_the_groove(tmp_path, capsys):
    out = tmp_path / "demo.wav"
    assert main(["demo", "--no-play", "-o", str(out), "--seed", "7", "--device", "cpu"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    audio, rate = soundfile.read(out)
    onsets = sorted({round(e.time, 4) for e in read_events(GROOVE) if e.is_note_on})
    assert rate == 44100 and onsets[-1] < audio.shape[0] / rate < onsets[-1] + 10
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    rising = [rms(audio, rate, t, t + 0.02) > rms(audio, rate, t - 0.02, t) for t in onsets if t >= 0.02]
    assert np.mean(rising) > 0.9, f"only {np.mean(rising):.0%} of the groove's notes start a sound"


def rms(audio: np.ndarray, rate: int, start: float, end: float) -> float:
    return float(np.sqrt(np.mean(audio[int(start * rate):int(end * rate)] ** 2)))


def test_without_an_audio_output_the_demo_says_where_the_file_is(tmp_path, capsys):
    sounddevice = pytest.importorskip("sounddevice")
    try:
        sounddevice.query_devices(kind="output")
        pytest.skip("this machine has an audio output")
    except sounddevice.PortAudioError:
        pass
    out = tmp_path / "demo.wav"
    soundfile.write(out, np.zeros((441, 2)), 44100)
    play_file(out)
    assert capsys.readouterr().out == f"not playing it: no audio output found; open {out} in any player\n"


@pytest.mark.parametrize("rate", [44100, 48000])
def test_every_pad_of_the_default_kit_sounds_from_the_starter_before_anything_is_generated(rate):
    from engine.starter import load_starters
    from instrument.run_setup import setup_run

    setup = setup_run(load_preset(DEFAULT_PRESET), rate)
    specs = list(setup.specs)
    with setup.create_pools() as pools:
        loaded = load_starters(pools, specs)
        assert all(count >= 2 for count in loaded), loaded
        for p in range(len(specs)):
            slot = pools.take(p)
            assert slot >= 0 and np.abs(pools.audio[p][slot]).max() > 0.1
