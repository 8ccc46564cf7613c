"""Recall: a take's hit log renders the take again, and any hit's one-shot can be kept from it.
Real pools filled by the generator's code, the callback's scheduler and mixer, a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from engine.generator_process import PoolFiller
from noisepad_cli import main
from instrument.hitlog import HitLog, HitLogWriter
from instrument.preset import load_preset
from instrument.run_setup import setup_run
from instrument.render import render_take
from tests.pool_fixtures import pools_for, refill  # noqa: F401 (a fixture)

RATE, BLOCK = 44100, 128
CC, NOTE_ON, NOTE_OFF = 0xB9, 0x99, 0x89


@pytest.fixture
def preset(tmp_path, kit_model_file):
    path = tmp_path / "kit.yaml"
    path.write_text(
        f"models:\n  kit: {{path: {kit_model_file}}}\npads:\n"
        "  kick: {notes: [36], model: kit, class: kick, steps: 2, pool: 2, humanize: {velocity: 12, pitch: 30}}\n"
        "  hat: {notes: [42], model: kit, class: hihat_closed, steps: 2, pool: 2, pan: -0.5, release_on_note_off: true}\n"
        "controls:\n  - {cc: 7, knob: gain_db, pad: kick}\n  - {cc: 71, knob: guidance, range: [1, 4]}\n"
        "  - {cc: 72, knob: decay, pad: hat, range: [0.005, 0.02]}\n")
    return load_preset(path)


def play_a_take(preset, pools_for, log_path):
    """Eight bars of kick and hat with a gain knob, a guidance knob and refills between, block by
    block as the callback plays them; returns the take's audio (frames, 2) and, by seed, the
    one-shots the pools held for the hat's hits."""
    setup = setup_run(preset, RATE)
    pools = pools_for(list(setup.specs))
    producer = PoolFiller(setup.generator_config(pools, seed=3, threads=1), pools)
    producer.fill()
    hit_log = HitLog(pools)
    mixer = setup.mixer(pools, BLOCK, seed=5, hit_log=hit_log)
    writer = HitLogWriter(log_path, hit_log, setup, BLOCK, BLOCK)
    scheduler = setup.scheduler(mixer, setup.controls(mixer, pools))
    blocks, heard = [], {}
    for bar in range(8):
        for step in range(4):
            events = [(37, NOTE_ON, 36, 90 + 5 * step), (30 * step + 3, NOTE_ON, 42, 100), (100, NOTE_OFF, 42, 0)]
            if step == 2:
                events.append((0, CC, 7, 16 * bar))
            if step == 1:
                events.append((0, CC, 72, 30 * bar % 128))
            for offset, status, note, velocity in events:
                scheduler.apply(status, note, velocity, offset)
                if note == 42 and status == NOTE_ON:
                    s = int(pools.lru_last[1])
                    heard[int(pools.seed[1, s])] = pools.audio[1][s][:, : int(pools.frames[1, s])].copy()
            for _ in range(24):
                blocks.append(np.zeros((BLOCK, 2), np.float32))
                mixer.render(blocks[-1])
            if bar % 3 == 1:
                scheduler.apply(CC, 71, 40 * step, 0)
                refill(pools, producer)
        writer.drain()
    writer.close(mixer.frame)
    return np.concatenate(blocks), heard


def test_a_take_renders_again_from_its_hit_log_to_the_bit(preset, pools_for, tmp_path):
    log = tmp_path / "take.hits.jsonl"
    take, _ = play_a_take(preset, pools_for, log)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    hits = [line for line in lines[1:] if "recipe" in line]
    assert len(hits) == 64 and sum(1 for line in lines if line.get("off")) == 32
    assert len({json.dumps(h["recipe"], sort_keys=True) for h in hits}) > 4      # refills: new one-shots came
    assert len({h["recipe"]["settings"]["guidance"] for h in hits}) > 1          # made at more than one knob
    assert len({h["played"] - h["velocity"] for h in hits if h["pad"] == "kick"}) > 1   # humanized
    assert len({h["gain"][0] for h in hits if h["pad"] == "kick"}) > 1           # the gain knob moved
    assert len({h["decay_frames"] for h in hits if h["pad"] == "hat"}) > 2       # and the decay knob

    again = tmp_path / "again.wav"
    assert render_take(log, again, show_progress=False) == pytest.approx(len(take) / RATE)
    remade, rate = soundfile.read(str(again), dtype="float32")
    stored = tmp_path / "take.wav"
    soundfile.write(str(stored), take, RATE, subtype="PCM_24")   # as play --record stores it
    recorded, _ = soundfile.read(str(stored), dtype="float32")
    assert rate == RATE and np.abs(recorded).max() > 0.1
    assert np.array_equal(remade, recorded)


def test_keep_writes_a_hit_of_the_take_again(preset, pools_for, tmp_path, capsys):
    log = tmp_path / "take.hits.jsonl"
    _, heard = play_a_take(preset, pools_for, log)
    hits = [json.loads(line) for line in log.read_text().splitlines()[1:]]
    hat = [h for h in hits if h.get("pad") == "hat" and "recipe" in h][5]
    at = hat["frame"] / RATE + 0.001
    assert main(["keep", str(log), "--at", str(at), "-o", str(tmp_path / "kept"), "--device", "cpu"]) == 0
    assert main(["keep", str(log), "--pad", "hat", "--hit", "6", "-o", str(tmp_path / "kept"), "--device", "cpu"]) == 0
    kept = sorted((tmp_path / "kept").glob("*.wav"))
    assert [path.name for path in kept] == [f"hat_{hat['recipe']['seed']}.wav"]
    audio, _ = soundfile.read(str(kept[0]), dtype="float32", always_2d=True)
    assert np.array_equal(audio.T, heard[hat["recipe"]["seed"]])   # what the pool held for that hit


@pytest.mark.parametrize("line, problem", [
    ("not json", "is not JSON"),
    ('{"frame": 10, "pad": "ride", "off": true}', "pad 'ride' is not in the log's header"),
    ('{"frame": 10, "pad": "kick", "played": 100, "gain": [1, 1], "recipe": {"seed": 1}}', "not a one-shot's recipe"),
])
def test_a_broken_hit_log_is_one_line_naming_file_and_line(preset, pools_for, tmp_path, capsys, line, problem):
    log = tmp_path / "take.hits.jsonl"
    play_a_take(preset, pools_for, log)
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:3] + [line] + lines[3:]) + "\n")
    assert main(["render", "--hits", str(log), "-o", str(tmp_path / "out.wav"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"noisepad render: {log}:4") and problem in error and "\n" not in error
    assert not (tmp_path / "out.wav").exists()
