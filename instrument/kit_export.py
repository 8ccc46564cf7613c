"""`noisepad kit`: N fresh one-shots per pad of a preset, written as a kit another sampler opens.

The one-shots are made as `render` makes them (the generator's code, in this process, seeded),
finished at the model's rate with the pad's decay but not its tuning: the kit carries each
one-shot's tuning (the pad's `tune` plus its humanize pitch spread) for the sampler to apply.
Each WAV has its recipe beside it as JSON, so `generate --remake` makes it again.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.cache import model_hash
from engine.errors import InputError
from engine.modelconfig import read_config
from engine.outfile import writable_folder
from engine.pads import PadSpec
from engine.pool import Pools
from engine.progress import progress
from engine.recipe import recipe_for
from engine.plan import GeneratorConfig, pool_layout
from instrument.keepers import write_oneshot
from instrument.kit_formats import KitPad, write_hydrogen, write_sfz
from instrument.preset import Pad, Preset
from instrument.run_setup import pad_mixes


def export_kit(preset: Preset, count: int, folder: Path, kit_format: str = "sfz", seed: int = 0,
               device: str = "cpu", show_progress: bool = True) -> Path:
    """Write the kit; returns its main file (the .sfz, or the .h2drumkit)."""
    if count < 1:
        raise InputError(None, f"-n must be at least 1, not {count}")
    name = kit_name(preset.name)
    samples = folder / ("samples" if kit_format == "sfz" else name)
    _prepare(samples)
    pads = _make_one_shots(preset, count, samples, seed, device, show_progress)
    if kit_format == "sfz":
        return write_sfz(folder / f"{name}.sfz", preset.name, pads, samples.name)
    return write_hydrogen(folder, name, preset.name, pads, samples)


def kit_name(preset_name: str) -> str:
    """A name for files and folders: what a file system and both samplers accept."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", preset_name).strip("._") or "noisepad"


def _prepare(samples: Path) -> None:
    """An empty folder for the kit's samples: one that holds files is never written into, so
    no file of yours is replaced and the kit holds only its own."""
    if samples.is_dir() and any(samples.iterdir()):
        raise InputError(samples, "already holds files: write the kit to another folder, or remove this one")
    writable_folder(samples)


def _make_one_shots(preset: Preset, count: int, samples: Path, seed: int, device: str,
                    show_progress: bool) -> list[KitPad]:
    from engine.generator_process import PoolFiller   # torch: only once the preset is known good

    untuned = [_untuned(pad.spec, count) for pad in preset.pads]
    chokes = [mix.choke for mix in pad_mixes(preset)]
    with Pools.create(pool_layout(untuned)) as pools:
        config = GeneratorConfig(tuple(untuned), pools.handle, device=device, seed=seed)
        with progress(count * len(untuned), "one-shots made", show=show_progress) as bar:
            PoolFiller(config, pools, strict=True).fill(on_made=bar.update)
        hashes = {Path(spec.model): model_hash(Path(spec.model)) for spec in untuned}
        return [_write_pad(pools, p, pad, untuned[p], hashes[Path(untuned[p].model)], samples,
                           chokes[p] + 1)
                for p, pad in enumerate(preset.pads)]


def _untuned(spec: PadSpec, count: int) -> PadSpec:
    """The pad's one-shots at its model's rate, untuned: the sampler tunes them."""
    rate = read_config(Path(spec.model)).sample_rate
    return replace(spec, pool_size=count, tune=0.0, pitch_spread=0.0, sample_rate=rate)


def _write_pad(pools: Pools, p: int, pad: Pad, spec: PadSpec, digest: str, samples: Path, choke: int) -> KitPad:
    files, tunes = [], []
    for s in range(pools.sizes[p]):
        seed = int(pools.seed[p, s])
        audio = np.array(pools.audio[p][s][:, : int(pools.frames[p, s])])
        recipe = recipe_for(spec, seed, digest, pools.made(p, s))
        files.append(write_oneshot(samples, pad.name, audio, recipe, subtype="PCM_24").name)
        tunes.append(pad.spec.tune_for(seed))
    return KitPad(pad, choke, files, tunes)
