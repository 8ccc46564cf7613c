"""Pools persist to a cache folder, so a restart plays at once.

One .npz per pad, named by the pad's cache key (model file and sound settings), holding its
filled slots' audio, valid frames, seeds, which were still fresh, and what each was made
with (the live knobs' values, and whether it came from a starter), so a hit can be recalled. Files are written to a
temporary name and renamed, so a reader never sees half a file. A file that cannot be read or
does not fit is ignored (a cache is only a head start) and replaced at the next save.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import platformdirs

from engine.errors import InputError, error_line
from engine.modelconfig import file_hash
from engine.outfile import replacing
from engine.settings import MAX_SEED
from engine.pads import PadSpec
from engine.pool import Made, PadSnapshot, Pools

FORMAT_VERSION = 2
log = logging.getLogger("noisepad.cache")


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("noisepad")) / "pools"


def cache_files(specs: list[PadSpec], cache_dir: str | Path | None = None) -> list[Path | None]:
    """The cache file of each pad; None where the pad's files cannot be read. Pads with the same
    sound settings get numbered files, so each keeps one-shots of its own."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    seen: dict[str, int] = {}
    paths: list[Path | None] = []
    for spec in specs:
        try:
            key = spec.cache_key(model_hash(Path(spec.model)))
        except OSError as error:
            log.warning("pad %s: no cache (%s)", spec.name, error)
            paths.append(None)
            continue
        count = seen.get(key, 0)
        seen[key] = count + 1
        paths.append(folder / (f"{key}.npz" if count == 0 else f"{key}-{count}.npz"))
    return paths


_hashes: dict[tuple, str] = {}


def model_hash(path: Path) -> str:
    """file_hash, remembered while the file is unchanged: models can be large and the cache is
    saved every few seconds."""
    status = path.stat()
    key = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    if key not in _hashes:
        _hashes[key] = file_hash(path)
    return _hashes[key]


def save_pools(pools: Pools, specs: list[PadSpec], cache_dir: str | Path | None = None) -> int:
    """Write every pad's filled slots; the number of one-shots saved. Any thread but the audio
    callback."""
    saved = 0
    for p, path in enumerate(cache_files(specs, cache_dir)):
        snapshot = pools.snapshot(p)
        if path is None or len(snapshot.seeds) == 0:
            continue
        try:
            _write_atomically(path, snapshot)
        except (OSError, InputError) as error:
            log.warning("pad %s: cannot write cache %s (%s)", specs[p].name, path, error_line(error))
            continue
        saved += len(snapshot.seeds)
    return saved


def load_pools(pools: Pools, specs: list[PadSpec], cache_dir: str | Path | None = None) -> list[int]:
    """Fill empty slots from the cache, fresh ones fresh again; one-shots loaded per pad. Only
    before the audio callback and the generator start."""
    loaded = []
    for p, path in enumerate(cache_files(specs, cache_dir)):
        snapshot = _read(path, pools.audio[p].shape[1:]) if path is not None and path.is_file() else None
        count = 0
        if snapshot is not None:
            # fresh ones first, so a smaller pool keeps the never-heard one-shots
            for i in np.argsort(~snapshot.fresh, kind="stable"):
                audio = snapshot.audio[i, :, : snapshot.frames[i]]
                if not pools.preload(p, audio, int(snapshot.seeds[i]), bool(snapshot.fresh[i]), snapshot.made[i]):
                    break
                count += 1
        loaded.append(count)
    return loaded


def _write_atomically(path: Path, snapshot: PadSnapshot) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, commit=True) as temp, open(temp, "wb") as file:
        np.savez(file, version=np.int64(FORMAT_VERSION), audio=snapshot.audio,
                 frames=snapshot.frames, seeds=snapshot.seeds, fresh=snapshot.fresh,
                 knobs=np.array([(m.strength, m.guidance, m.tune) for m in snapshot.made], np.float64).reshape(-1, 3),
                 batch=np.array([(m.batch, m.position, m.threads) for m in snapshot.made], np.int64).reshape(-1, 3),
                 origin=np.array([m.origin for m in snapshot.made], np.int64))


def _read(path: Path, slot_shape: tuple[int, int]) -> PadSnapshot | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["version"])
            if version != FORMAT_VERSION:
                log.warning("ignoring cache file %s: format version %d, expected %d", path, version, FORMAT_VERSION)
                return None
            snapshot = PadSnapshot(data["audio"], data["frames"], data["seeds"], data["fresh"], _made(data))
    except OSError as error:
        log.warning("ignoring unreadable cache file %s (%s)", path, error.strerror or error)
        return None
    except Exception:  # noqa: BLE001 - a damaged zip, missing arrays, pickled data: it is only a cache
        log.warning("ignoring unreadable cache file %s (not a noisepad cache, or damaged)", path)
        return None
    problem = _misfit(snapshot, slot_shape)
    if problem:
        log.warning("ignoring cache file %s: %s", path, problem)
        return None
    return snapshot


def _made(data) -> tuple[Made, ...]:
    knobs, batch, origin = data["knobs"], data["batch"], data["origin"]
    if knobs.shape[1:] != (3,) or batch.shape[1:] != (3,) or not len(knobs) == len(batch) == len(origin):
        raise ValueError("made-with arrays do not match")
    return tuple(Made(float(k[0]), float(k[1]), *map(int, b), int(o), float(k[2]))
                 for k, b, o in zip(knobs, batch, origin))


def _misfit(snapshot: PadSnapshot, slot_shape: tuple[int, int]) -> str | None:
    audio, frames, seeds, fresh = snapshot.audio, snapshot.frames, snapshot.seeds, snapshot.fresh
    count = len(audio)
    if audio.dtype != np.float32 or audio.ndim != 3 or audio.shape[1:] != tuple(slot_shape):
        return f"audio {audio.dtype} {audio.shape} does not fit slots of {tuple(slot_shape)}"
    if frames.shape != (count,) or seeds.shape != (count,) or fresh.shape != (count,) or fresh.dtype != bool:
        return "frames, seeds and fresh flags do not match the audio"
    if len(snapshot.made) != count:
        return "what the one-shots were made with does not match the audio"
    if frames.dtype.kind != "i" or seeds.dtype.kind != "i" or np.any(frames < 1) or np.any(frames > slot_shape[1]):
        return "frame counts out of range"
    if np.any(seeds < 0) or np.any(seeds > MAX_SEED):
        return "seeds out of range"
    if not np.all(np.isfinite(audio)):
        return "audio holds NaN or infinite samples"
    return None
