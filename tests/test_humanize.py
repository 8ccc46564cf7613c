"""Humanize: a seeded velocity spread per hit, a pitch spread per one-shot, and an offline render
that stays the same for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from engine.generator_process import PoolFiller
from engine.pads import PadSpec
from engine.pool import PadLayout, Pools
from engine.settings import Settings
from engine.plan import GeneratorConfig
from instrument.mixer import Mixer, PadMix
from instrument.preset import load_preset
from tests.pool_fixtures import pools_for  # noqa: F401 (a fixture)
from tests.test_render import noisepad, write_midi
from tests.tiny_models import write_kit_preset

RATE, BLOCK = 44100, 128


def hit_gains(seed: int, spread: int, hits: int = 40) -> list[float]:
    """The gain each of `hits` hits at velocity 100 starts its voice with."""
    with Pools.create([PadLayout(2, 2, 512)]) as pools:
        shot = np.full((2, 512), 0.1, np.float32)
        shot[:, -1] = 0
        pools.preload(0, shot, 1, fresh=False)
        mixer = Mixer(pools, [PadMix(1.0, 0.0, velocity_spread=spread)], RATE, BLOCK, seed=seed)
        gains = []
        for _ in range(hits):
            mixer.note_on(0, 100, 0)
            gains.append(float(mixer.gain[np.flatnonzero(mixer.active)[-1], 0]))
            mixer.render(np.zeros((BLOCK, 2), np.float32))
        return gains


def test_the_velocity_spread_varies_each_hit_within_its_bounds_as_the_seed_says():
    gains = hit_gains(seed=1, spread=20)
    assert len(set(gains)) > 10                                   # hits differ
    assert min(gains) >= 80 / 127 - 1e-6 and max(gains) <= 120 / 127 + 1e-6   # linear curve: 100 +- 20
    assert gains == hit_gains(seed=1, spread=20)                  # the same seed, the same hits
    assert gains != hit_gains(seed=2, spread=20)
    assert all(gain == pytest.approx(100 / 127) for gain in hit_gains(seed=1, spread=0))


def test_the_pitch_spread_tunes_each_one_shot_by_its_seed(kit_model_file, pools_for):
    spec = PadSpec("tom", kit_model_file, "kick", 6, Settings(steps=2), pitch_spread=50.0, sample_rate=RATE)
    tunes = {spec.tune_for(seed) for seed in range(50)}
    assert len(tunes) == 50 and min(tunes) >= -0.5 and max(tunes) <= 0.5   # within 50 cents either way
    assert spec.tune_for(7) == spec.tune_for(7)
    pools = pools_for([spec])
    PoolFiller(GeneratorConfig((spec,), pools.handle, seed=3, threads=1), pools).fill()
    frames = {int(pools.frames[0, s]): int(pools.seed[0, s]) for s in range(6)}
    assert len(frames) > 1          # tuned apart: lower ones last longer
    for length, seed in frames.items():   # each as long as its tuning makes it (to the resampler's frame):
        assert abs(length - 1024 * 2 ** (-spec.tune_for(seed) / 12)) <= 1   # none cut short by its slot


def test_a_humanized_render_is_the_same_for_the_same_seed(tmp_path, kit_model_file):
    preset = write_kit_preset(tmp_path / "kit.yaml", kit_model_file, {
        "kick": "notes: [36], class: kick, steps: 2, pool: 3, humanize: {velocity: 30, pitch: 40}"})
    assert load_preset(preset).pads[0].velocity_spread == 30
    midi = write_midi(tmp_path / "roll.mid", [(i / 4, 36, 100, 10) for i in range(8)])
    renders = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        result = noisepad("render", midi, "-o", tmp_path / f"{name}.wav", "--preset", preset, "--seed", seed)
        assert result.returncode == 0, result.stderr
        renders[name] = (tmp_path / f"{name}.wav").read_bytes()
    assert renders["a"] == renders["b"] != renders["c"]
