"""`noisepad render`: a MIDI file through the live mixer, offline, reproducible bit for bit."""

import subprocess
import sys

import mido
import numpy as np
import pytest
import soundfile

from tests.tiny_models import write_kit_preset


def noisepad(*args):
    return subprocess.run([sys.executable, "-m", "noisepad_cli", *map(str, args)], capture_output=True, text=True)


def write_midi(path, notes, tempo=500000):
    """notes: (beat, note, velocity, channel 1-16); each note lasts a 16th."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo))
    messages = []
    for beat, note, velocity, channel in notes:
        messages.append((int(beat * 480), mido.Message("note_on", note=note, velocity=velocity, channel=channel - 1)))
        messages.append((int(beat * 480) + 120, mido.Message("note_off", note=note, velocity=0, channel=channel - 1)))
    now = 0
    for tick, message in sorted(messages, key=lambda m: m[0]):
        track.append(message.copy(time=tick - now))
        now = tick
    midi.save(str(path))
    return path


@pytest.fixture
def kit_preset(tmp_path, kit_model_file):
    return write_kit_preset(tmp_path / "kit.yaml", kit_model_file, {
        "kick": "notes: [36], class: kick, steps: 2, pool: 4",
        "snare": "notes: [38], class: snare, steps: 2, pool: 4",
        "hat": "notes: [42], class: hihat_closed, steps: 2, pool: 4, choke: hats, gain_db: -6",
    })


GROOVE = [(0, 36, 110, 10), (0.5, 42, 80, 10), (1, 38, 100, 10), (1.5, 42, 70, 10), (2, 36, 120, 10), (2.25, 36, 60, 10)]


def test_render_places_every_note_at_its_sample_and_is_reproducible(tmp_path, kit_preset):
    midi = write_midi(tmp_path / "groove.mid", GROOVE)
    first, second, other = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    for out, seed in ((first, 3), (second, 3), (other, 4)):
        result = noisepad("render", midi, "-o", out, "--preset", kit_preset, "--seed", seed)
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()
    audio, rate = soundfile.read(str(first))
    assert rate == 44100 and audio.shape[1] == 2
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    # tiny one-shots last 1024 frames, less than the gap between notes: silence up to each
    # note's exact sample (0.5 s per beat at 120 bpm), sound right after it
    for beat, *_ in GROOVE:
        position = int(round(beat * 0.5 * rate))
        assert np.all(audio[position - 64:position + 1] == 0)
        assert np.abs(audio[position:position + 200]).max() > 1e-3


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable MIDI file"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x10\x00\x90\x24", "not a readable MIDI file"),
])
def test_corrupt_or_empty_midi_file(tmp_path, kit_preset, content, message):
    midi = tmp_path / "bad.mid"
    midi.write_bytes(content)
    result = noisepad("render", midi, "-o", tmp_path / "out.wav", "--preset", kit_preset)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.wav").exists()


def test_midi_file_with_notes_no_pad_maps(tmp_path, kit_preset):
    midi = write_midi(tmp_path / "toms.mid", [(0, 36, 100, 10), (1, 45, 100, 10), (2, 48, 100, 10)])
    result = noisepad("render", midi, "-o", tmp_path / "out.wav", "--preset", kit_preset)
    assert result.returncode == 2
    assert "notes 45, 48 are mapped to no pad of kit.yaml" in result.stderr
    assert not (tmp_path / "out.wav").exists()


def test_midi_file_without_notes(tmp_path, kit_preset):
    midi = write_midi(tmp_path / "silent.mid", [])
    result = noisepad("render", midi, "-o", tmp_path / "out.wav", "--preset", kit_preset)
    assert result.returncode == 2 and "MIDI file has no notes" in result.stderr


@pytest.mark.parametrize("output, message", [
    ("missing/out.wav", "output folder does not exist"),
    ("a-folder", "is a folder; name a file to write"),
])
def test_an_output_that_cannot_be_written_is_refused_before_rendering(tmp_path, kit_preset, output, message):
    (tmp_path / "a-folder").mkdir()
    midi = write_midi(tmp_path / "one.mid", [(0, 36, 100, 10)])
    result = noisepad("render", midi, "-o", tmp_path / output, "--preset", kit_preset)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("**/*.tmp")) and not list((tmp_path / "a-folder").iterdir())


def shared_memory_segments() -> set[str]:
    from pathlib import Path

    return {path.name for path in Path("/dev/shm").glob("psm_*")}


@pytest.mark.parametrize("signal_number", [2, 15])   # Ctrl-C, SIGTERM
def test_an_interrupted_render_leaves_no_file_and_no_shared_memory(tmp_path, kit_model_file, signal_number):
    preset = write_kit_preset(tmp_path / "slow.yaml", kit_model_file, {
        "kick": "notes: [36], class: kick, steps: 40, pool: 64"})
    midi = write_midi(tmp_path / "many.mid", [(i / 4, 36, 100, 10) for i in range(64)])
    before = shared_memory_segments()
    process = subprocess.Popen([sys.executable, "-m", "noisepad_cli", "render", midi, "-o", tmp_path / "out.wav",
                                "--preset", preset, "--device", "cpu"], stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()   # the first progress line: generation has begun
    process.send_signal(signal_number)
    _, rest = process.communicate(timeout=60)
    assert first.startswith("one-shots made: ") and "of 64 one-shots" in first, first + rest
    assert process.returncode == 130, first + rest
    assert rest.strip().splitlines()[-1] == "noisepad render: interrupted", rest
    assert "Traceback" not in rest and "resource_tracker" not in rest and "leaked" not in rest, rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.mid", "slow.yaml"]
    assert shared_memory_segments() <= before


def test_render_shows_what_it_made_of_what_it_needs(tmp_path, kit_preset):
    midi = write_midi(tmp_path / "beat.mid", [(0, 36, 100, 10), (1, 38, 100, 10), (2, 36, 90, 10)])
    result = noisepad("render", midi, "-o", tmp_path / "out.wav", "--preset", kit_preset, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    # two kicks and a snare, and one for the hat the file never plays
    assert lines[0].startswith("one-shots made: ") and lines[-2] == "one-shots made: 4 of 4 one-shots"
    assert lines[-1] == "rendering beat.mid ..."


def test_render_turns_the_presets_knobs_from_the_files_ccs(tmp_path, kit_model_file):
    preset = write_kit_preset(tmp_path / "kit.yaml", kit_model_file, {
        "kick": "notes: [36], class: kick, steps: 2, pool: 1",   # one one-shot: every hit plays it
    })
    preset.write_text(preset.read_text() + "controls:\n  - {cc: 7, knob: gain_db, pad: kick, range: [-24, 0]}\n"
                      "  - {note: 60, button: keep, pad: kick}\n")
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.extend([mido.Message("note_on", note=36, velocity=100, channel=9, time=0),
                  mido.Message("control_change", control=7, value=0, channel=9, time=240),
                  mido.Message("note_on", note=60, velocity=100, channel=9, time=0),   # a button: plays no pad
                  mido.Message("note_on", note=36, velocity=100, channel=9, time=240)])
    midi.save(str(tmp_path / "knob.mid"))
    result = noisepad("render", tmp_path / "knob.mid", "-o", tmp_path / "out.wav", "--preset", preset)
    assert result.returncode == 0, result.stderr
    audio, rate = soundfile.read(str(tmp_path / "out.wav"))
    beat = rate // 2   # 120 bpm
    first, second = (np.abs(audio[at:at + 2000]).max() for at in (0, beat))
    assert 20 * np.log10(second / first) == pytest.approx(-24, abs=0.01)
