"""How one one-shot was made, as plain data that makes it again: the model file (and its hash),
class, seed, sampling settings, variation source and the tuning and decay applied for playback.

Keepers and hit logs store recipes as JSON; `remake` turns them back into the same audio. A
one-shot from a model's starter pool is taken from that starter again (it was made at the
model's own settings and stored), every other one is generated from its seed.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from engine.errors import InputError, error_line
from engine.pads import PadSpec
from engine.pool import ORIGIN_STARTER, Made
from engine.postprocess import Finish
from engine.settings import MAX_SEED, Settings



@dataclass(frozen=True)
class Recipe:
    model: str
    model_hash: str
    class_name: str | None
    seed: int
    settings: Settings
    source: str | None = None
    tune: float = 0.0             # semitones, humanize's pitch spread included
    decay: float | None = None
    sample_rate: int | None = None   # of the finished one-shot; None: the model's
    batch: int = 1                # generated in a batch of this size, at this place in it, on this
    position: int = 0             # many CPU threads (0: not known): remade so, it is the same to
    threads: int = 0              # the bit
    starter: bool = False

    def to_dict(self) -> dict:
        made = asdict(self)
        made["class"] = made.pop("class_name")
        return made

    @classmethod
    def from_dict(cls, made: dict, where: str | Path) -> "Recipe":
        """A recipe from its JSON form; a missing or mistyped field is an InputError naming `where`."""
        try:
            settings = dict(made["settings"])
            settings["finish"] = Finish(**settings.get("finish", {}))
            recipe = cls(
                model=str(made["model"]), model_hash=str(made["model_hash"]), class_name=made["class"],
                seed=int(made["seed"]), settings=Settings(**settings), source=made.get("source"),
                tune=float(made.get("tune", 0.0)), decay=made.get("decay"),
                sample_rate=made.get("sample_rate"), batch=int(made.get("batch", 1)),
                position=int(made.get("position", 0)), threads=int(made.get("threads", 0)),
                starter=bool(made.get("starter", False)),
            )
        except (KeyError, TypeError, ValueError) as error:
            missing = f"no {error.args[0]!r}" if isinstance(error, KeyError) else error_line(error)
            raise InputError(where, f"not a one-shot's recipe ({missing})") from None
        if not 0 <= recipe.seed <= MAX_SEED or not 0 <= recipe.position < recipe.batch <= 4096 or recipe.threads < 0:
            raise InputError(where, f"seed {recipe.seed}, batch {recipe.batch} or position {recipe.position} out of range")
        try:
            recipe.settings.check()
        except InputError as error:
            raise InputError(where, error.problem) from None
        return recipe


def read_recipe(path: Path) -> tuple[Recipe, str]:
    """A one-shot's recipe from a JSON file, and the name it was kept under (its pad's)."""
    try:
        made = json.loads(Path(path).read_text())
    except OSError as error:
        raise InputError(path, f"cannot be read ({error.strerror})") from None
    except ValueError as error:
        raise InputError(path, f"is not JSON ({error})") from None
    if not isinstance(made, dict):
        raise InputError(path, "is not a one-shot's recipe (not a JSON object)")
    return Recipe.from_dict(made, path), str(made.get("pad") or Path(path).stem.rsplit("_", 1)[0])


def recipe_for(spec: PadSpec, seed: int, model_hash: str, made: Made = Made()) -> Recipe:
    """The recipe of a one-shot a pool slot holds: its pad's spec, its seed, and how the slot
    says it was made."""
    settings = spec.settings
    if not math.isnan(made.strength):
        settings = replace(settings, strength=made.strength, guidance=made.guidance)
    starter = made.origin == ORIGIN_STARTER
    knob = 0.0 if math.isnan(made.tune) else made.tune
    return Recipe(
        model=str(Path(spec.model).resolve()), model_hash=model_hash, class_name=spec.class_name, seed=int(seed),
        settings=settings, source=None if spec.source is None else str(Path(spec.source).resolve()),
        tune=(spec.tune if starter else spec.tune_for(seed)) + knob, decay=spec.decay, sample_rate=spec.sample_rate,
        batch=made.batch, position=made.position, threads=made.threads, starter=starter,
    )


class Remaker:
    """Makes one-shots again from recipes, loading each model file once."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._models: dict[str, object] = {}

    def remake(self, recipe: Recipe) -> np.ndarray:
        return self.remake_all([recipe])[0]

    def remake_all(self, recipes: list[Recipe]) -> list[np.ndarray]:
        """The finished one-shots, float32 (channels, frames), as the pools held them. Recipes
        that can share a batch (model, settings, source, batch size and threads alike) are made
        together, each at the place in the batch it was made at."""
        from engine.resample import to_playback
        from engine.starter import starter_shot

        raw: list[np.ndarray | None] = [None] * len(recipes)
        groups: dict[tuple, list[int]] = {}
        for i, recipe in enumerate(recipes):
            self._model(recipe)   # a missing or changed model file: an error before any work
            if recipe.starter:
                raw[i] = starter_shot(recipe.model, recipe.class_name, recipe.seed)
            else:
                key = (recipe.model, recipe.settings, recipe.source, recipe.batch, recipe.threads)
                groups.setdefault(key, []).append(i)
        for (*_, size, threads), members in groups.items():
            with _torch_threads(threads):
                for places in _fill_batches(members, [recipes[i].position for i in members]):
                    for i, audio in self._generate(places, recipes, size).items():
                        raw[i] = audio
        return [to_playback(audio, self._model(r).config.sample_rate, r.sample_rate, r.tune, r.decay)
                for audio, r in zip(raw, recipes)]

    def _model(self, recipe: Recipe):
        from engine.cache import model_hash
        from engine.modelfile import load_model

        if recipe.model in self._models:
            return self._models[recipe.model]
        path = Path(recipe.model)
        if not path.is_file():
            raise InputError(path, "model file not found (the one-shot was made with it)")
        found = model_hash(path)
        if found != recipe.model_hash:
            raise InputError(path, f"is not the model the one-shot was made with (sha256 {found[:12]}…, "
                                   f"made with {recipe.model_hash[:12]}…)")
        self._models[recipe.model] = load_model(path, self.device)
        return self._models[recipe.model]

    def _generate(self, places: dict[int, int], recipes: list[Recipe], size: int) -> dict[int, np.ndarray]:
        """Generate one batch of `size` (its recipes share model, settings and source) with
        recipes[i] at place `places[i]`, the other places filled with repeats: what else is in a
        batch does not change an item, its size and place do."""
        from engine.audiofile import read_source
        from engine.sample_batch import Item, generate

        first = recipes[next(iter(places))]
        model = self._model(first)
        config = model.config
        source = None
        if first.source is not None:
            source = read_source(first.source, config.sample_rate, config.channels, config.length)
        batch = [Item(first.seed, model.class_index(first.class_name), source)] * size
        for i, place in places.items():
            batch[place] = Item(recipes[i].seed, model.class_index(recipes[i].class_name), source)
        made = generate(model, batch, first.settings)
        for i, place in places.items():
            if made[place] is None:
                raise InputError(first.model, f"seed {recipes[i].seed} makes no usable audio with these settings")
        return {i: made[place] for i, place in places.items()}


@contextmanager
def _torch_threads(threads: int):
    """torch on `threads` CPU threads for a while (0: as it is)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fill_batches(members: list[int], positions: list[int]) -> list[dict[int, int]]:
    """Share out members into as few batches as their places allow: {member: place} per batch."""
    batches: list[dict[int, int]] = []
    for member, place in zip(members, positions):
        free = next((b for b in batches if place not in b.values()), None)
        if free is None:
            free = {}
            batches.append(free)
        free[member] = place
    return batches

