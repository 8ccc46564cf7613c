"""Model files: one safetensors file per model, its config in the file's metadata.

The network is audio-diffusion-pytorch's `DiffusionModel(net_t=UNetV0, diffusion_t=VDiffusion)`;
class-conditional models add a learned class embedding fed to UNetV0's embedding conditioning
(classifier-free guidance). Loading reads tensors and JSON only: it never unpickles anything.
"""

from __future__ import annotations

from pathlib import Path

import torch
from audio_diffusion_pytorch import DiffusionModel, UNetV0, VDiffusion, VSampler
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from engine.errors import InputError, error_line
from engine.modelconfig import FORMAT, FORMAT_VERSION, ModelConfig, config_from_metadata
from engine.outfile import replacing

class DrumDiffusion(nn.Module):
    """A v-diffusion UNet plus, for class-conditional models, a learned class embedding."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.diffusion = DiffusionModel(
            net_t=UNetV0, diffusion_t=VDiffusion, sampler_t=VSampler, dim=1, **config.unet
        )
        self.class_embedding = (
            nn.Embedding(len(config.classes), config.unet["embedding_features"]) if config.conditional else None
        )

    @property
    def net(self) -> nn.Module:
        return self.diffusion.net

    def class_index(self, name: str | None) -> int | None:
        """Index of a class name; None for an unconditional model. Unknown names are an error."""
        if not self.config.conditional:
            if name is not None:
                raise InputError(None, f"class '{name}' given but the model is unconditional")
            return None
        if name is None:
            raise InputError(None, f"the model is class-conditional: choose a class ({', '.join(self.config.classes)})")
        if name not in self.config.classes:
            raise InputError(None, f"unknown class '{name}' (the model has {', '.join(self.config.classes)})")
        return self.config.classes.index(name)

    def conditioning(self, class_ids: torch.Tensor | None, guidance: float = 1.0) -> dict:
        """Keyword arguments for the net: class embedding and classifier-free guidance scale."""
        if self.class_embedding is None:
            return {}
        embedding = self.class_embedding(class_ids)[:, None, :]
        return {"embedding": embedding, "embedding_scale": float(guidance)}

    def velocity(self, x: torch.Tensor, t: torch.Tensor, **conditioning) -> torch.Tensor:
        """The v-prediction at noise level t in [0, 1] (one value per item)."""
        return self.net(x, t, **conditioning)

    def weights(self, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        tensors = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        if self.class_embedding is not None:
            tensors["class_embedding.weight"] = self.class_embedding.weight
        # clone: UNetV0's time MLP repeats one layer, and safetensors refuses shared storage
        return {k: v.detach().to("cpu", dtype).clone() for k, v in tensors.items()}

    def load_weights(self, tensors: dict[str, torch.Tensor], source: str | Path | None = None) -> None:
        net = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        expected = self.net.state_dict()
        missing = sorted(set(expected) - set(net))
        unexpected = sorted(set(net) - set(expected))
        wrong = sorted(k for k in set(expected) & set(net) if expected[k].shape != net[k].shape)
        if missing or unexpected or wrong:
            raise InputError(source, "weights do not fit the config: " + _describe_mismatch(missing, unexpected, wrong))
        self.net.load_state_dict({k: v.float() for k, v in net.items()})
        if self.class_embedding is not None:
            weight = tensors.get("class_embedding.weight")
            if weight is None or weight.shape != self.class_embedding.weight.shape:
                raise InputError(source, "weights do not fit the config: class embedding missing or of the wrong shape")
            self.class_embedding.weight.data.copy_(weight.float())


def copy_model(model: DrumDiffusion) -> DrumDiffusion:
    """A model of its own with the same weights, device and dtype. Not copy.deepcopy: a_unet's
    blocks forward through closures over their submodules, so a deep copy would still run (and
    train) the original's layers."""
    parameter = next(model.parameters())
    clone = DrumDiffusion(model.config).to(device=parameter.device, dtype=parameter.dtype)
    clone.load_state_dict(model.state_dict())
    return clone.train(model.training)


def _describe_mismatch(missing: list[str], unexpected: list[str], wrong: list[str]) -> str:
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
    return ", ".join(parts)


def save_model(model: DrumDiffusion, path: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write a model file atomically: a crash never leaves a half-written model behind.

    `dtype=torch.float16` halves the file (shipped models must fit in 16 MiB); loading
    always computes in the dtype asked of `load_model`."""
    path = Path(path)
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": model.config.to_json()}
    with replacing(path, commit=True) as temp:
        save_file(model.weights(dtype), temp, metadata=metadata)
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> DrumDiffusion:
    metadata, tensors = _open(path, with_tensors=True)
    config = config_from_metadata(metadata, path)
    model = DrumDiffusion(config)
    model.load_weights(tensors, path)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def _open(path: str | Path, with_tensors: bool) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()} if with_tensors else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise InputError(path, f"not a readable safetensors model file ({error_line(error)})") from None
    return metadata, tensors
