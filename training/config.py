"""Training configs: a model section (the UNet) and a train section (the recipe), from YAML.

`NAME` means training/configs/NAME.yaml; anything else is a path.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from engine.errors import InputError
from engine.modelconfig import ModelConfig

CONFIG_FOLDER = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Recipe:
    batch_size: int = 8
    accumulate: int = 1              # gradient accumulation: optimizer steps every N batches
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    ema_decay: float = 0.999
    cfg_dropout: float = 0.1         # class embedding replaced by the learned "no class" one
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

    def model_config(self, classes: list[str]) -> ModelConfig:
        """The engine config for these classes: class-conditional unless there is only one."""
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
        )


def config_path(name_or_file: str) -> Path:
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return CONFIG_FOLDER / f"{name_or_file}.yaml"


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
    return config_from_dict(data, path)


def config_from_dict(data, path: str | Path) -> TrainConfig:
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "unet" not in data["model"]:
        raise InputError(path, "model: missing (a training config needs model.unet)")
    unknown = set(data) - {"model", "train"}
    if unknown:
        raise InputError(path, f"{sorted(unknown)[0]}: unknown section (expected model, train)")
    train = data.get("train") or {}
    names = {f.name: f.type for f in fields(Recipe)}
    for key, value in train.items():
        if key not in names:
            raise InputError(path, f"train.{key}: unknown setting (known: {', '.join(names)})")
    try:
        recipe = Recipe(**{k: type(getattr(Recipe(), k))(v) for k, v in train.items()})
    except (TypeError, ValueError) as error:
        raise InputError(path, f"train: {error}") from None
    config = TrainConfig(name=Path(path).stem, model=data["model"], recipe=recipe)
    config.model_config(["a", "b"]).check(path)
    return config
