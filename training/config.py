"""Training configs: a model section (the UNet) and a train section (the recipe), from YAML.

`NAME` means training/configs/NAME.yaml; anything else is a path. A config with `base: NAME`
takes that config's model section and its train settings, and changes the settings it names;
NAME is another config beside it (NAME.yaml in its folder) or else a built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from engine.errors import InputError, error_line
from engine.modelconfig import ModelConfig

CONFIG_FOLDER = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Recipe:
    batch_size: int = 8
    accumulate: int = 1              # gradient accumulation: optimizer steps every N batches
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    decay_steps: int = 0             # > 0: the rate falls on a half cosine to final_lr_fraction over this many steps
    final_lr_fraction: float = 0.1
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1         # class embedding replaced by the learned "no class" one
    noise_shift: float = 1.0         # noise levels drawn with tan(t*pi/2) multiplied by this (training/objective.py)
    min_snr_gamma: float = 0.0       # > 0: min-SNR-gamma loss weighting
    augment_gain_db: float = 0.0     # each one-shot made up to this many dB quieter at random
    augment_pitch: float = 0.0       # and resampled by up to this many semitones up or down
    gpu_precision: str = "bf16-mixed"
    steps: int = 50000
    checkpoint_every: int = 500
    validate_every: int = 500
    sample_every: int = 1000
    sample_steps: int = 12
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    name: str
    model: dict                      # sample_rate, length, channels, unet, conditioning
    recipe: Recipe

    def model_config(self, classes: list[str], data_std: float = 0.5) -> ModelConfig:
        """The engine config for these classes (class-conditional unless there is only one) and
        this data; `data_scale: auto` in the config scales the data to a standard deviation of 0.5."""
        unet = dict(self.model["unet"])
        conditional = len(classes) > 1
        if conditional:
            conditioning = self.model.get("conditioning") or {}
            depth = len(unet["channels"])
            unet.update(
                use_embedding_cfg=True, embedding_max_length=1,
                embedding_features=int(conditioning.get("embedding_features", 64)),
                cross_attentions=list(conditioning.get("cross_attentions", unet.get("attentions", [0] * depth))),
            )
        return ModelConfig(
            unet=unet, sample_rate=int(self.model.get("sample_rate", 44100)), length=int(self.model.get("length", 32768)),
            channels=int(self.model.get("channels", 2)), classes=tuple(classes) if conditional else (),
            data_scale=self._data_scale(data_std),
        )

    def _data_scale(self, data_std: float) -> float:
        setting = self.model.get("data_scale", 1.0)
        if setting == "auto":
            return round(0.5 / max(data_std, 1e-4), 3)
        return float(setting)


def config_path(name_or_file: str) -> Path:
    built_in = CONFIG_FOLDER / f"{name_or_file}.yaml"
    if Path(name_or_file).suffix not in (".yaml", ".yml") and built_in.is_file():
        return built_in
    return Path(name_or_file)


def available() -> list[str]:
    return sorted(p.stem for p in CONFIG_FOLDER.glob("*.yaml"))


def load_config(name_or_file: str) -> TrainConfig:
    path = config_path(name_or_file)
    if not path.is_file():
        raise InputError(path, f"no such training config (built in: {', '.join(available())})")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError(path, f"not readable YAML ({str(error).splitlines()[0]})") from None
    if isinstance(data, dict) and "base" in data:
        data = _on_base(data, path)
    return config_from_dict(data, path)


def _on_base(data: dict, path: Path) -> dict:
    base_name = data["base"]
    if not isinstance(base_name, str):
        raise InputError(path, f"base: must name another config, not {base_name!r}")
    beside = path.parent / f"{base_name}.yaml"
    base_path = beside if beside.is_file() and beside.resolve() != path.resolve() else config_path(base_name)
    if base_path.resolve() == path.resolve():
        raise InputError(path, f"base: must name another config, not {base_name!r}")
    base = load_config(str(base_path))
    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise InputError(path, "train must be a mapping")
    merged = {key: value for key, value in data.items() if key != "base"}
    merged.setdefault("model", base.model)
    merged["train"] = {**{f.name: getattr(base.recipe, f.name) for f in fields(Recipe)}, **train}
    return merged


def config_from_dict(data, path: str | Path) -> TrainConfig:
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "unet" not in data["model"]:
        raise InputError(path, "model: missing (a training config needs model.unet)")
    unknown = set(data) - {"model", "train"}
    if unknown:
        raise InputError(path, f"{sorted(unknown)[0]}: unknown section (expected model, train)")
    train = data.get("train") or {}
    if not isinstance(train, dict) or not isinstance(data["model"]["unet"], dict):
        raise InputError(path, "train and model.unet must be mappings")
    recipe = Recipe(**{key: _setting(path, key, value) for key, value in train.items()})
    try:
        model_config = TrainConfig(Path(path).stem, data["model"], recipe).model_config(["a", "b"])
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(path, f"model: incomplete or malformed ({error_line(error)})") from None
    model_config.check(path)
    return TrainConfig(name=Path(path).stem, model=data["model"], recipe=recipe)


LIMITS = {   # setting: (lowest, highest) allowed
    "batch_size": (1, 4096), "accumulate": (1, 4096), "learning_rate": (0.0, 1.0), "weight_decay": (0.0, 1.0),
    "warmup_steps": (0, 10**9), "decay_steps": (0, 10**9), "final_lr_fraction": (0.0, 1.0), "ema_decay": (0.0, 1.0),
    "cfg_dropout": (0.0, 1.0), "noise_shift": (0.01, 100.0), "min_snr_gamma": (0.0, 1000.0),
    "augment_gain_db": (0.0, 60.0), "augment_pitch": (0.0, 12.0), "steps": (1, 10**9),
    "checkpoint_every": (1, 10**9), "validate_every": (1, 10**9), "sample_every": (1, 10**9),
    "sample_steps": (1, 1000), "seed": (0, 2**31 - 1),
}
GPU_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


def _setting(path, key: str, value):
    default = getattr(Recipe(), key, None)
    if default is None:
        raise InputError(path, f"train.{key}: unknown setting (known: {', '.join(f.name for f in fields(Recipe))})")
    if isinstance(default, str):
        if value not in GPU_PRECISIONS:
            raise InputError(path, f"train.{key}: one of {', '.join(GPU_PRECISIONS)}, not {value!r}")
        return value
    kind = type(default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise InputError(path, f"train.{key}: must be {'a whole number' if kind is int else 'a number'}, not {value!r}")
    low, high = LIMITS[key]
    if not low <= value <= high:
        raise InputError(path, f"train.{key}: must lie in [{low}, {high}], not {value}")
    return kind(value)
