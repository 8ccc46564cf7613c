"""The plan of a run, torch-free: for pad specs, the pools' layout and what the generator
process is told (GeneratorConfig). The instrument builds it; engine.supervisor starts the
generator with it and engine.generator_process, in its own process, follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.modelconfig import read_config
from engine.pads import PadSpec
from engine.pool import PadLayout, PoolsHandle


@dataclass(frozen=True)
class GeneratorConfig:
    specs: tuple[PadSpec, ...]
    pools: PoolsHandle
    device: str | None = "cpu"         # a torch device name (cpu, cuda, cuda:1, mps); None: the best there is
    precision: str = "fp32"            # fp32, or fp16/bf16 on a GPU
    cache_dir: Path | None = None      # None: no cache saving
    save_every: float = 30.0           # seconds between cache saves
    max_batch: int | None = None       # None: 4 on a CPU (no faster per one-shot in bigger batches, and later), 16 else
    seed: int | None = None            # seeds the stream of one-shot seeds; None: random
    threads: int | None = None         # torch CPU threads; None: torch's default


def pool_layout(specs: list[PadSpec]) -> tuple[PadLayout, ...]:
    """Slot shapes for the pads' pools, from the model configs (weights are not loaded)."""
    configs = {}
    layout = []
    for spec in specs:
        path = Path(spec.model).resolve()
        if path not in configs:
            configs[path] = read_config(path)
        config = configs[path]
        frames = spec.output_frames(config.sample_rate, config.length)
        layout.append(PadLayout(spec.pool_size, config.channels, frames))
    return tuple(layout)
