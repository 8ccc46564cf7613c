"""`noisepad train` and `noisepad export`: a run folder holds everything about one training.

RUN/run.json       what was trained: dataset, config, model config, init model
RUN/checkpoints/   Lightning checkpoints (last.ckpt resumes)
RUN/model.safetensors  the EMA weights as an engine model file, rewritten at each checkpoint
RUN/samples/       generated one-shots (WAV + spectrogram PNG) every `sample_every` steps
RUN/logs/          metrics.csv (and TensorBoard events when tensorboard is installed)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from engine.errors import InputError
from engine.modelconfig import ModelConfig, read_config
from engine.modelfile import DrumDiffusion, load_model, save_model
from training.artifacts import MODEL_FILE
from training.config import TrainConfig, config_from_dict, load_config
from training.dataset import read_manifest

RUN_FILE = "run.json"
RUN_FORMAT = "noisepad-run"


def train(data: Path, config_name: str, run: Path, steps: int | None = None, init: Path | None = None,
          progress: bool = True) -> Path:
    manifest = read_manifest(data)
    config, model_config = _start_or_resume(data, config_name, run, init, manifest)
    import lightning.pytorch as pl

    from training.module import DiffusionTraining

    pl.seed_everything(config.recipe.seed, verbose=False)
    model = DrumDiffusion(model_config)
    if init is not None and not (run / "checkpoints" / "last.ckpt").exists():
        _initialise(model, init)
    module = DiffusionTraining(model, config.recipe)
    trainer = _trainer(run, config, steps or config.recipe.steps, progress)
    last = run / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=_data(data, manifest, config), ckpt_path=str(last) if last.exists() else None)
    return run / MODEL_FILE


def _start_or_resume(data: Path, config_name: str, run: Path, init: Path | None, manifest):
    record = run / RUN_FILE
    if record.is_file():
        stored = read_run(run)
        config = config_from_dict(stored["config"], record)
        if config_name not in (stored["config_name"], str(record)) and load_config(config_name).model != config.model:
            raise InputError(run, f"this run was started with config {stored['config_name']}; use another RUN folder for a new one")
        return config, ModelConfig.from_dict(stored["model_config"], record)
    if run.exists() and any(run.iterdir()):
        raise InputError(run, f"exists and is not a run (no {RUN_FILE}); choose a new folder")
    config = load_config(config_name)
    model_config = _init_config(init) if init is not None else config.model_config(manifest.classes)
    if model_config.conditional:
        model_config = ModelConfig(**{**asdict(model_config), "classes": tuple(manifest.classes)})
    model_config.check(config_name)
    if manifest.length != model_config.length or manifest.sample_rate != model_config.sample_rate:
        raise InputError(data, f"one-shots are {manifest.length} samples at {manifest.sample_rate} Hz; "
                               f"config {config_name} wants {model_config.length} at {model_config.sample_rate} Hz")
    run.mkdir(parents=True, exist_ok=True)
    record_data = {
        "format": RUN_FORMAT, "dataset": str(data.resolve()), "config_name": config_name,
        "config": {"model": config.model, "train": asdict(config.recipe)},
        "model_config": json.loads(model_config.to_json()), "init": str(init) if init else None,
    }
    temp = record.with_suffix(".tmp")
    temp.write_text(json.dumps(record_data, indent=1) + "\n")
    os.replace(temp, record)
    return config, model_config


def _init_config(init: Path) -> ModelConfig:
    """Fine-tuning keeps the init model's architecture (conditional or not); classes come from the new data."""
    return read_config(init)


def _initialise(model: DrumDiffusion, init: Path) -> None:
    source = load_model(init)
    own = model.state_dict()
    matching = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith("diffusion.") for k in matching):
        raise InputError(init, "no weights fit this model (a different architecture?)")
    model.load_state_dict(matching, strict=False)
    print(f"fine-tuning from {init}: {len(matching)} of {len(own)} tensors taken")


def read_run(run: Path) -> dict:
    record = run / RUN_FILE
    if not record.is_file():
        raise InputError(run, f"not a training run (no {RUN_FILE})")
    try:
        data = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(record, f"unreadable run record ({error})") from None
    if data.get("format") != RUN_FORMAT:
        raise InputError(record, "not a noisepad run record")
    return data


def _trainer(run: Path, config: TrainConfig, steps: int, progress: bool):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from training.artifacts import RunArtifacts

    recipe = config.recipe
    loggers = [CSVLogger(run, name="logs", version="")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401
        loggers.append(TensorBoardLogger(run, name="logs", version="tensorboard"))
    except ImportError:
        pass
    gpu = torch.cuda.is_available()
    return pl.Trainer(
        default_root_dir=run, max_steps=steps, max_epochs=-1, accelerator="auto", devices="auto",
        precision=recipe.gpu_precision if gpu else "32-true", accumulate_grad_batches=recipe.accumulate,
        val_check_interval=recipe.validate_every * recipe.accumulate, check_val_every_n_epoch=None,
        logger=loggers, log_every_n_steps=10, enable_progress_bar=progress, enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[
            ModelCheckpoint(dirpath=run / "checkpoints", every_n_train_steps=recipe.checkpoint_every, save_last=True,
                            save_top_k=1, monitor=None, save_on_train_epoch_end=True),
            RunArtifacts(run, recipe.sample_every, recipe.sample_steps),
        ],
    )


def _data(folder: Path, manifest, config: TrainConfig):
    from training.datamodule import DrumData

    return DrumData(folder, manifest, config.recipe.batch_size)


def export(run: Path, output: Path, half: bool = False) -> ModelConfig:
    read_run(run)
    source = run / MODEL_FILE
    if not source.is_file():
        raise InputError(run, "run has no model yet (it writes one at its first checkpoint)")
    model = load_model(source)
    save_model(model, output, dtype=torch.float16 if half else torch.float32)
    return model.config
