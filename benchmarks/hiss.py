"""Where does the hiss come from? Noise floors by class, measured the way benchmarks/quality.py does.

    python -m benchmarks.hiss DATA --model presets/models/default.safetensors [--per-class 6]

  data        the training one-shots themselves, by source: does the model learn a floor that is there?
  from t      held-out real one-shots noised to level t and sampled back to 0 (a variation of
              strength t): the floor each part of the noise schedule leaves behind. Low t is
              the last few steps of every one-shot; if hiss appears only from high t, it is
              made where the structure is decided, not in the final denoising.
  one step    the same noised one-shots, denoised in a single prediction of x0 at t
  weights     the one-step rows at the lowest levels again with the weights rounded to
              bfloat16 (8x coarser than the fp16 they are stored in): if the floor does not
              move, fp16 storage is not the cause
  generated   whole one-shots from noise, for reference
Prints Markdown tables: level above 8 kHz in dB below the peak, median, per class.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.quality import decayed_windows, generate_set, noise_floor_db
from engine.sample_batch import Item, sample_batch, seed_noise
from engine.modelfile import load_model
from engine.sampling import alpha_sigma
from engine.settings import Settings
from training.dataset import load_split, read_manifest

NOISE_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)


def high_floor(audio: np.ndarray, rate: int, window: tuple[int, int]) -> float:
    return float(np.median(noise_floor_db(audio, rate, window, above_hz=8000)))


def row(label: str, by_class: dict[int, float], classes: list[str]) -> str:
    return f"| {label} | " + " | ".join(f"{by_class[c]:.0f}" if c in by_class else "" for c in range(len(classes))) + " |"


def from_level(model, real: np.ndarray, labels: np.ndarray, t: float, settings: Settings) -> np.ndarray:
    items = [Item(seed=i, class_index=model.class_index(model.config.classes[c]), source=a) for i, (a, c) in enumerate(zip(real, labels))]
    return np.concatenate([sample_batch(model, items[i:i + 8], replace(settings, strength=t)) for i in range(0, len(items), 8)])


@torch.inference_mode()
def one_step(model, real: np.ndarray, labels: np.ndarray, t: float) -> np.ndarray:
    scale = model.config.data_scale
    alpha, sigma = (float(v) for v in alpha_sigma(t))
    out = []
    for i in range(0, len(real), 8):
        x0 = torch.from_numpy(real[i:i + 8]) * scale
        noise = torch.stack([seed_noise(i + j, x0.shape[1:]) for j in range(len(x0))])
        x_t = alpha * x0 + sigma * noise
        class_ids = torch.tensor([model.class_index(model.config.classes[c]) for c in labels[i:i + 8]])
        v = model.velocity(x_t, torch.full((len(x0),), t), **model.conditioning(class_ids, 1.0))
        out.append(((alpha * x_t - sigma * v) / scale).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="dataset with held-out (eval) kits")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=6, help="one-shots per class for each measurement")
    args = parser.parse_args()

    manifest = read_manifest(args.data)
    classes, rate = manifest.classes, manifest.sample_rate
    real, real_labels = load_split(args.data, manifest, "eval")
    windows = decayed_windows(real, real_labels, rate, len(classes))
    model = load_model(args.model).float().eval()
    settings = Settings()
    pick = np.concatenate([np.flatnonzero(real_labels == c)[:args.per_class] for c in range(len(classes))])
    sources, source_labels = real[pick], real_labels[pick]

    def floors(audio, labels):
        return {c: high_floor(audio[labels == c], rate, w) for c, w in windows.items() if np.any(labels == c)}

    print(f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads; model {args.model}; "
          f"{settings.sampler}, {settings.steps} steps for a whole one-shot; up to {args.per_class} per class\n")
    print("| above 8 kHz, dB below peak | " + " | ".join(classes) + " |\n|---|" + "---|" * len(classes))
    print(row("held-out real kits", floors(real, real_labels), classes))
    train, train_labels = load_split(args.data, manifest, "train")
    origins = np.array([item.get("origin", item["group"]) for item in manifest.split("train")])
    for origin in dict.fromkeys(origins):
        print(row(f"training data: {origin}", floors(train[origins == origin], train_labels[origins == origin]), classes))
    del train
    for t in NOISE_LEVELS:
        print(row(f"real noised to t={t}, sampled back", floors(from_level(model, sources, source_labels, t, settings), source_labels), classes), flush=True)
    for t in NOISE_LEVELS[:5]:
        print(row(f"real noised to t={t}, one x0 prediction", floors(one_step(model, sources, source_labels, t), source_labels), classes), flush=True)
    rounded = load_model(args.model).to(torch.bfloat16).float().eval()
    for t in NOISE_LEVELS[:2]:
        print(row(f"real noised to t={t}, one x0 prediction, weights rounded to bf16",
                  floors(one_step(rounded, sources, source_labels, t), source_labels), classes), flush=True)
    audio, _, labels, _ = generate_set({"model": args.model}, classes, args.per_class)
    print(row("generated from noise", floors(audio, labels), classes), flush=True)


if __name__ == "__main__":
    main()
