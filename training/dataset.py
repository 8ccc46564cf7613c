"""Training sets: one-shots from folders of audio files, Hydrogen drumkits and SoundFonts.

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

from engine.errors import InputError, error_line
from training import hydrogen, soundfont
from training.classes import class_for_name, class_order, folder_class
from training.oneshot import OneShotFormat, Unusable, prepare

FORMAT = "noisepad-dataset"
MANIFEST = "dataset.json"
AUDIO_SUFFIXES = {".wav", ".flac", ".aif", ".aiff", ".ogg"}


@dataclass(frozen=True)
class Candidate:
    source: Path
    class_name: str
    group: str                         # the kit or folder
    origin: str                        # the source it came from, as named on the command line
    description: str = ""              # what `source` is, where it is a rendering


@dataclass
class Manifest:
    sample_rate: int
    length: int
    channels: int
    classes: list[str]
    items: list[dict]                  # {"path", "class", "group", "origin", "source", "split"}
    licenses: dict[str, str] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    format: str = FORMAT

    def split(self, name: str) -> list[dict]:
        return [item for item in self.items if item["split"] == name]


def find_candidates(sources: list[Path], scratch: Path, frames: int) -> tuple[list[Candidate], dict[str, str], list[dict]]:
    """Every audio file the sources name (SoundFont kits rendered into `scratch`), with its
    class and group; kits' licenses; and what was left out because the class table does not
    know it."""
    candidates, licenses, skipped = [], {}, []
    for source in sources:
        if soundfont.is_soundfont(source):
            font = soundfont.read_font(source)
            for kit in font.kits:
                licenses[_font_kit(font, kit)] = font.license
            candidates += _font_candidates(font, scratch / f"{len(candidates):06d}", frames)
            continue
        if not source.is_dir():
            raise InputError(source, "not a folder, a drumkit or a SoundFont (.sf2, .sf3)")
        kits = [source] if hydrogen.is_drumkit(source) else sorted(p for p in source.iterdir() if hydrogen.is_drumkit(p))
        if kits:
            for folder in kits:
                kit = hydrogen.read_drumkit(folder)
                licenses[kit.name] = kit.license
                candidates += _kit_candidates(kit, source.name, skipped)
        else:
            candidates += _folder_candidates(source)
    return candidates, licenses, skipped


def _font_kit(font: soundfont.Font, kit: soundfont.Kit) -> str:
    return f"{font.path.stem} {kit.name}"


def _font_candidates(font: soundfont.Font, scratch: Path, frames: int) -> list[Candidate]:
    """Each hit of each kit as a WAV file in `scratch`."""
    found = []
    for k, kit in enumerate(font.kits):
        folder = scratch / f"kit{k:03d}"
        folder.mkdir(parents=True)
        audio = soundfont.render_kit(font, kit, folder)
        for hit, piece in zip(kit.hits, soundfont.cut_hits(audio, len(kit.hits), frames)):
            path = folder / f"{_safe(kit.name)}_note{hit.note}_vel{hit.velocity}.wav"
            soundfile.write(str(path), piece, soundfont.RENDER_RATE, subtype="FLOAT")
            found.append(Candidate(path, hit.class_name, _font_kit(font, kit), font.name,
                                   f"{font.path} kit '{kit.name}' note {hit.note} velocity {hit.velocity}"))
    return found


def _kit_candidates(kit: hydrogen.Drumkit, origin: str, skipped: list[dict]) -> list[Candidate]:
    found = []
    for instrument in kit.instruments:
        class_name = class_for_name(instrument.name)
        if class_name is None:
            skipped += [{"source": str(s), "reason": f"instrument '{instrument.name}' is in no class"} for s in instrument.samples]
            continue
        found += [Candidate(sample, class_name, kit.name, origin) for sample in instrument.samples]
    return found


def _folder_candidates(root: Path) -> list[Candidate]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            relative = path.relative_to(root)
            class_name = folder_class(relative.parts[0] if len(relative.parts) > 1 else root.name)
            found.append(Candidate(path, class_name, root.name, root.name))
    return found


def build_dataset(sources: list[Path], output: Path, shape: OneShotFormat = OneShotFormat(), hold_out: tuple[str, ...] = ()) -> Manifest:
    """Build the dataset in a temporary folder beside `output` and move it in place when done."""
    _check_output(output)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        render_frames = int(shape.length * soundfont.RENDER_RATE / shape.sample_rate) + 1024   # room for the onset to be trimmed
        candidates, licenses, skipped = find_candidates(sources, staging / ".renders", render_frames)
        groups = {c.group for c in candidates}
        unknown = [name for name in hold_out if name not in groups]
        if unknown:
            raise InputError(None, f"--hold-out {unknown[0]}: no such kit or folder (have {', '.join(sorted(groups))})")
        items = _write_items(candidates, staging, shape, hold_out, skipped)
        shutil.rmtree(staging / ".renders", ignore_errors=True)
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


def _write_items(candidates: list[Candidate], staging: Path, shape: OneShotFormat, hold_out, skipped: list[dict]) -> list[dict]:
    items, seen = [], set()
    for candidate in candidates:
        try:
            digest = hashlib.sha1(candidate.source.read_bytes()).hexdigest()
            if digest in seen:
                skipped.append({"source": candidate.description or str(candidate.source), "reason": "same file as one already included"})
                continue
            data, rate = soundfile.read(str(candidate.source), dtype="float32", always_2d=True)
            audio = prepare(data, rate, shape)
        except (OSError, RuntimeError, soundfile.LibsndfileError, Unusable, ValueError) as error:
            skipped.append({"source": candidate.description or str(candidate.source), "reason": error_line(error, last=True)})
            continue
        seen.add(digest)
        relative = Path(candidate.class_name) / f"{_safe(candidate.group)}__{_safe(candidate.source.stem)}_{digest[:6]}.flac"
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(staging / relative), audio.T, shape.sample_rate, subtype="PCM_24", format="FLAC")
        items.append({
            "path": relative.as_posix(), "class": candidate.class_name, "group": candidate.group, "origin": candidate.origin,
            "source": candidate.description or str(candidate.source), "split": "eval" if candidate.group in hold_out else "train",
        })
    return items


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
            raise InputError(folder / item["path"], f"cannot read ({error_line(error, last=True)})") from None
        if data.shape[1] != manifest.channels:
            raise InputError(folder / item["path"], f"has {data.shape[1]} channels, the dataset {manifest.channels}")
        frames = min(manifest.length, data.shape[0])
        audio[i, :, :frames] = data[:frames].T
    labels = np.array([manifest.classes.index(item["class"]) for item in items], dtype=np.int64)
    return audio, labels


def summary(manifest: Manifest) -> str:
    """One-shots per class: for each source (with its number of kits), then by split."""
    classes = manifest.classes
    rows = []
    for origin in dict.fromkeys(i.get("origin", i["group"]) for i in manifest.items):
        items = [i for i in manifest.items if i.get("origin", i["group"]) == origin]
        rows.append((origin, len({i["group"] for i in items}), Counter(i["class"] for i in items)))
    for split in ("train", "eval"):
        items = manifest.split(split)
        rows.append((f"= {split}", len({i["group"] for i in items}), Counter(i["class"] for i in items)))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'source':<{width}}{'kits':>5}" + "".join(f"{c[:12]:>13}" for c in classes) + f"{'total':>7}"]
    for name, kits, counts in rows:
        lines.append(f"{name:<{width}}{kits:>5}" + "".join(f"{counts[c]:>13}" for c in classes) + f"{sum(counts.values()):>7}")
    if manifest.skipped:
        lines.append(f"skipped {len(manifest.skipped)} files:")
        lines += [f"  {s['source']}: {s['reason']}" for s in manifest.skipped]
    return "\n".join(lines)
