"""Starter pools: one-shots shipped beside a model fill empty pools before anything is generated."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from engine.cache import model_hash
from engine.pads import PadSpec
from engine.recipe import Remaker, recipe_for
from engine.resample import to_playback
from engine.settings import Settings
from engine.starter import load_starters, read_starter, starter_files
from noisepad_cli import main
from tests.pool_fixtures import pools_for  # noqa: F401 (a fixture)
from tests.tiny_models import write_tiny_model


@pytest.fixture
def model_with_starter(tmp_path):
    model = write_tiny_model(tmp_path / "kit.safetensors", ("kick", "snare"))
    assert main(["starter", str(model), "-n", "2", "--device", "cpu"]) == 0
    return model


def test_starter_fills_empty_pools_tuned_for_each_pad_and_already_played(model_with_starter, pools_for, tmp_path):
    audio, shots = read_starter(model_with_starter)
    assert audio.shape == (4, 2, 1024) and [s["class"] for s in shots] == ["kick", "kick", "snare", "snare"]
    assert np.all(np.abs(audio).max(axis=(1, 2)) > 0.5)   # finished one-shots, peaks near -1 dBFS
    shutil.copy(starter_files(model_with_starter)[0], tmp_path / "source.flac")
    specs = [
        PadSpec("kick", model_with_starter, "kick", 4, Settings(), tune=3.0, sample_rate=48000),
        PadSpec("snare", model_with_starter, "snare", 1, Settings()),
        PadSpec("varied", model_with_starter, "snare", 2, Settings(strength=0.5), source=tmp_path / "source.flac"),
    ]
    pools = pools_for(specs)
    assert load_starters(pools, specs) == [2, 1, 0]   # a variation pad plays its source's variations only
    assert [pools.available(p) for p in range(3)] == [2, 1, 0] and all(pools.fresh(p) == 0 for p in range(3))
    expected = to_playback(audio[0], 44100, 48000, 3.0)
    slot = pools.take(0)
    assert slot >= 0 and pools.seed[0, slot] in (shots[0]["seed"], shots[1]["seed"])
    played = audio[[s["seed"] for s in shots].index(pools.seed[0, slot])]
    np.testing.assert_allclose(pools.audio[0][slot, :, :expected.shape[1]], to_playback(played, 44100, 48000, 3.0), atol=1e-6)
    assert load_starters(pools, specs) == [0, 0, 0]   # only into empty pools

    recipe = recipe_for(specs[0], int(pools.seed[0, slot]), model_hash(model_with_starter), pools.made(0, slot))
    assert recipe.starter   # recalled from the starter, not generated from its seed at the pad's settings
    assert np.array_equal(Remaker().remake(recipe), pools.audio[0][slot, :, : pools.frames[0, slot]])


def test_a_starter_made_by_another_model_or_broken_is_skipped(model_with_starter, pools_for, tmp_path, caplog):
    (tmp_path / "other").mkdir()
    other = write_tiny_model(tmp_path / "other" / "kit.safetensors", ("kick", "snare"), seed=1)
    for path in starter_files(model_with_starter):
        shutil.copy(path, other.parent / path.name)
    specs = [PadSpec("kick", other, "kick", 2, Settings())]
    with caplog.at_level(logging.WARNING):
        assert load_starters(pools_for(specs), specs) == [0]
    assert "not made by kit.safetensors" in caplog.text

    starter_files(model_with_starter)[0].write_bytes(b"fLaC broken")
    specs = [PadSpec("kick", model_with_starter, "kick", 2, Settings())]
    with caplog.at_level(logging.WARNING):
        assert load_starters(pools_for(specs), specs) == [0]
    assert "cannot be read" in caplog.text


def test_a_model_without_a_starter_starts_empty(tmp_path, pools_for):
    model = write_tiny_model(tmp_path / "bare.safetensors", ("kick",))
    specs = [PadSpec("kick", model, "kick", 2, Settings())]
    assert load_starters(pools_for(specs), specs) == [0]


def test_starter_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    assert main(["starter", str(tmp_path / "missing.safetensors")]) == 2
    model = write_tiny_model(tmp_path / "kit.safetensors", ("kick",))
    assert main(["starter", str(model), "-n", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "missing.safetensors" in lines[0] and "-n must be at least 1" in lines[1]
    assert not starter_files(model)[0].exists()
