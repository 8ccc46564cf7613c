"""`noisepad generate` end to end: files, sidecars, remaking a one-shot, and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from tests.tiny_models import write_kit_preset, write_tiny_model


def noisepad(*args):
    return subprocess.run([sys.executable, "-m", "noisepad_cli", *map(str, args)], capture_output=True, text=True)


def test_generate_writes_a_sample_pack_that_can_be_remade(kit_model_file, tmp_path):
    pack = tmp_path / "pack"
    result = noisepad("generate", "--model", kit_model_file, "--class", "snare", "-n", 3, "-o", pack,
                      "--steps", 3, "--seed", 500, "--quiet")
    assert result.returncode == 0, result.stderr
    wavs = sorted(pack.glob("*.wav"))
    assert [w.name for w in wavs] == ["snare_500.wav", "snare_501.wav", "snare_502.wav"]
    info = soundfile.info(str(wavs[1]))
    assert (info.samplerate, info.channels, info.frames) == (44100, 2, 1024)
    sidecar = json.loads(wavs[1].with_suffix(".json").read_text())
    assert sidecar["seed"] == 501 and sidecar["class"] == "snare" and sidecar["settings"]["steps"] == 3
    assert (sidecar["batch"], sidecar["position"]) == (3, 1)   # made second in one batch of 3

    again = tmp_path / "again"
    result = noisepad("generate", "--remake", wavs[1].with_suffix(".json"), "-o", again)
    assert result.returncode == 0, result.stderr
    first, _ = soundfile.read(str(wavs[1]), dtype="float32")
    remade, _ = soundfile.read(str(again / "snare_501.wav"), dtype="float32")   # 32-bit float
    soundfile.write(str(tmp_path / "as_pack.wav"), remade, 44100, subtype="PCM_24")
    as_pack, _ = soundfile.read(str(tmp_path / "as_pack.wav"), dtype="float32")
    assert np.array_equal(as_pack, first)   # the same one-shot: stored at 24 bits as the pack is, the same samples


def test_remake_refuses_a_changed_model_or_a_broken_recipe(kit_model_file, tmp_path):
    pack = tmp_path / "pack"
    assert noisepad("generate", "--model", kit_model_file, "--class", "kick", "-n", 1, "-o", pack, "--steps", 2,
                    "--seed", 3, "--quiet").returncode == 0
    recipe = json.loads((pack / "kick_3.json").read_text())
    recipe["model_hash"] = "0" * 64
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(recipe))
    del recipe["seed"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(recipe))
    for path, message in ((changed, "is not the model the one-shot was made with"), (broken, "not a one-shot's recipe (no 'seed')")):
        result = noisepad("generate", "--remake", path, "-o", tmp_path / "out")
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_generate_variations_of_a_source_file(plain_model_file, tmp_path):
    source = tmp_path / "hit.wav"
    t = np.arange(22050) / 22050
    soundfile.write(str(source), np.sin(2 * np.pi * 180 * t) * np.exp(-t * 20), 22050)  # mono, another rate
    result = noisepad("generate", "--model", plain_model_file, "-n", 2, "-o", tmp_path / "v", "--steps", 4,
                      "--source", source, "--strength", 0.3, "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "v").glob("*.wav"))) == 2


@pytest.fixture
def corrupt_model(tmp_path):
    path = write_tiny_model(tmp_path / "corrupt.safetensors")
    path.write_bytes(path.read_bytes()[:-500])
    return path


@pytest.mark.parametrize("case, args, message", [
    ("missing model", ["--model", "{tmp}/none.safetensors"], "model file not found"),
    ("corrupt model", ["--model", "{corrupt}"], "not a readable safetensors"),
    ("unknown sampler", ["--model", "{kit}", "--class", "kick", "--sampler", "heun"], "unknown sampler 'heun'"),
    ("unknown class", ["--model", "{kit}", "--class", "cowbell"], "unknown class 'cowbell'"),
    ("no class", ["--model", "{kit}"], "choose a class"),
    ("strength", ["--model", "{kit}", "--class", "kick", "--source", "{tmp}/x.wav", "--strength", "1.5"], r"strength must lie in [0, 1]"),
    ("broken source", ["--model", "{kit}", "--class", "kick", "--source", "{broken}"], "cannot read audio"),
    ("unwritable folder", ["--model", "{kit}", "--class", "kick", "-o", "{broken}/sub"], "cannot create output folder"),
    ("no gpu", ["--model", "{kit}", "--class", "kick", "--precision", "fp16", "--device", "cpu"], "needs a GPU"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, args, message, kit_model_file, corrupt_model, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not really a wav")
    values = dict(tmp=tmp_path, corrupt=corrupt_model, kit=kit_model_file, broken=broken)
    args = [a.format(**values) for a in args]
    out = tmp_path / "out"
    if "-o" not in args:
        args += ["-o", str(out)]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = noisepad("generate", *args, "-n", 2, "--steps", 2, "--quiet")
    assert result.returncode == 2, (case, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_generate_for_a_preset_pad_uses_its_model_class_and_settings(kit_model_file, tmp_path):
    preset = write_kit_preset(tmp_path / "kit.yaml", kit_model_file, {"snare": "notes: [38], class: snare, steps: 3"})
    result = noisepad("generate", "--preset", preset, "--pad", "snare", "-n", 2, "-o", tmp_path / "p", "--seed", 9, "--quiet")
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "p" / "snare_9.json").read_text())
    assert sidecar["class"] == "snare" and sidecar["settings"]["steps"] == 3
    result = noisepad("generate", "--preset", preset, "--pad", "tom", "-n", 1, "-o", tmp_path / "q")
    assert result.returncode == 2 and "no pad 'tom'" in result.stderr
