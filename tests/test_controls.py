"""Live controls from a preset: CC knobs and buttons through the scheduler, the mixer, the shared
pools and the generator (real parts, a tiny model), and their errors with file:line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from engine.errors import InputError
from engine.generator_process import PoolFiller
from engine.cache import model_hash
from engine.recipe import Remaker, recipe_for
from instrument.play import _write_keepers
from noisepad_cli import main
from instrument.preset import load_preset
from instrument.run_setup import setup_run
from tests.pool_fixtures import pools_for, refill  # noqa: F401 (a fixture)

RATE, BLOCK = 44100, 128
CC, NOTE_ON = 0xB0, 0x90
CONTROLS = """controls:
  - {cc: 7, knob: gain_db, pad: kick, range: [-24, 0]}
  - {cc: 73, knob: decay, pad: kick, range: [0.005, 0.05]}
  - {cc: 74, knob: tune, pad: kick, range: [-3, 3]}
  - {cc: 71, knob: guidance, range: [1, 5]}
  - {cc: 20, button: refresh, pad: kick}
  - {cc: 21, button: hold, pad: snare}
  - {note: 60, button: keep, pad: kick}
"""


@pytest.fixture
def preset(tmp_path, kit_model_file):
    path = tmp_path / "kit.yaml"
    path.write_text(f"models:\n  kit: {{path: {kit_model_file}}}\npads:\n"
                    "  kick: {notes: [36], model: kit, class: kick, steps: 2, pool: 3}\n"
                    "  snare: {notes: [38], model: kit, class: snare, steps: 2, pool: 3}\n" + CONTROLS)
    return load_preset(path)


@pytest.fixture
def rig(preset, pools_for):
    """Pools filled by the real generator code, and the callback's scheduler with the controls."""
    setup = setup_run(preset, RATE)
    pools = pools_for(list(setup.specs))
    producer = PoolFiller(setup.generator_config(pools, seed=1, threads=1), pools)
    producer.fill()
    mixer = setup.mixer(pools, BLOCK)
    controls = setup.controls(mixer, pools)
    scheduler = setup.scheduler(mixer, controls)
    return pools, producer, mixer, controls, scheduler


def hit_peak(mixer, scheduler, note=36) -> float:
    """The peak of one hit, alone, over its first blocks."""
    while mixer.voices:
        mixer.render(np.zeros((BLOCK, 2), np.float32))
    scheduler.apply(NOTE_ON | 9, note, 127, 0)
    out = np.zeros((BLOCK * 8, 2), np.float32)
    for b in range(8):
        mixer.render(out[b * BLOCK:(b + 1) * BLOCK])
    return float(np.abs(out).max())


def test_a_gain_knob_changes_the_next_hit(rig):
    pools, _, mixer, _, scheduler = rig
    before = hit_peak(mixer, scheduler)   # the preset's gain: 0 dB
    scheduler.apply(CC | 9, 7, 0, 0)      # knob down: -24 dB
    quieter = hit_peak(mixer, scheduler)
    ratio_db = 20 * np.log10(quieter / before)
    # hits replay different one-shots of a 3-slot pool: compare with the one each played
    assert ratio_db < -10, ratio_db
    scheduler.apply(CC | 9, 7, 127, 0)    # back up to 0 dB
    assert hit_peak(mixer, scheduler) > quieter * 5


def test_a_decay_knob_shortens_the_next_hit(rig):
    _, _, mixer, _, scheduler = rig

    def frames_sounding() -> int:
        scheduler.apply(NOTE_ON | 9, 36, 127, 0)
        blocks = 0
        while mixer.voices:
            mixer.render(np.zeros((BLOCK, 2), np.float32))
            blocks += 1
        return blocks * BLOCK

    assert frames_sounding() >= 1024        # the whole one-shot
    scheduler.apply(CC | 9, 73, 0, 0)       # decay knob down: silent 5 ms in
    assert frames_sounding() <= 2 * BLOCK   # 220 frames, within the block after the first
    scheduler.apply(CC | 9, 73, 127, 0)     # up: 50 ms
    assert 2 * BLOCK < frames_sounding() <= 18 * BLOCK


def test_a_tune_knob_retunes_the_one_shots_made_from_then_on_in_slots_long_enough(rig, preset, kit_model_file):
    pools, producer, _, _, scheduler = rig
    kick, snare = preset.pads
    assert kick.spec.tune_room == 3 and snare.spec.tune_room == 0
    assert pools.audio[0].shape[-1] > pools.audio[1].shape[-1]   # room for 3 semitones down
    scheduler.apply(CC | 9, 74, 0, 0)       # tune knob down: -3 semitones
    pools.refresh(0)
    refill(pools, producer)
    retuned = [s for s in range(3) if pools.made_tune[0, s] == -3.0]
    assert retuned, "nothing was made with the knob's tuning"
    s = retuned[0]
    frames = int(pools.frames[0, s])
    assert frames == pools.audio[0].shape[-1] and pools.audio[0][s][:, frames - 1].max() == 0   # whole, to its end
    recipe = recipe_for(kick.spec, int(pools.seed[0, s]), model_hash(kit_model_file), pools.made(0, s))
    assert recipe.tune == -3.0
    assert np.array_equal(pools.audio[0][s][:, :frames], Remaker().remake(recipe)[:, :frames])


def test_a_generation_knob_changes_the_one_shots_made_from_then_on(rig, kit_model_file):
    pools, producer, _, _, scheduler = rig
    assert producer.settings(0).guidance == 1.0
    scheduler.apply(CC | 9, 71, 127, 0)   # guidance knob up: 5
    assert [producer.settings(p).guidance for p in (0, 1)] == [5.0, 5.0]
    pools.refresh(0)
    refill(pools, producer)
    made = [s for s in range(3) if pools.made_guidance[0, s] == 5.0]
    assert made, "nothing was made with the knob's value"
    s = made[0]
    spec, seed, digest = producer.jobs[0].spec, int(pools.seed[0, s]), model_hash(kit_model_file)
    with_knob = Remaker().remake(recipe_for(spec, seed, digest, pools.made(0, s)))
    without = Remaker().remake(recipe_for(spec, seed, digest))   # as the preset says
    kept = pools.audio[0][s][:, : int(pools.frames[0, s])]
    assert np.array_equal(kept, with_knob[:, :kept.shape[1]])   # the same one-shot, to the bit
    assert np.abs(with_knob - without).max() > 1e-3   # the knob made another one-shot of the same seed


def test_refresh_makes_the_pads_one_shots_stale_and_the_generator_replaces_them(rig):
    pools, producer, _, _, scheduler = rig
    assert pools.fresh(0) == 3
    scheduler.apply(CC | 9, 20, 127, 0)     # refresh, pressed
    scheduler.apply(CC | 9, 20, 127, 0)     # the same press again (a CC repeats while held): nothing more
    assert pools.fresh(0) == 0 and pools.fresh(1) == 3
    seeds_before = set(pools.seed[0, :3].tolist())
    assert producer.plan() and set(producer.plan()) == {0}
    refill(pools, producer)
    assert pools.fresh(0) == 2 and set(pools.seed[0, :3].tolist()) != seeds_before


def test_hold_stops_a_pads_refills_until_released(rig):
    pools, producer, mixer, _, scheduler = rig
    scheduler.apply(CC | 9, 21, 127, 0)     # hold snare, pressed
    for _ in range(3):
        scheduler.apply(NOTE_ON | 9, 38, 100, 0)
    assert pools.fresh(1) == 0 and producer.plan() == []   # held: nothing is made for it
    assert hit_peak(mixer, scheduler, note=38) > 0           # it replays what it has
    scheduler.apply(CC | 9, 21, 0, 0)       # released
    assert set(producer.plan()) == {1}


def test_keep_writes_the_last_one_shot_that_its_json_remakes(rig, preset, tmp_path):
    pools, _, mixer, controls, scheduler = rig
    hit_peak(mixer, scheduler)                      # kick plays a one-shot
    scheduler.apply(NOTE_ON | 9, 60, 100, 0)        # keep, on a note that plays no pad
    assert mixer.counters.hits == 1
    setup = setup_run(preset, RATE)
    notices = _write_keepers(controls, pools, setup, tmp_path / "keepers")
    assert len(notices) == 1 and "kept kick's last one-shot as" in notices[0]
    wav = next((tmp_path / "keepers").glob("kick_*.wav"))
    made_with = json.loads(wav.with_suffix(".json").read_text())
    audio, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
    assert rate == RATE and made_with["class"] == "kick"
    assert main(["generate", "--remake", str(wav.with_suffix(".json")), "-o", str(tmp_path / "again")]) == 0
    again = tmp_path / "again" / wav.name
    remade, _ = soundfile.read(str(again), dtype="float32", always_2d=True)
    assert made_with["batch"] == 2 and np.array_equal(audio, remade[: len(audio)])   # to the bit
    assert json.loads(again.with_suffix(".json").read_text()) == made_with
    assert _write_keepers(controls, pools, setup, tmp_path / "keepers") == []   # one press, one file


@pytest.mark.parametrize("entry, problem", [
    ("{cc: 7, knob: volume}", "controls[0].knob: must be a name (one of decay, gain_db, guidance, pan, strength, tune), not 'volume'"),
    ("{note: 36, button: keep}", "controls[0].note: note 36 already plays pad 'kick'"),
    ("{note: 61, knob: gain_db}", "controls[0].note: a knob needs a cc (a note is a button)"),
    ("{cc: 7, knob: pan, range: [-2, 1]}", "controls[0].range: must be a number from -1.0 to 1.0, not -2"),
    ("{cc: 7, button: hold, pad: tom}", "controls[0].pad: must be a name (one of kick), not 'tom'"),
    ("{cc: 7}", "controls[0]: needs exactly one of knob or button"),
    ("{cc: 200, button: hold}", "controls[0].cc: must be a whole number from 0 to 127, not 200"),
])
def test_a_bad_control_names_its_file_and_line(tmp_path, kit_model_file, entry, problem):
    path = tmp_path / "kit.yaml"
    path.write_text(f"models:\n  kit: {{path: {kit_model_file}}}\npads:\n"
                    f"  kick: {{notes: [36], model: kit, class: kick}}\ncontrols:\n  - {entry}\n")
    with pytest.raises(InputError) as error:
        load_preset(path)
    assert str(error.value) == f"{path}:6: {problem}"
