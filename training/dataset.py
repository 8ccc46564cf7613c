"""Training sets: one-shots from folders of audio files and from Hydrogen drumkits.

A dataset is a folder of 24-bit FLAC one-shots, all at the model's rate, channels and length,
plus `dataset.json` listing each one's class, group (the kit or folder it came from) and split.
A group held out with `--hold-out` is the evaluation split; everything else trains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from engine.errors import InputError
from training import hydrogen
from training.classes import class_for_name, class_order, folder_class
from training.oneshot import Shape, Unusable, prepare

FORMAT = "noisepad-dataset"
MANIFEST = "dataset.json"
AUDIO_SUFFIXES = {".wav", ".flac", ".aif", ".aiff", ".ogg"}


@dataclass(frozen=True)
class Candidate:
    source: Path
    class_name: str
    group: str


@dataclass
class Manifest:
    sample_rate: int
    length: int
    channels: int
    classes: list[str]
    items: list[dict]                  # {"path", "class", "group", "source", "split"}
    licenses: dict[str, str] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    format: str = FORMAT

    def split(self, name: str) -> list[dict]:
        return [item for item in self.items if item["split"] == name]


def find_candidates(sources: list[Path]) -> tuple[list[Candidate], dict[str, str], list[dict]]:
    """Every audio file the sources name, with its class and group; kits' licenses; and the
    instruments that were left out because the class table does not know them."""
    candidates, licenses, skipped = [], {}, []
    for source in sources:
        if not source.is_dir():
            raise InputError(source, "not a folder")
        kits = [source] if hydrogen.is_drumkit(source) else sorted(p for p in source.iterdir() if hydrogen.is_drumkit(p))
        if kits:
            for folder in kits:
                kit = hydrogen.read_drumkit(folder)
                licenses[kit.name] = kit.license
                candidates += _kit_candidates(kit, skipped)
        else:
            candidates += _folder_candidates(source)
    return candidates, licenses, skipped


def _kit_candidates(kit: hydrogen.Drumkit, skipped: list[dict]) -> list[Candidate]:
    found = []
    for instrument in kit.instruments:
        class_name = class_for_name(instrument.name)
        if class_name is None:
            skipped += [{"source": str(s), "reason": f"instrument '{instrument.name}' is in no class"} for s in instrument.samples]
            continue
        found += [Candidate(sample, class_name, kit.name) for sample in instrument.samples]
    return found


def _folder_candidates(root: Path) -> list[Candidate]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            relative = path.relative_to(root)
            class_name = folder_class(relative.parts[0] if len(relative.parts) > 1 else root.name)
            found.append(Candidate(path, class_name, root.name))
    return found


def build_dataset(sources: list[Path], output: Path, shape: Shape = Shape(), hold_out: tuple[str, ...] = ()) -> Manifest:
    """Build the dataset in a temporary folder beside `output` and move it in place when done."""
    candidates, licenses, skipped = find_candidates(sources)
    groups = {c.group for c in candidates}
    unknown = [name for name in hold_out if name not in groups]
    if unknown:
        raise InputError(None, f"--hold-out {unknown[0]}: no such kit or folder (have {', '.join(sorted(groups))})")
    _check_output(output)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        items = _write_items(candidates, staging, shape, hold_out, skipped)
        if not items:
            raise InputError(None, "empty dataset: no readable one-shot in " + ", ".join(str(s) for s in sources))
        manifest = Manifest(
            sample_rate=shape.sample_rate, length=shape.length, channels=shape.channels,
            classes=list(class_order({item["class"] for item in items})), items=items,
            licenses={g: l for g, l in licenses.items() if g in {i["group"] for i in items}}, skipped=skipped,
        )
        (staging / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1) + "\n")
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return manifest


def _check_output(output: Path) -> None:
    if not output.parent.is_dir():
        raise InputError(output, "parent folder does not exist")
    if output.exists() and not output.is_dir():
        raise InputError(output, "is a file, not a folder")
    if output.exists() and any(output.iterdir()) and not (output / MANIFEST).is_file():
        raise InputError(output, "exists and is not a dataset; will not overwrite it")


def _write_items(candidates: list[Candidate], staging: Path, shape: Shape, hold_out, skipped: list[dict]) -> list[dict]:
    items, seen = [], set()
    for candidate in candidates:
        try:
            digest = hashlib.sha1(candidate.source.read_bytes()).hexdigest()
            if digest in seen:
                skipped.append({"source": str(candidate.source), "reason": "same file as one already included"})
                continue
            data, rate = soundfile.read(str(candidate.source), dtype="float32", always_2d=True)
            audio = prepare(data, rate, shape)
        except (OSError, RuntimeError, soundfile.LibsndfileError, Unusable, ValueError) as error:
            skipped.append({"source": str(candidate.source), "reason": _reason(error)})
            continue
        seen.add(digest)
        relative = Path(candidate.class_name) / f"{_safe(candidate.group)}__{_safe(candidate.source.stem)}_{digest[:6]}.flac"
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(staging / relative), audio.T, shape.sample_rate, subtype="PCM_24", format="FLAC")
        items.append({
            "path": relative.as_posix(), "class": candidate.class_name, "group": candidate.group,
            "source": str(candidate.source), "split": "eval" if candidate.group in hold_out else "train",
        })
    return items


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found"
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in name)


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(folder, f"not a dataset (no {MANIFEST}; build one with `noisepad dataset`)")
    try:
        data = json.loads(path.read_text())
        manifest = Manifest(**data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        raise InputError(path, f"not a valid dataset manifest ({error})") from None
    if manifest.format != FORMAT:
        raise InputError(path, "not a noisepad dataset manifest")
    if not manifest.items:
        raise InputError(path, "empty dataset")
    for item in manifest.items:
        if not isinstance(item, dict) or not {"path", "class", "split"} <= set(item) or item["class"] not in manifest.classes:
            raise InputError(path, f"malformed item {item!r}")
    return manifest


def load_split(folder: Path, manifest: Manifest, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(audio float32 (N, channels, length), class index int64 (N,)) of one split."""
    items = manifest.split(split)
    audio = np.zeros((len(items), manifest.channels, manifest.length), dtype=np.float32)
    for i, item in enumerate(items):
        try:
            data, _ = soundfile.read(str(folder / item["path"]), dtype="float32", always_2d=True)
        except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
            raise InputError(folder / item["path"], f"cannot read ({_reason(error)})") from None
        if data.shape[1] != manifest.channels:
            raise InputError(folder / item["path"], f"has {data.shape[1]} channels, the dataset {manifest.channels}")
        frames = min(manifest.length, data.shape[0])
        audio[i, :, :frames] = data[:frames].T
    labels = np.array([manifest.classes.index(item["class"]) for item in items], dtype=np.int64)
    return audio, labels


def summary(manifest: Manifest) -> str:
    lines = [f"{'class':<14}{'train':>7}{'eval':>7}"]
    for class_name in manifest.classes:
        counts = Counter(i["split"] for i in manifest.items if i["class"] == class_name)
        lines.append(f"{class_name:<14}{counts['train']:>7}{counts['eval']:>7}")
    lines.append(f"{'total':<14}{len(manifest.split('train')):>7}{len(manifest.split('eval')):>7}")
    if manifest.skipped:
        lines.append(f"skipped {len(manifest.skipped)} files:")
        lines += [f"  {s['source']}: {s['reason']}" for s in manifest.skipped]
    return "\n".join(lines)
