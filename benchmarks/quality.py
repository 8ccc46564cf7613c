"""Does a model sound like drums? Measured against a held-out kit (a dataset built with --hold-out).

    python -m benchmarks.quality DATA --eval default=presets/models/default.safetensors \
        [--eval "seed=run/model.safetensors,sampler=vsampler,steps=50,guidance=1"] [--per-class 8]

A small classifier (log-mel CNN) is trained on the dataset's training split (the other kits),
then for each model and the held-out real one-shots:
  accuracy   the classifier labels generated one-shots as the class asked for (real: held-out
             kits), overall and by class
  FD         Fréchet distance between generated and held-out real one-shots in its embedding
  noise      by class: level and level above 8 kHz, dB below the peak (median), over a window
             after the class's real one-shots have decayed; generated measured twice: as the
             model makes it (before post-processing, whose fades would hide hiss) and as the
             instrument plays it (after post-processing, the tail gate included)
  gate       what the tail gate takes from real one-shots (it should take nothing)
  diversity  mean pairwise embedding distance within a class
  nearest    median embedding distance to the nearest training one-shot (memorization if ~0;
             the held-out row shows what new-but-real looks like)
Prints Markdown tables for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torchaudio
from scipy import linalg, signal
from torch import nn

from engine.sample_batch import Item, sample_batch
from engine.modelfile import load_model
from engine.postprocess import finish_oneshot, tail_gate
from engine.modelconfig import read_config
from engine.settings import Settings, model_settings
from training.dataset import load_split, read_manifest


class Features(nn.Module):
    """Mel power spectrogram of the mono mix, 64 bands; `log_mel` takes its log."""

    def __init__(self, rate: int):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(rate, n_fft=1024, hop_length=512, n_mels=64)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mel(audio.mean(dim=1))


def log_mel(power: torch.Tensor) -> torch.Tensor:
    return torch.log(power + 1e-5)[:, None]


class Classifier(nn.Module):
    def __init__(self, rate: int, classes: int, embedding: int = 64):
        super().__init__()
        self.features = Features(rate)
        blocks = []
        for c_in, c_out in ((1, 16), (16, 32), (32, 64), (64, 64)):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, embedding), nn.ReLU())
        self.head = nn.Linear(embedding, classes)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        return self.body(log_mel(self.features(audio)))


def train_classifier(audio: np.ndarray, labels: np.ndarray, rate: int, classes: int, epochs: int = 30) -> Classifier:
    torch.manual_seed(0)
    model = Classifier(rate, classes)
    optimizer = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-2)
    with torch.no_grad():   # the spectrogram once: a gain g on the audio is g squared on its power
        power = torch.cat([model.features(b) for b in torch.from_numpy(audio).split(256)])
    y = torch.from_numpy(labels)
    weights = torch.from_numpy(1.0 / np.bincount(labels, minlength=classes).clip(1)).float()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(y)).split(64):
            gain = 10 ** (torch.empty(len(batch), 1, 1).uniform_(-12, 0) / 10)   # level must not decide the class
            logits = model.head(model.body(log_mel(power[batch] * gain)))
            loss = nn.functional.cross_entropy(logits, y[batch], weight=weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def embed_and_label(classifier: Classifier, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    embeddings = torch.cat([classifier.embed(b) for b in x.split(64)])
    return embeddings.numpy(), classifier.head(embeddings).argmax(1).numpy()


def per_class_accuracy(predicted: np.ndarray, labels: np.ndarray, classes: int) -> list[float | None]:
    return [float(np.mean(predicted[labels == c] == c)) if np.any(labels == c) else None for c in range(classes)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


def envelope_db(audio: np.ndarray, rate: int, frame_ms: float = 10.0) -> np.ndarray:
    """(N, frames): RMS per 10 ms frame over both channels, dB below each one-shot's peak."""
    frame = int(rate * frame_ms / 1000)
    frames = audio.shape[-1] // frame
    power = (audio[..., :frames * frame] ** 2).reshape(*audio.shape[:-1], frames, frame).mean(axis=(-1, 1))
    peak = np.max(np.abs(audio), axis=(1, 2))[:, None]
    return 10 * np.log10(np.maximum(power, 1e-20)) - 20 * np.log10(np.maximum(peak, 1e-10))


def decayed_windows(real: np.ndarray, labels: np.ndarray, rate: int, classes: int) -> dict[int, tuple[int, int]]:
    """Per class, the sample range after its real one-shots have decayed: from 50 ms after the
    median time their level last stood 40 dB below the peak, 200 ms long, ending at the latest
    50 ms before the end (the training one-shots' cut fade); the last 150 ms where they ring on."""
    length, frame = real.shape[-1], int(rate * 0.01)
    latest_end = length - int(0.05 * rate)
    windows = {}
    for c in range(classes):
        envelope = envelope_db(real[labels == c], rate)
        if not len(envelope):
            continue
        above = envelope > -40
        last_loud = np.where(above.any(axis=1), above.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1), 0)
        start = int((np.median(last_loud) + 1) * frame + 0.05 * rate)
        start = min(start, latest_end - int(0.15 * rate))
        windows[c] = (start, min(start + int(0.2 * rate), latest_end))
    return windows


def noise_floor_db(audio: np.ndarray, rate: int, window: tuple[int, int], above_hz: float | None = None) -> np.ndarray:
    """Per one-shot: RMS over the window, dB below its peak; of the band above `above_hz` if given."""
    peak = np.max(np.abs(audio), axis=(1, 2))
    if above_hz is not None:
        audio = signal.sosfiltfilt(signal.butter(8, above_hz, "highpass", fs=rate, output="sos"), audio, axis=-1)
    rms = np.sqrt(np.mean(audio[..., window[0]:window[1]] ** 2, axis=(1, 2)))
    return 20 * np.log10(np.maximum(rms, 1e-10) / np.maximum(peak, 1e-10))


def diversity(embeddings: np.ndarray, labels: np.ndarray) -> float:
    distances = []
    for c in np.unique(labels):
        e = embeddings[labels == c]
        if len(e) > 1:
            d = np.linalg.norm(e[:, None] - e[None], axis=-1)
            distances.append(d[np.triu_indices(len(e), 1)].mean())
    return float(np.mean(distances))


def nearest_training(embeddings: np.ndarray, training: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(embeddings[:, None] - training[None], axis=-1).min(axis=1)))


def generate_set(spec: dict, classes: list[str], per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(raw outputs, finished one-shots, class indices, seconds per one-shot)."""
    model = load_model(spec["model"]).to(spec.get("device", "cpu"))
    settings = sampling_for(spec, model.config)
    raw, labels = [], []
    start = time.perf_counter()
    for c, name in enumerate(classes):
        items = [Item(seed=10_000 * c + i, class_index=model.class_index(name)) for i in range(per_class)]
        raw.append(sample_batch(model, items, settings))
        labels += [c] * per_class
    seconds = (time.perf_counter() - start) / (per_class * len(classes))
    raw = np.concatenate(raw)
    finished = np.stack([finished_or_silence(a, model.config.sample_rate) for a in raw])
    return raw, finished, np.array(labels), seconds


def sampling_for(spec: dict, config) -> Settings:
    """The model file's own sampling settings, with what --eval names instead."""
    settings = model_settings(config)
    named = {key: cast(spec[key]) for key, cast in (("sampler", str), ("steps", int), ("guidance", float)) if key in spec}
    return replace(settings, **named)


def finished_or_silence(raw: np.ndarray, rate: int) -> np.ndarray:
    """The engine's post-processing; silence where the engine would reject the one-shot."""
    finished = finish_oneshot(raw, rate) if np.isfinite(raw).all() else None
    return np.zeros_like(raw) if finished is None else finished


def parse_eval(text: str) -> dict:
    label, _, rest = text.partition("=")
    fields = rest.split(",")
    spec = {"label": label, "model": fields[0]}
    spec.update(field.split("=", 1) for field in fields[1:])
    return spec


@dataclass
class Measured:
    label: str
    settings: str
    seconds: float | None
    labels: np.ndarray
    predicted: np.ndarray
    embeddings: np.ndarray
    raw: np.ndarray         # generated audio before post-processing: the model's own noise floor
    finished: np.ndarray    # after post-processing: what the instrument plays


def measure_model(spec: dict, classifier: Classifier, classes: list[str], per_class: int) -> Measured:
    raw, finished, labels, seconds = generate_set(spec, classes, per_class)
    embeddings, predicted = embed_and_label(classifier, finished)
    used = sampling_for(spec, read_config(spec["model"]))
    settings = f"{used.sampler}, {used.steps}, {used.guidance:g}"
    return Measured(spec["label"], settings, seconds, labels, predicted, embeddings, raw, finished)


def summary_row(m: Measured, real: Measured, training: np.ndarray) -> str:
    fd = "—" if m is real else f"{frechet_distance(m.embeddings, real.embeddings):.1f}"
    seconds = "" if m.seconds is None else f"{m.seconds:.2f}"
    return (f"| {m.label} | {m.settings} | {len(m.labels)} | {seconds} | {np.mean(m.predicted == m.labels):.2f} | {fd} | "
            f"{diversity(m.embeddings, m.labels):.2f} | {nearest_training(m.embeddings, training):.2f} |")


def accuracy_row(m: Measured, classes: list[str]) -> str:
    cells = per_class_accuracy(m.predicted, m.labels, len(classes))
    return f"| {m.label} | " + " | ".join("" if a is None else f"{a:.2f}" for a in cells) + " |"


def class_floors(m: Measured, windows: dict, rate: int, played: bool = False) -> dict[int, tuple[float, float]]:
    """Per class: median (level, level above 8 kHz) in dB below the peak, over the class's window;
    of the model's raw output, or of what is played."""
    floors = {}
    for c, window in windows.items():
        audio = (m.finished if played else m.raw)[m.labels == c]
        if len(audio):
            floors[c] = (float(np.median(noise_floor_db(audio, rate, window))),
                         float(np.median(noise_floor_db(audio, rate, window, above_hz=8000))))
    return floors


def floor_row(m: Measured, windows: dict, rate: int, classes: list[str], played: bool = False) -> str:
    floors = class_floors(m, windows, rate, played)
    cells = [f"{floors[c][0]:.0f} / {floors[c][1]:.0f}" if c in floors else "" for c in range(len(classes))]
    return f"| {m.label} | " + " | ".join(cells) + " |"


def gate_loss_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Per one-shot: how much of its energy the tail gate takes, in dB (0: none)."""
    kept = [np.sum(tail_gate(a, rate) ** 2) / max(np.sum(a ** 2), 1e-30) for a in audio]
    return 10 * np.log10(np.maximum(kept, 1e-30))


def gate_line(split: str, audio: np.ndarray, rate: int) -> str:
    loss = gate_loss_db(audio, rate)
    return (f"- tail gate on the {len(loss)} real {split} one-shots: acts on {np.mean(loss < -1e-6):.0%}; energy taken: "
            f"median {-np.median(loss):.3f} dB, 99th percentile {-np.percentile(loss, 1):.3f} dB, most {-loss.min():.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="dataset with held-out (eval) kits")
    parser.add_argument("--eval", action="append", default=[], type=parse_eval,
                        help="LABEL=MODEL[,sampler=S][,steps=N][,guidance=G][,per_class=K][,device=D]; repeatable")
    parser.add_argument("--per-class", type=int, default=8)
    args = parser.parse_args()

    manifest = read_manifest(args.data)
    if not manifest.split("eval"):
        parser.error(f"{args.data} has no held-out kit: build it with `noisepad dataset ... --hold-out KIT`")
    train_audio, train_labels = load_split(args.data, manifest, "train")
    real_audio, real_labels = load_split(args.data, manifest, "eval")
    rate, classes = manifest.sample_rate, manifest.classes
    classifier = train_classifier(train_audio, train_labels, rate, len(classes))
    train_embeddings, _ = embed_and_label(classifier, train_audio)
    gate_lines = [gate_line("training", train_audio, rate)]
    del train_audio
    real_embeddings, real_predicted = embed_and_label(classifier, real_audio)
    real = Measured("held-out real kits", "", None, real_labels, real_predicted, real_embeddings, real_audio, real_audio)
    gate_lines.append(gate_line("held-out", real_audio, rate))
    windows = decayed_windows(real_audio, real_labels, rate, len(classes))
    measured = [real] + [measure_model(spec, classifier, classes, int(spec.get("per_class", args.per_class))) for spec in args.eval]

    held_out = sorted({i["group"] for i in manifest.split("eval")})
    print(f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"held-out kits: {', '.join(held_out)} ({len(real_labels)} one-shots); classifier trained on "
          f"{len(train_labels)} one-shots of the other kits; {args.per_class} generated per class.\n")
    print("| one-shots | sampler, steps, guidance | n | s per one-shot | accuracy | FD | diversity | nearest training |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(summary_row(m, real, train_embeddings) for m in measured))
    print("\nAccuracy by class (real: the classifier on the held-out kits; generated: labelled as the class asked for)\n")
    print("| one-shots | " + " | ".join(classes) + " |\n|---|" + "---|" * len(classes))
    print("\n".join(accuracy_row(m, classes) for m in measured))
    print("\nNoise floor by class: level / above 8 kHz, dB below the peak (median), over the window after the "
          "real one-shots of the class have decayed; generated measured before post-processing\n")
    print("| one-shots | " + " | ".join(f"{classes[c]} {a / rate:.2f}-{b / rate:.2f} s" for c, (a, b) in sorted(windows.items())) + " |")
    print("|---|" + "---|" * len(windows))
    print("\n".join(floor_row(m, windows, rate, classes) for m in measured))
    print("\nThe same, generated as the instrument plays it: after post-processing, the tail gate included\n")
    print("| one-shots | " + " | ".join(classes[c] for c in sorted(windows)) + " |")
    print("|---|" + "---|" * len(windows))
    print("\n".join(floor_row(m, windows, rate, classes, played=True) for m in measured))
    print("\n" + "\n".join(gate_lines))


if __name__ == "__main__":
    main()
