"""`noisepad generate`: write N one-shots as WAV files, each with its recipe (`engine.recipe`) as a
JSON sidecar, so `generate --remake` makes it again."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.audiofile import read_source, write_wav
from engine.errors import InputError
from engine.sample_batch import Item, generate
from engine.modelconfig import file_hash
from engine.modelfile import load_model
from engine.outfile import writable_folder
from engine.progress import progress
from engine.recipe import Recipe
from engine.settings import MAX_SEED, Settings


@dataclass(frozen=True)
class PackRequest:
    model: Path
    count: int
    output: Path
    settings: Settings
    class_name: str | None = None
    seed: int | None = None          # first seed; the next items take seed+1, seed+2, ...
    source: Path | None = None
    batch_size: int = 8
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32


def write_sample_pack(request: PackRequest, show_progress: bool = True) -> list[Path]:
    """Check everything first, then write the files; each file is complete or absent."""
    if request.count < 1:
        raise InputError(None, f"-n must be at least 1, not {request.count}")
    request.settings.check()
    model = load_model(request.model, request.device, request.dtype)
    class_index = model.class_index(request.class_name)
    config = model.config
    source = None if request.source is None else read_source(request.source, config.sample_rate, config.channels, config.length)
    writable_folder(request.output)
    base_seed = random.randrange(MAX_SEED - 10**9) if request.seed is None else request.seed
    label = request.class_name or request.model.stem
    digest = file_hash(request.model)
    written: list[Path] = []
    seed = base_seed
    with progress(request.count, label, show=show_progress) as bar:
        while len(written) < request.count:
            size = min(request.batch_size, request.count - len(written))
            items = [Item(seed=seed + i, class_index=class_index, source=source) for i in range(size)]
            seed += size
            for position, (item, audio) in enumerate(zip(items, generate(model, items, request.settings))):
                if audio is None:
                    continue  # NaN or silent output: skip this seed, the loop makes another
                path = request.output / f"{label}_{item.seed}.wav"
                recipe = _recipe(item.seed, (size, position), request, digest, config.sample_rate)
                write_wav(path, audio, config.sample_rate, {"pad": label, **recipe.to_dict()})
                written.append(path)
                bar.update(1)
            if seed - base_seed > 4 * request.count + 64:
                raise InputError(request.model, "the model keeps producing silent or invalid audio")
    return written


def _recipe(seed: int, batch: tuple[int, int], request: PackRequest, digest: str, sample_rate: int) -> Recipe:
    return Recipe(
        model=str(request.model.resolve()), model_hash=digest, class_name=request.class_name, seed=seed,
        settings=request.settings, source=None if request.source is None else str(request.source.resolve()),
        sample_rate=sample_rate, batch=batch[0], position=batch[1], threads=torch.get_num_threads(),
    )
