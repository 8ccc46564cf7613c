"""Recipes: a one-shot made again from its seed, batch and place in it, to the bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.cache import model_hash
from engine.errors import InputError
from engine.sample_batch import Item, generate
from engine.modelfile import load_model
from engine.recipe import Recipe, Remaker, read_recipe
from engine.resample import to_playback
from engine.settings import Settings


def test_remake_all_puts_each_one_shot_back_at_its_place_in_a_batch_of_its_size(kit_model_file):
    model = load_model(kit_model_file, torch.device("cpu"))
    settings = Settings(steps=3)
    snare = model.class_index("snare")
    seeds = [11, 12, 13]
    made = [to_playback(audio, 44100, None, 0.0) for audio in
            generate(model, [Item(seed, snare, None) for seed in seeds], settings)]

    def recipe(seed, position):
        return Recipe(str(kit_model_file), model_hash(kit_model_file), "snare", seed, settings,
                      batch=3, position=position)

    # two at place 1: they cannot share a batch, so the remaker makes two
    wanted = [recipe(12, 1), recipe(13, 2), recipe(11, 0), recipe(12, 1)]
    remade = Remaker().remake_all(wanted)
    for got, index in zip(remade, [1, 2, 0, 1]):
        assert np.array_equal(got, made[index])


def test_a_recipe_read_back_from_json_is_the_same_recipe(kit_model_file, tmp_path):
    recipe = Recipe(str(kit_model_file), model_hash(kit_model_file), "kick", 7, Settings(steps=3, guidance=2.0),
                    tune=0.25, decay=0.3, sample_rate=48000, batch=4, position=2)
    path = tmp_path / "kick_7.json"
    path.write_text(json.dumps({"pad": "kick", **recipe.to_dict()}))
    assert read_recipe(path) == (recipe, "kick")


@pytest.mark.parametrize("change, problem", [
    ({"seed": None}, "not a one-shot's recipe"),
    ({"position": 4}, "out of range"),
    ({"settings": {"steps": 0}}, "steps"),
])
def test_a_broken_recipe_is_one_error_naming_its_file(kit_model_file, tmp_path, change, problem):
    made = Recipe(str(kit_model_file), "0" * 64, "kick", 7, Settings(), batch=4).to_dict()
    path = tmp_path / "kick_7.json"
    path.write_text(json.dumps({**made, **change}))
    with pytest.raises(InputError) as error:
        read_recipe(path)
    assert problem in str(error.value) and str(path) in str(error.value)
