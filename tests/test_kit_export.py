"""`noisepad kit`: kits for other samplers, opened by real consumers: sfzlint (an SFZ parser and
validator from the package registries) and Hydrogen's own h2cli, which checks the drumkit,
installs it and renders a song with it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from tests.tiny_models import write_kit_preset

needs_h2cli = pytest.mark.skipif(shutil.which("h2cli") is None, reason="Hydrogen's h2cli is not installed")
needs_sfzlint = pytest.mark.skipif(shutil.which("sfzlint") is None, reason="sfzlint is not installed")
RATE = 44100


@pytest.fixture
def preset(tmp_path, kit_model_file):
    return write_kit_preset(tmp_path / "kit.yaml", kit_model_file, {
        "kick": "notes: [36], class: kick, steps: 2, pool: 3, humanize: {pitch: 30}",
        "snare": "notes: [38, 40], class: snare, steps: 2, pool: 3, gain_db: -3, pan: 0.3",
        "hat": "notes: [42], class: hihat_closed, steps: 2, pool: 3, choke: hats, velocity_curve: soft",
        "open": "notes: [46], class: hihat_closed, steps: 2, pool: 3, choke: hats, tune: -2",
    })


def noisepad(*args, env=None):
    result = subprocess.run([sys.executable, "-m", "noisepad_cli", *map(str, args)], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result


@needs_sfzlint
def test_an_sfz_kit_passes_sfzlint_and_plays_round_robin_with_chokes(preset, tmp_path):
    noisepad("kit", "--preset", preset, "-n", 3, "-o", tmp_path / "sfz", "--device", "cpu")
    sfz = tmp_path / "sfz" / "kit.sfz"
    lint = subprocess.run(["sfzlint", "--no-pickle", str(sfz)], capture_output=True, text=True)
    assert lint.returncode == 0 and lint.stdout == "" and lint.stderr == ""   # no unknown opcode, range or missing file

    groups = [line for line in sfz.read_text().splitlines() if line.startswith("<group>")]
    regions = [line for line in sfz.read_text().splitlines() if line.startswith("<region>")]
    assert [re.search(r"key=(\d+)", g).group(1) for g in groups] == ["36", "38", "40", "42", "46"]
    assert len(regions) == 15 and [re.search(r"seq_position=(\d)", r).group(1) for r in regions[:3]] == ["1", "2", "3"]
    assert "volume=-3 pan=30" in groups[1] and "group=" not in groups[1]
    assert all("group=1 off_by=1" in g for g in groups[3:])      # the hats choke each other
    assert all("transpose=-2 tune=0" in r for r in regions[12:])  # open: tuned down 2 semitones
    assert len({re.search(r"tune=(-?\d+)", r).group(1) for r in regions[:3]}) > 1   # kick: humanized pitch

    shutil.move(sfz.parent / "samples" / re.search(r"sample=(\S+)", regions[0]).group(1), tmp_path)
    lint = subprocess.run(["sfzlint", "--no-pickle", str(sfz)], capture_output=True, text=True)
    assert "file not found" in lint.stdout   # the consumer does check what the kit points at


def test_a_kit_sample_is_remade_from_its_recipe(preset, tmp_path):
    noisepad("kit", "--preset", preset, "-n", 2, "-o", tmp_path / "sfz", "--device", "cpu")
    wav = sorted((tmp_path / "sfz" / "samples").glob("snare_*.wav"))[1]
    noisepad("generate", "--remake", wav.with_suffix(".json"), "-o", tmp_path / "again")
    kit, _ = soundfile.read(str(wav), dtype="float32")
    remade, _ = soundfile.read(str(tmp_path / "again" / wav.name), dtype="float32")
    soundfile.write(str(tmp_path / "as_kit.wav"), remade, RATE, subtype="PCM_24")
    assert np.array_equal(soundfile.read(str(tmp_path / "as_kit.wav"), dtype="float32")[0], kit)


@needs_h2cli
def test_a_hydrogen_kit_is_valid_installs_and_renders_a_song_in_h2cli(preset, tmp_path):
    noisepad("kit", "--preset", preset, "-n", 3, "-o", tmp_path / "h2", "--format", "hydrogen", "--device", "cpu")
    packed = tmp_path / "h2" / "kit.h2drumkit"
    env = dict(os.environ, HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen", JACK_NO_START_SERVER="1")
    (tmp_path / "home").mkdir()
    check = subprocess.run(["h2cli", "-c", str(packed)], capture_output=True, text=True, env=env, timeout=120)
    assert f"Provided drumkit [{packed}] is valid" in check.stdout + check.stderr
    subprocess.run(["h2cli", "-i", str(packed)], capture_output=True, env=env, timeout=120, check=True)
    installed = tmp_path / "home" / ".hydrogen" / "data" / "drumkits" / "kit"
    assert (installed / "drumkit.xml").is_file() and len(list(installed.glob("*.wav"))) == 12

    song = tmp_path / "song.h2song"
    song.write_text(hydrogen_song(installed / "drumkit.xml", [(0, 0), (48, 2), (96, 3), (144, 1)]))
    subprocess.run(["h2cli", "-s", str(song), "-o", str(tmp_path / "song.wav")], capture_output=True, env=env,
                   timeout=120, check=True)
    audio, rate = soundfile.read(str(tmp_path / "song.wav"), dtype="float32")
    assert rate == RATE
    # every note is one of its pad's one-shots, as made: a correlation of 1 with one of them
    for tick, instrument in [(48, 2), (96, 3), (144, 1)]:
        pad = ["kick", "snare", "hat", "open"][instrument]
        start = tick * RATE // 96   # 120 bpm: 48 ticks to a quarter note of 0.5 s
        heard = audio[max(0, start - 256): start + 2048, 0]
        if pad == "open":
            assert np.abs(heard).max() > 0.1   # tuned by Hydrogen: not the same samples
            continue
        assert max(best_match(heard, wav) for wav in installed.glob(f"{pad}_*.wav")) > 0.999


def best_match(heard: np.ndarray, wav) -> float:
    shot = soundfile.read(str(wav), dtype="float32")[0][:, 0]
    shot = shot[: len(heard) - 1]
    correlation = np.correlate(heard, shot, "valid")
    lag = int(np.argmax(np.abs(correlation)))
    return float(abs(correlation[lag]) / (np.linalg.norm(heard[lag:lag + len(shot)]) * np.linalg.norm(shot)))


def hydrogen_song(drumkit_xml, notes: list[tuple[int, int]]) -> str:
    """A one-bar Hydrogen song at 120 bpm playing (tick, instrument) notes with the installed
    kit's instruments."""
    kit = drumkit_xml.read_text()
    instruments = re.search(r"<instrumentList>(.*)</instrumentList>", kit, re.S).group(1)
    instruments = re.sub(r"(<name>[^<]*</name>)", r"\1<drumkit>kit</drumkit><drumkitLookup>1</drumkitLookup>",
                         instruments)
    note = ("<note><position>{}</position><leadlag>0</leadlag><velocity>1</velocity><pan>0</pan><pitch>0</pitch>"
            "<probability>1</probability><key>C0</key><length>-1</length><instrument>{}</instrument>"
            "<note_off>false</note_off></note>")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<song><version>1.2.0</version><bpm>120</bpm><volume>1</volume><name>test</name><mode>song</mode>
<humanize_time>0</humanize_time><humanize_velocity>0</humanize_velocity><swing_factor>0</swing_factor>
<componentList><drumkitComponent><id>0</id><name>Main</name><volume>1</volume></drumkitComponent></componentList>
<instrumentList>{instruments}</instrumentList>
<patternList><pattern><name>p</name><size>192</size><denominator>4</denominator>
<noteList>{"".join(note.format(tick, i) for tick, i in notes)}</noteList></pattern></patternList>
<patternSequence><group><patternID>p</patternID></group></patternSequence></song>
"""


def test_a_kit_is_never_written_over_files_already_there(preset, tmp_path):
    mine = tmp_path / "sfz" / "samples" / "my_snare.wav"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own sample")
    result = subprocess.run([sys.executable, "-m", "noisepad_cli", "kit", "--preset", str(preset), "-n", "2",
                             "-o", str(tmp_path / "sfz"), "--device", "cpu"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "already holds files" in result.stderr and str(mine.parent) in result.stderr
    assert mine.read_bytes() == b"my own sample" and not (tmp_path / "sfz" / "kit.sfz").exists()
