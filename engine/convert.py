"""Import the seed's checkpoints: a PyTorch Lightning `.ckpt` beside a Hydra `config.yaml`.

The `.ckpt` is read with `torch.load(weights_only=True)`, which only rebuilds tensors and plain
containers: a checkpoint that needs any other class is refused before any of its code runs.
"""

from __future__ import annotations

import inspect
import pickle
import re
import zipfile
from pathlib import Path

import torch
import yaml
from audio_diffusion_pytorch import UNetV0

from engine.errors import InputError
from engine.modelconfig import ModelConfig
from engine.modelfile import DrumDiffusion, save_model

# Where the seed's LightningModule keeps its nets, best first: the EMA copy, then the trained one.
NET_PREFIXES = ("model_ema.ema_model.net.", "model.net.")
UNET_ARGUMENTS = set(inspect.signature(UNetV0).parameters) - {"dim"}
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
PLAIN_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*$")


def config_from_hydra(path: str | Path) -> ModelConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "config file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError(path, f"not a readable YAML config ({type(error).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or not isinstance(data["model"].get("model"), dict):
        raise InputError(path, "no 'model: model:' section with the UNet settings")
    section = data["model"]["model"]
    unet = {key: _resolve(value, data, path, f"model.model.{key}") for key, value in section.items() if key in UNET_ARGUMENTS}
    top = {key: _resolve(data.get(key), data, path, key) for key in ("sampling_rate", "length", "channels")}
    missing = [key for key, value in top.items() if value is None]
    if missing:
        raise InputError(path, f"config lacks {', '.join(missing)}")
    try:
        config = ModelConfig(unet=unet, sample_rate=int(top["sampling_rate"]), length=int(top["length"]), channels=int(top["channels"]))
    except (TypeError, ValueError):
        raise InputError(path, "sampling_rate, length and channels must be whole numbers") from None
    config.check(path)
    return config


def _resolve(value, data: dict, path: Path, key: str):
    """Follow a plain `${other.key}` interpolation. Resolvers such as `${oc.env:X}` cannot be
    followed here; they are an error only in a value the model needs."""
    for _ in range(8):
        match = INTERPOLATION.fullmatch(value) if isinstance(value, str) else None
        if not match:
            if isinstance(value, str) and INTERPOLATION.search(value):
                break
            return value
        if not PLAIN_REFERENCE.match(match.group(1)):
            break
        value = data
        for part in match.group(1).split("."):
            value = value.get(part) if isinstance(value, dict) else None
    raise InputError(path, f"'{key}' is an interpolation that cannot be resolved")


def load_checkpoint_net(path: str | Path) -> dict[str, torch.Tensor]:
    """The EMA net's weights if the checkpoint has them, else the trained net's."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if unsafe:
            raise InputError(path, f"refused: it needs {unsafe.group(1)}, and unpickling that could run code from the file") from None
        raise InputError(path, f"not a readable PyTorch checkpoint ({str(error).strip().splitlines()[-1]})") from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise InputError(path, f"not a readable PyTorch checkpoint ({str(error).strip().splitlines()[0]})") from None
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InputError(path, "checkpoint holds no state_dict")
    for prefix in NET_PREFIXES:
        net = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
        if net:
            return net
    raise InputError(path, f"checkpoint has no weights under {' or '.join(NET_PREFIXES)}")


def convert(checkpoint: str | Path, config: str | Path, output: str | Path) -> DrumDiffusion:
    model_config = config_from_hydra(config)
    net = load_checkpoint_net(checkpoint)
    model = DrumDiffusion(model_config)
    model.load_weights({f"net.{key}": value.float() for key, value in net.items()}, checkpoint)
    save_model(model, output)
    return model
