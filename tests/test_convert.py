"""Importing the seed's Lightning checkpoints, built here with the seed's layout and a tiny net."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from audio_diffusion_pytorch import DiffusionModel, UNetV0, VDiffusion, VSampler

from engine.convert import convert
from engine.errors import InputError
from engine.sample_batch import Item, sample_batch, seed_noise
from engine.modelfile import load_model
from engine.settings import Settings
from tests.tiny_models import TINY_UNET

SEED_CONFIG = """\
module: main.diffusion_module
batch_size: 1
accumulate_grad_batches: 32
sampling_rate: 44100
length: 1024
channels: 2
log_every_n_steps: 1000
model:
  _target_: ${module}.Model
  lr: 1e-4
  ema_beta: 0.995
  model:
    _target_: audio_diffusion_pytorch.DiffusionModel
    net_t:
      _target_: ${module}.UNetT
    in_channels: 2
    channels: [8, 16, 16]
    factors: [1, 2, 2]
    items: [1, 1, 1]
    attentions: [0, 0, 1]
    attention_heads: 2
    attention_features: 8
    modulation_features: 32
datamodule:
  dataset:
    sample_rate: ${sampling_rate}
    path: ${oc.env:DATA_DIR}
"""


def seed_diffusion_model(seed):
    torch.manual_seed(seed)
    return DiffusionModel(net_t=UNetV0, diffusion_t=VDiffusion, sampler_t=VSampler, dim=1, **TINY_UNET).eval()


def write_seed_checkpoint(path, with_ema=True):
    """A PyTorch Lightning checkpoint as the seed's LightningModule (model + ema-pytorch EMA) saves it."""
    trained, ema = seed_diffusion_model(1), seed_diffusion_model(2)
    state = {f"model.{k}": v for k, v in trained.state_dict().items()}
    if with_ema:
        state |= {f"model_ema.ema_model.{k}": v for k, v in ema.state_dict().items()}
        state |= {f"model_ema.online_model.{k}": v for k, v in trained.state_dict().items()}
        state |= {"model_ema.initted": torch.tensor(True), "model_ema.step": torch.tensor(1234)}
    first = next(iter(trained.parameters()))
    checkpoint = {
        "epoch": 41, "global_step": 1234, "pytorch-lightning_version": "1.7.7",
        "state_dict": state,
        "optimizer_states": [{
            "state": {0: {"step": torch.tensor(1234.0), "exp_avg": torch.zeros_like(first), "exp_avg_sq": torch.zeros_like(first)}},
            "param_groups": [{"lr": 1e-4, "betas": (0.95, 0.999), "eps": 1e-6, "weight_decay": 1e-3, "params": [0]}],
        }],
        "lr_schedulers": [],
        "callbacks": {"ModelCheckpoint{'monitor': 'valid_loss', 'mode': 'min'}": {
            "best_model_score": torch.tensor(0.12), "best_model_path": "logs/ckpts/epoch=41.ckpt", "dirpath": "logs/ckpts",
        }},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 42, "completed": 41}}}},
    }
    torch.save(checkpoint, path)
    return trained, ema


@pytest.fixture
def seed_files(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(SEED_CONFIG)
    return tmp_path / "kicks.ckpt", config


def test_converted_checkpoint_samples_exactly_like_the_seed_ema_model(seed_files, tmp_path):
    ckpt, config = seed_files
    _, ema = write_seed_checkpoint(ckpt)
    out = tmp_path / "kicks.safetensors"
    convert(ckpt, config, out)

    noise = torch.stack([seed_noise(7, (2, 1024)), seed_noise(8, (2, 1024))])
    with torch.no_grad():
        reference = ema.sample(noise, num_steps=6).numpy()
    ours = sample_batch(load_model(out), [Item(7), Item(8)], Settings(sampler="vsampler", steps=6))
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_without_ema_the_trained_weights_are_used(seed_files, tmp_path):
    ckpt, config = seed_files
    trained, _ = write_seed_checkpoint(ckpt, with_ema=False)
    model = convert(ckpt, config, tmp_path / "m.safetensors")
    for name, value in trained.net.state_dict().items():
        assert torch.equal(model.net.state_dict()[name], value)


def test_convert_command_writes_a_model_file(seed_files, tmp_path):
    ckpt, config = seed_files
    write_seed_checkpoint(ckpt)
    out = tmp_path / "kicks.safetensors"
    result = subprocess.run(
        [sys.executable, "-m", "noisepad_cli", "convert", str(ckpt), "--config", str(config), "-o", str(out)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert load_model(out).config.length == 1024


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_needs_unpickling_code_is_refused_and_never_run(seed_files, tmp_path):
    ckpt, config = seed_files
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {}, "hyper_parameters": RunsCode(str(marker))}, ckpt)
    result = subprocess.run(
        [sys.executable, "-m", "noisepad_cli", "convert", str(ckpt), "--config", str(config), "-o", str(tmp_path / "m.safetensors")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(ckpt) in lines[0] and "refused" in lines[0]
    assert not marker.exists()
    assert not (tmp_path / "m.safetensors").exists()


def test_config_that_does_not_match_the_weights_is_a_clear_error(seed_files, tmp_path):
    ckpt, config = seed_files
    write_seed_checkpoint(ckpt)
    config.write_text(SEED_CONFIG.replace("channels: [8, 16, 16]", "channels: [8, 16, 32]"))
    with pytest.raises(InputError, match="weights do not fit the config"):
        convert(ckpt, config, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_unresolvable_interpolation_in_a_needed_value_is_a_clear_error(seed_files, tmp_path):
    ckpt, config = seed_files
    write_seed_checkpoint(ckpt)
    config.write_text(SEED_CONFIG.replace("length: 1024", "length: ${oc.env:LENGTH}"))
    with pytest.raises(InputError, match="'length' is an interpolation"):
        convert(ckpt, config, tmp_path / "m.safetensors")


def test_file_that_is_not_a_checkpoint_is_a_clear_error(seed_files, tmp_path):
    ckpt, config = seed_files
    ckpt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        convert(ckpt, config, tmp_path / "m.safetensors")
