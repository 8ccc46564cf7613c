"""Preset loading and validation: every problem names the file, the line and the key."""

import textwrap

import pytest

from engine.errors import InputError
from instrument.preset import load_preset
from instrument.run_setup import setup_run

GOOD = """\
name: Test kit
models:
  kit: {path: kit.safetensors}
  plain: {path: plain.safetensors}
pads:
  kick: {notes: [35, 36], model: kit, class: kick, pool: 6, steps: 8, gain_db: -3}
  hat:
    notes: 42
    model: kit
    class: hihat_closed
    choke: hats
    pan: 0.25
    tune: -2
    velocity_curve: soft
  open_hat: {notes: [46], model: kit, class: hihat_closed, choke: hats, decay: 0.4, release_on_note_off: true}
  thing: {notes: [60], model: plain, variation: {source: hit.wav, strength: 0.3}}
midi: {input: null, channel: 10}
audio: {blocksize: 256, samplerate: 48000}
"""


@pytest.fixture
def preset_dir(tmp_path, kit_model_file, plain_model_file):
    (tmp_path / "kit.safetensors").symlink_to(kit_model_file)
    (tmp_path / "plain.safetensors").symlink_to(plain_model_file)
    (tmp_path / "hit.wav").write_bytes(b"audio is read later, by the engine")
    return tmp_path


def write(folder, text, name="p.yaml"):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_preset_loads_with_paths_relative_to_it(preset_dir):
    preset = load_preset(write(preset_dir, GOOD))
    assert preset.name == "Test kit" and [p.name for p in preset.pads] == ["kick", "hat", "open_hat", "thing"]
    assert preset.note_to_pad[36] == 0 and preset.note_to_pad[42] == 1 and preset.note_to_pad[37] == -1
    kick, hat, open_hat, thing = preset.pads
    assert kick.spec.model == (preset_dir / "kit.safetensors").resolve()
    assert kick.spec.pool_size == 6 and kick.spec.settings.steps == 8 and kick.gain_db == -3
    assert hat.spec.tune == -2 and hat.pan == 0.25 and hat.velocity_curve == "soft" and hat.choke == "hats"
    assert open_hat.spec.decay == 0.4 and open_hat.release_on_note_off
    assert thing.spec.source == (preset_dir / "hit.wav").resolve() and thing.spec.settings.strength == 0.3
    assert preset.midi_channel == 10 and preset.blocksize == 256
    assert kick.spec.sample_rate == 48000
    assert setup_run(load_preset(write(preset_dir, GOOD)), 44100).specs[0].sample_rate == 44100


@pytest.mark.parametrize("change, line, message", [
    (("pool: 6,", "pool: 6, volume: 3,"), 6, "pads.kick.volume: unknown key"),
    (("notes: [35, 36]", "notes: [35, 128]"), 6, "pads.kick.notes: must be a whole number from 0 to 127, not 128"),
    (("notes: [46]", "notes: [42]"), 15, "pads.open_hat.notes: note 42 is already mapped to pad 'hat'"),
    (("plain.safetensors", "missing.safetensors"), 4, "models.plain.path: file not found"),
    (("pan: 0.25", "pan: left"), 12, "pads.hat.pan: must be a number from -1 to 1, not 'left'"),
    (("class: kick,", "class: cowbell,"), 6, "pads.kick.class: must be a name (one of kick, snare, hihat_closed), not 'cowbell'"),
    (("model: plain,", "model: plain, class: kick,"), 16, "pads.thing.class: the model is unconditional"),
    (("steps: 8", "steps: many"), 6, "pads.kick.steps: must be a whole number from 1 to 1000"),
    (("channel: 10", "channel: 17"), 17, "midi.channel: must be a whole number from 1 to 16"),
    (("release_on_note_off: true", "release_on_note_off: maybe"), 15, "must be true or false"),
    (("strength: 0.3", "strength: 2"), 16, "pads.thing.variation.strength: must be a number from 0 to 1"),
    (("velocity_curve: soft", "velocity_curve: loud"), 14, "pads.hat.velocity_curve: must be one of"),
])
def test_each_problem_names_file_line_and_key(preset_dir, change, line, message):
    path = write(preset_dir, GOOD.replace(*change))
    with pytest.raises(InputError) as error:
        load_preset(path)
    assert str(error.value).startswith(f"{path}:{line}: ")
    assert message in str(error.value)


def test_corrupt_model_is_reported_against_the_preset(preset_dir):
    (preset_dir / "bad.safetensors").write_bytes(b"\x00" * 64)
    path = write(preset_dir, GOOD.replace("plain.safetensors", "bad.safetensors"))
    with pytest.raises(InputError, match=r"p.yaml:4: models.plain.path: not a readable safetensors"):
        load_preset(path)


@pytest.mark.parametrize("text, message", [
    ("", "file is empty"),
    ("pads: [\n", "not valid YAML"),
    ("name: x\n", "pads: missing"),
    ("pads: {}\n", "at least one pad"),
])
def test_broken_files(preset_dir, text, message):
    with pytest.raises(InputError, match=message):
        load_preset(write(preset_dir, text))


def test_missing_preset_file(tmp_path):
    with pytest.raises(InputError, match="preset not found"):
        load_preset(tmp_path / "none.yaml")
