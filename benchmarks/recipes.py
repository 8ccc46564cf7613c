"""Training recipes side by side: each config trained for the same minutes on the same data.

    python -m benchmarks.recipes DATA -o OUT --minutes 4 [--config default --config seed] [--init MODEL]

A config is a built-in name or a YAML file (benchmarks/recipe_configs/ holds one-change
variants of the default recipe, for fine-tuning the shipped model with --init). Each config
trains into OUT/runs/NAME (run again with more --minutes to train on), then its
EMA weights are exported to OUT/NAME.safetensors for benchmarks/quality.py, e.g. the seed's
way of sampling:
    python -m benchmarks.quality DATA --eval default=OUT/default.safetensors \
        --eval "seed=OUT/seed.safetensors,sampler=vsampler,steps=50"
Prints a Markdown table for benchmarks/RESULTS.md: optimizer steps, one-shots seen and, on a
GPU, the peak memory (allocated by tensors, and held by PyTorch's caching allocator, which is
what the card must have free beside its CUDA context).
"""

from __future__ import annotations

import argparse
import csv
import gc
import platform
import time
from pathlib import Path

import torch

from engine.modelfile import load_model
from training.config import load_config
from training.run import LAST_CHECKPOINT, export, read_checkpoint, train


def logged(run: Path, name: str) -> list[float]:
    """Every value of one metric in the run's CSV logs, all sessions."""
    values = []
    for log in sorted((run / "logs").glob("version_*/metrics.csv")):
        with log.open(newline="") as file:
            values += [float(row[name]) for row in csv.DictReader(file) if row.get(name)]
    return values


def summarize(name: str, run: Path, model_file: Path, seconds: float) -> str:
    recipe = load_config(name).recipe
    steps = read_checkpoint(run / LAST_CHECKPOINT)["global_step"]
    allocated, reserved = logged(run, "gpu_peak_mib"), logged(run, "gpu_peak_reserved_mib")
    memory = f"{max(allocated):.0f} / {max(reserved):.0f}" if allocated and reserved else "no GPU"
    parameters = sum(p.numel() for p in load_model(model_file).parameters()) / 1e6
    return (f"| {Path(name).stem} | {parameters:.1f} M | {recipe.batch_size} × {recipe.accumulate} | {seconds / 60:.1f} | {steps} | "
            f"{steps * recipe.batch_size * recipe.accumulate} | {memory} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="dataset (from `noisepad dataset`, with a held-out kit)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the runs and models")
    parser.add_argument("--minutes", type=float, required=True, help="training time of each config")
    parser.add_argument("--config", action="append", help="configs to compare (default: default and seed)")
    parser.add_argument("--init", type=Path, help="fine-tune every config from this engine model file")
    args = parser.parse_args()

    names = args.config or ["default", "seed"]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"Machine: {platform.machine()}, {device}, torch {torch.__version__}; {args.minutes} min per config\n")
    lines = []
    for name in names:
        stem = Path(name).stem
        run, model_file = args.output / "runs" / stem, args.output / f"{stem}.safetensors"
        if torch.cuda.is_available():   # each config's own peak, not the highest so far
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        train(args.data, name, run, init=args.init, minutes=args.minutes, progress=False)
        seconds = time.perf_counter() - start
        export(run, model_file)
        lines.append(summarize(name, run, model_file, seconds))
    print("| config | parameters | batch × accumulation | minutes (this session) | optimizer steps | one-shots seen | "
          "GPU peak MiB (allocated / reserved) |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
