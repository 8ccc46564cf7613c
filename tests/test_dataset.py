"""Datasets from real audio files and real (tiny) Hydrogen drumkits, through `noisepad dataset`."""

from __future__ import annotations

import json

import numpy as np
import pyloudnorm
import pytest
import soundfile

from noisepad_cli import main
from tests.drum_files import hit, write_class_folders, write_hit, write_hydrogen_kit
from tests.soundfont_files import Preset, Zone, noise_burst, tone, write_soundfont
from training.classes import class_for_name
from training.dataset import read_manifest


def build(capsys, *args) -> tuple[int, str, str]:
    code = main(["dataset", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_folders_of_any_format_become_fixed_length_stereo_one_shots(tmp_path, capsys):
    source = tmp_path / "mine"
    write_hit(source / "kick" / "a.wav", "kick", rate=22050)
    write_hit(source / "kick" / "b.flac", "kick", rate=48000, channels=2, seed=1)
    write_hit(source / "snare" / "c.aiff", "snare", rate=44100, subtype="PCM_16")
    write_hit(source / "snare" / "d.ogg", "snare", rate=32000, seed=2)
    write_hit(source / "Hi Hat" / "e.wav", "hat", silence=0.2)

    code, out, _ = build(capsys, source, "-o", tmp_path / "data")

    assert code == 0
    manifest = read_manifest(tmp_path / "data")
    assert manifest.classes == ["kick", "snare", "hi_hat"]
    assert sorted(i["class"] for i in manifest.items) == ["hi_hat", "kick", "kick", "snare", "snare"]
    for item in manifest.items:
        audio, rate = soundfile.read(tmp_path / "data" / item["path"], always_2d=True)
        assert rate == 44100 and audio.shape == (32768, 2)
        assert np.abs(audio[:32]).max() > 0.01, f"{item['source']}: leading silence not trimmed"
    assert "kick" in out and "total" in out and "wrote 5 one-shots" in out


def test_one_shots_are_loudness_normalized(tmp_path, capsys):
    source = tmp_path / "mine"
    write_hit(source / "snare" / "quiet.wav", "snare")
    soundfile.write(source / "snare" / "quieter.wav", hit("snare", seed=3) * 0.05, 44100)
    assert build(capsys, source, "-o", tmp_path / "data")[0] == 0
    meter = pyloudnorm.Meter(44100)
    loudness = [meter.integrated_loudness(soundfile.read(p)[0]) for p in sorted((tmp_path / "data" / "snare").glob("*.flac"))]
    assert loudness == pytest.approx([-20.0, -20.0], abs=0.5)


def test_unreadable_files_are_skipped_and_listed(tmp_path, capsys):
    source = write_class_folders(tmp_path / "mine", per_class=2)
    (source / "kick" / "broken.wav").write_bytes(b"RIFF\x00\x00not audio at all")
    soundfile.write(source / "kick" / "silent.wav", np.zeros((4410, 1)), 44100)

    code, out, _ = build(capsys, source, "-o", tmp_path / "data")

    assert code == 0
    skipped = {json_item["source"].rsplit("/", 1)[-1]: json_item["reason"] for json_item in read_manifest(tmp_path / "data").skipped}
    assert set(skipped) == {"broken.wav", "silent.wav"}
    assert skipped["silent.wav"] == "silent"
    assert "broken.wav" in out and "skipped 2 files" in out
    assert len(read_manifest(tmp_path / "data").items) == 6


@pytest.mark.parametrize("format", ["layered", "layers"], ids=["1.x-instrumentComponent", "0.9-layers"])
def test_hydrogen_kits_map_instrument_names_to_classes(tmp_path, capsys, format):
    kit = tmp_path / "kits" / "TestKit"
    for name, kind in (("k1.wav", "kick"), ("k2.flac", "kick"), ("s.wav", "snare"), ("oh.wav", "hat"), ("z.wav", "hat")):
        write_hit(kit / name, kind, seed=len(name))
    write_hydrogen_kit(kit, "Test Kit", {
        "Kick": ["k1.wav", "k2.flac"], "Snare Rimshot": ["s.wav"], "Hat Open": ["oh.wav"],
        "Zap": ["z.wav"], "Tom Low": ["missing.wav"],
    }, format=format, license="CC-BY 3.0")

    code, out, _ = build(capsys, tmp_path / "kits", "-o", tmp_path / "data")

    assert code == 0
    manifest = read_manifest(tmp_path / "data")
    assert sorted((i["class"], i["group"]) for i in manifest.items) == [
        ("hihat_open", "Test Kit"), ("kick", "Test Kit"), ("kick", "Test Kit"), ("snare", "Test Kit")]
    assert manifest.licenses == {"Test Kit": "CC-BY 3.0"}
    reasons = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in manifest.skipped}
    assert reasons == {"z.wav": "instrument 'Zap' is in no class", "missing.wav": "file not found"}


def test_the_oldest_drumkit_format_one_file_per_instrument_no_namespace(tmp_path, capsys):
    kit = tmp_path / "Old & Gold"
    write_hit(kit / "bd.wav", "kick")
    write_hit(kit / "ch.wav", "hat")
    write_hydrogen_kit(kit, "Old & Gold", {"Bass Drum": ["bd.wav"], "Closed HH": ["ch.wav"]}, format="flat", license=None)

    assert build(capsys, kit, "-o", tmp_path / "data")[0] == 0
    manifest = read_manifest(tmp_path / "data")
    assert sorted(i["class"] for i in manifest.items) == ["hihat_closed", "kick"]
    assert manifest.licenses == {"Old & Gold": "not stated in drumkit.xml"}


def test_a_held_out_kit_is_the_evaluation_split(tmp_path, capsys):
    for kit_name, rate in (("KitA", 44100), ("KitB", 48000)):
        kit = tmp_path / "kits" / kit_name
        write_hit(kit / "kick.wav", "kick", rate=rate)
        write_hydrogen_kit(kit, kit_name, {"Bass Drum": ["kick.wav"]})

    assert build(capsys, tmp_path / "kits", "-o", tmp_path / "data", "--hold-out", "KitB")[0] == 0
    splits = {i["group"]: i["split"] for i in read_manifest(tmp_path / "data").items}
    assert splits == {"KitA": "train", "KitB": "eval"}


@pytest.mark.parametrize("name, expected", [
    ("Kick Lite 1", "kick"), ("c3 - bass drum 1", "kick"), ("Snare Rimshot", "snare"), ("Side Stick", "rim"),
    ("Hand Clap", "clap"), ("Closed HH", "hihat_closed"), ("Pedal HH", "hihat_closed"), ("Hi Hat Opened", "hihat_open"),
    ("VariBreaks Hat 1 Op", "hihat_open"), ("Floor Tom", "tom"), ("Ride Bell", "ride"), ("Cowbell", "perc"),
    ("Crash Left", "crash"), ("Splash", "crash"), ("Zap 1", None),
])
def test_class_table(name, expected):
    assert class_for_name(name) == expected


def test_a_dataset_of_nothing_readable_is_refused_and_not_written(tmp_path, capsys):
    source = tmp_path / "mine" / "kick"
    source.mkdir(parents=True)
    (source / "broken.wav").write_bytes(b"garbage")

    code, out, err = build(capsys, tmp_path / "mine", "-o", tmp_path / "data")

    assert code == 2 and "empty dataset" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["mine"], "no staging folder left behind"


def test_it_will_not_overwrite_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    source = write_class_folders(tmp_path / "mine", per_class=1)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")

    code, _, err = build(capsys, source, "-o", tmp_path / "precious")

    assert code == 2 and "is not a dataset" in err
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_missing_source_folder(tmp_path, capsys):
    code, _, err = build(capsys, tmp_path / "nowhere", "-o", tmp_path / "data")
    assert code == 2 and "nowhere: not a folder" in err


def test_manifest_is_plain_json(tmp_path, capsys):
    build(capsys, write_class_folders(tmp_path / "mine", per_class=1), "-o", tmp_path / "data")
    data = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert data["format"] == "noisepad-dataset" and data["length"] == 32768


def tiny_font(path, copyright="CC0 test samples"):
    kick_soft, kick_hard, snare = tone(60, decay=25) * 0.3, tone(60), noise_burst()
    kit = Preset("Test Kit", 128, 0, (
        Zone((36, 36), (0, 63), kick_soft), Zone((36, 36), (64, 127), kick_hard),
        Zone((38, 38), (0, 127), snare), Zone((90, 90), (0, 127), snare),   # 90: no General MIDI drum
    ))
    effects = Preset("SFX", 128, 56, (Zone((36, 36), (0, 127), snare),))     # not laid out by General MIDI
    piano = Preset("Piano", 0, 0, (Zone((0, 127), (0, 127), tone(440)),))
    return write_soundfont(path, [kit, effects, piano], copyright)


def test_soundfont_kits_give_one_shot_per_note_and_velocity_layer(tmp_path, capsys):
    font = tiny_font(tmp_path / "tiny.sf2")

    code, out, err = build(capsys, font, "-o", tmp_path / "data")

    assert code == 0, err
    manifest = read_manifest(tmp_path / "data")
    assert sorted((i["class"], i["source"].split("kit 'Test Kit' ")[1]) for i in manifest.items) == [
        ("kick", "note 36 velocity 127"), ("kick", "note 36 velocity 63"), ("snare", "note 38 velocity 127")]
    assert {i["group"] for i in manifest.items} == {"tiny Test Kit"} and {i["origin"] for i in manifest.items} == {"tiny.sf2"}
    assert manifest.licenses == {"tiny Test Kit": "CC0 test samples"}
    for item in manifest.items:
        audio, rate = soundfile.read(tmp_path / "data" / item["path"], always_2d=True)
        assert rate == 44100 and audio.shape == (32768, 2)
        spectrum = np.abs(np.fft.rfft(audio[:8192, 0]))
        peak_hz = np.argmax(spectrum) * rate / 8192
        centroid_hz = np.sum(spectrum * np.arange(spectrum.size)) / spectrum.sum() * rate / 8192
        if item["class"] == "kick":   # FluidSynth played the font's 60 Hz sample, not something else
            assert 50 < peak_hz < 70, item["source"]
        else:
            assert centroid_hz > 2000, item["source"]
    assert "tiny.sf2" in out and not (tmp_path / "data" / ".renders").exists()


def test_a_drum_font_without_bank_128_is_all_kits(tmp_path, capsys):
    font = write_soundfont(tmp_path / "one_kit.sf2", [Preset("Four Piece", 0, 0, (Zone((42, 42), (0, 127), noise_burst()),))])
    assert build(capsys, font, "-o", tmp_path / "data")[0] == 0
    manifest = read_manifest(tmp_path / "data")
    assert [(i["class"], i["group"]) for i in manifest.items] == [("hihat_closed", "one_kit Four Piece")]
    assert manifest.licenses == {"one_kit Four Piece": "not stated in the font"}


def test_soundfonts_mix_with_drumkits_and_hold_out_by_kit(tmp_path, capsys):
    kit = write_hydrogen_kit(tmp_path / "kits" / "Rock", "Rock", {"Kick": ["k.wav"], "Snare": ["s.wav"]})
    write_hit(kit / "k.wav", "kick")
    write_hit(kit / "s.wav", "snare")
    font = tiny_font(tmp_path / "tiny.sf2")
    code, out, err = build(capsys, tmp_path / "kits", font, "-o", tmp_path / "data", "--hold-out", "tiny Test Kit")
    assert code == 0, err
    manifest = read_manifest(tmp_path / "data")
    assert {(i["origin"], i["split"]) for i in manifest.items} == {("kits", "train"), ("tiny.sf2", "eval")}
    source_rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert source_rows["tiny.sf2"][1:] == ["1", "2", "1", "3"]   # kits, kick, snare, total
    assert source_rows["kits"][1:] == ["1", "1", "1", "2"]


def test_a_corrupt_soundfont_is_one_clear_line(tmp_path, capsys):
    font = tmp_path / "broken.sf2"
    font.write_bytes(b"RIFF\x10\x00\x00\x00sfbkLIST garbage")
    code, _, err = build(capsys, font, "-o", tmp_path / "data")
    assert code == 2 and "broken.sf2: not a readable SoundFont" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()
