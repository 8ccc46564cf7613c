"""Generation speed and sampler accuracy.

    python -m benchmarks.generation                      # seed and default architectures, random weights
    python -m benchmarks.generation --model M.safetensors [--class snare] [--device cuda]

Speed: seconds per sampling step and one-shots per second, by batch size and sampler.
Accuracy: each sampler's RMS error against a 200-step DPM-Solver++(2M) reference from the same
noise, by number of steps, and how many DPM-Solver steps match the seed's 50 VSampler steps.
Prints Markdown tables for benchmarks/RESULTS.md; timings are medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from engine.device import pick_device, pick_dtype
from engine.sample_batch import Item, sample_batch
from engine.modelconfig import ModelConfig
from engine.modelfile import DrumDiffusion, load_model
from engine.settings import Settings

CONFIGS = Path(__file__).resolve().parent.parent / "training" / "configs"
REFERENCE_STEPS = 200
SEED_STEPS = 50


def architecture(name: str) -> ModelConfig:
    data = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["model"]
    return ModelConfig.from_dict(data, CONFIGS / f"{name}.yaml")


def random_model(name: str, device, dtype) -> DrumDiffusion:
    torch.manual_seed(0)
    return DrumDiffusion(architecture(name)).to(device=device, dtype=dtype).eval().requires_grad_(False)


def items_for(model: DrumDiffusion, batch: int, class_name: str | None) -> list[Item]:
    index = model.class_index(class_name) if model.config.conditional else None
    return [Item(seed=1000 + i, class_index=index) for i in range(batch)]


def seconds_per_step(model, items, sampler: str, steps: int, repeats: int, device) -> float:
    settings = Settings(sampler=sampler, steps=steps)
    sample_batch(model, items, settings)  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        sample_batch(model, items, settings)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def speed_table(name, model, args, device, match_steps: int) -> list[str]:
    rows = [f"| {name} | batch | sampler | s/step | steps | one-shots/s | s per one-shot |", "|---|---|---|---|---|---|---|"]
    for batch in args.batch_sizes:
        items = items_for(model, batch, args.class_name)
        for sampler, steps in (("vsampler", SEED_STEPS), ("dpmpp_2m", match_steps)):
            per_step = seconds_per_step(model, items, sampler, args.timing_steps, args.repeats, device)
            rate = batch / (per_step * steps)
            rows.append(f"| | {batch} | {sampler} | {per_step:.3f} | {steps} | {rate:.2f} | {1 / rate:.2f} |")
    return rows


def error_table(name, model, args) -> tuple[list[str], int]:
    items = items_for(model, args.error_batch, args.class_name)
    reference = sample_batch(model, items, Settings(sampler="dpmpp_2m", steps=REFERENCE_STEPS))
    scale = float(np.sqrt(np.mean(reference**2)))
    errors = {}
    for sampler in ("vsampler", "dpmpp_2m"):
        for steps in args.error_steps:
            out = sample_batch(model, items, Settings(sampler=sampler, steps=steps))
            errors[sampler, steps] = float(np.sqrt(np.mean((out - reference) ** 2))) / scale
    seed_error = errors.get(("vsampler", SEED_STEPS))
    if seed_error is None:
        seed_error = _error_at(model, items, reference, scale, "vsampler", SEED_STEPS)
    match = next((s for s in sorted(args.error_steps) if errors["dpmpp_2m", s] <= seed_error), max(args.error_steps))
    header = "| " + name + " relative RMS error | " + " | ".join(f"{s} steps" for s in args.error_steps) + " |"
    rows = [header, "|---" * (len(args.error_steps) + 1) + "|"]
    for sampler in ("vsampler", "dpmpp_2m"):
        rows.append(f"| {sampler} | " + " | ".join(f"{errors[sampler, s]:.4f}" for s in args.error_steps) + " |")
    rows.append(f"\nDPM-Solver++(2M) matches {SEED_STEPS} VSampler steps (error {seed_error:.4f}) at **{match} steps**.")
    return rows, match


def _error_at(model, items, reference, scale, sampler, steps) -> float:
    out = sample_batch(model, items, Settings(sampler=sampler, steps=steps))
    return float(np.sqrt(np.mean((out - reference) ** 2))) / scale


def machine(device) -> str:
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    return f"{where}; torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model file (default: seed and default architectures, random weights)")
    parser.add_argument("--class", dest="class_name")
    parser.add_argument("--device")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    parser.add_argument("--error-steps", type=lambda s: [int(x) for x in s.split(",")], default=[5, 8, 10, 12, 16, 20, 50])
    parser.add_argument("--error-batch", type=int, default=2)
    parser.add_argument("--timing-steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = pick_device(args.device)
    dtype = pick_dtype(args.precision, device)
    models = {args.model.name: load_model(args.model, device, dtype)} if args.model else {
        "default arch": random_model("default", device, dtype), "seed arch": random_model("seed", device, dtype)}
    print(f"Machine: {machine(device)}, {args.precision}\n")
    for name, model in models.items():
        parameters = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"### {name} ({parameters:.1f} M parameters)\n")
        rows, match = error_table(name, model, args)
        print("\n".join(rows) + "\n")
        print("\n".join(speed_table(name, model, args, device, match)) + "\n", flush=True)


if __name__ == "__main__":
    main()
