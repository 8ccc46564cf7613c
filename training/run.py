"""`noisepad train` and `noisepad export`: a run folder holds everything about one training.

RUN/run.json           what is trained: dataset, config, model config, init model
RUN/checkpoints/       Lightning checkpoints (last.ckpt resumes)
RUN/model.safetensors  the EMA weights as an engine model file, rewritten at each checkpoint
RUN/samples/           generated one-shots (WAV + spectrogram PNG) every `sample_every` steps
RUN/logs/              version_N/metrics.csv per session (and TensorBoard events when installed)
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path

import torch

from engine.errors import InputError, error_line
from engine.modelconfig import ModelConfig, read_config
from engine.modelfile import DrumDiffusion, load_model, save_model
from engine.outfile import replacing
from training.config import TrainConfig, load_config

RUN_FILE = "run.json"
RUN_FORMAT = "noisepad-run"
MODEL_FILE = "model.safetensors"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
CLASS_ROWS = "class_embedding.weight"


def train(data: Path, config_name: str, run: Path, steps: int | None = None, init: Path | None = None,
          progress: bool = True, minutes: float | None = None) -> Path:
    from training.dataset import read_manifest

    manifest = read_manifest(data)
    if not manifest.split("train"):
        raise InputError(data, "no one-shots to train on: every kit is held out")
    config, model_config, record = _plan(data, config_name, run, init, manifest)
    init = Path(record["init"]) if record["init"] else None
    steps = config.recipe.steps if steps is None else steps
    if steps < 1:
        raise InputError(None, f"--steps must be 1 or more, not {steps}")
    if minutes is not None and not 0 < minutes < math.inf:
        raise InputError(None, f"--minutes must be more than 0, not {minutes}")
    last = run / LAST_CHECKPOINT
    if last.exists():
        read_checkpoint(last)   # a damaged file: one clear line, not Lightning's traceback
    import lightning.pytorch as pl

    from training.module import DiffusionTraining

    pl.seed_everything(config.recipe.seed, verbose=False)
    model = _build(model_config, config_name)
    if init is not None and not last.exists():
        _initialise(model, init)
    module = DiffusionTraining(model, config.recipe)
    trainer = _trainer(run, config, steps, progress, minutes)
    _write_record(run, record)
    try:
        trainer.fit(module, datamodule=_data(data, manifest, config), ckpt_path=str(last) if last.exists() else None,
                    weights_only=True)
    except SystemExit:   # how Lightning ends on Ctrl-C or SIGTERM, once it has saved last.ckpt
        print(f"\nstopped at step {trainer.global_step}; run the same command again to resume", file=sys.stderr)
        raise KeyboardInterrupt from None
    finally:
        if trainer.is_global_zero:
            _remove_exception_checkpoints(run)
    if trainer.global_step % config.recipe.checkpoint_every:   # every rank: saving ends in a barrier
        trainer.save_checkpoint(last, weights_only=False)   # the steps since the last checkpoint, full state
    return run / MODEL_FILE


def _remove_exception_checkpoints(run: Path) -> None:
    """On an interruption Lightning writes last.ckpt and a copy named by epoch and step; only
    last.ckpt resumes, so the copy is removed (it is the size of the whole training state)."""
    for path in (run / "checkpoints").glob("epoch=*.ckpt"):
        path.unlink()


def _plan(data: Path, config_name: str, run: Path, init: Path | None, manifest):
    """The config, model config and run record: new, or those of the run being resumed."""
    config = load_config(config_name)
    if (run / RUN_FILE).is_file():
        stored = read_run(run)
        if stored["config"]["model"] != config.model:
            raise InputError(run, f"this run was started with another model section (config {stored['config_name']}); "
                                  "use a new RUN folder for a new model")
        model_config = ModelConfig.from_dict(stored["model_config"], run / RUN_FILE)
        started_from = Path(stored["init"]) if stored.get("init") else None
        if init is not None and init.resolve() != started_from:
            raise InputError(run, f"this run was started {f'from {started_from}' if started_from else 'without --init'}; "
                                  "--init only applies to a new RUN folder")
        init = started_from
    else:
        if run.exists() and (not run.is_dir() or any(run.iterdir())):
            raise InputError(run, f"exists and is not a run (no {RUN_FILE}); choose a new folder")
        init = init.resolve() if init is not None else None
        model_config = read_config(init) if init is not None else config.model_config(manifest.classes, _data_std(data, manifest))
        if model_config.conditional:
            model_config = replace(model_config, classes=tuple(manifest.classes))
        elif len(manifest.classes) > 1:
            print(f"{init} is unconditional: the model learns all {len(manifest.classes)} classes as one sound")
    _check_fit(data, manifest, model_config, config_name)
    record = {
        "format": RUN_FORMAT, "dataset": str(data.resolve()), "config_name": config_name,
        "config": {"model": config.model, "train": asdict(config.recipe)},
        "model_config": json.loads(model_config.to_json()), "init": str(init) if init else None,
    }
    return config, model_config, record


def _data_std(data: Path, manifest) -> float:
    from training.dataset import load_split

    return float(load_split(data, manifest, "train")[0].std())


def _check_fit(data: Path, manifest, model_config: ModelConfig, config_name: str) -> None:
    model_config.check(config_name)
    if manifest.length != model_config.length or manifest.sample_rate != model_config.sample_rate:
        raise InputError(data, f"one-shots are {manifest.length} samples at {manifest.sample_rate} Hz; "
                               f"config {config_name} wants {model_config.length} at {model_config.sample_rate} Hz")
    if manifest.channels != model_config.channels:
        raise InputError(data, f"one-shots have {manifest.channels} channels; the model {model_config.channels}")
    if model_config.conditional and list(model_config.classes) != list(manifest.classes):
        raise InputError(data, f"classes {', '.join(manifest.classes)} differ from the run's {', '.join(model_config.classes)}")


def _build(model_config: ModelConfig, config_name: str) -> DrumDiffusion:
    try:
        return DrumDiffusion(model_config)
    except (TypeError, ValueError, AssertionError, RuntimeError) as error:
        raise InputError(config_name, f"model.unet: UNetV0 does not accept these settings ({error_line(error)})") from None


def _write_record(run: Path, record: dict) -> None:
    run.mkdir(parents=True, exist_ok=True)
    with replacing(run / RUN_FILE, commit=True) as temp:
        Path(temp).write_text(json.dumps(record, indent=1) + "\n")


def read_checkpoint(path: Path) -> dict:
    """A Lightning checkpoint's contents, tensors memory-mapped; nothing in it is unpickled as code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:   # torch raises many types for a damaged or foreign file
        raise InputError(path, f"cannot resume from this checkpoint ({error_line(error)})") from None


def _initialise(model: DrumDiffusion, init: Path) -> None:
    """Take every tensor of the init model whose name and shape fit (a converted seed checkpoint too);
    class embeddings by class name, so a kit with other classes starts new ones fresh."""
    source = load_model(init)
    own, theirs = model.state_dict(), source.state_dict()
    matching = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape and k != CLASS_ROWS}
    if not any(k.startswith("diffusion.") for k in matching):
        raise InputError(init, "no weights fit this model (a different architecture?)")
    shared = [name for name in model.config.classes if name in source.config.classes]
    if shared and own[CLASS_ROWS].shape[1] == theirs[CLASS_ROWS].shape[1]:
        rows = own[CLASS_ROWS].clone()
        for name in shared:
            rows[model.class_index(name)] = theirs[CLASS_ROWS][source.class_index(name)]
        matching[CLASS_ROWS] = rows
    model.load_state_dict(matching, strict=False)
    new = [name for name in model.config.classes if name not in shared]
    print(f"fine-tuning from {init}: {len(matching)} of {len(own)} tensors taken"
          + (f"; classes learned from scratch: {', '.join(new)}" if new else ""))


def read_run(run: Path) -> dict:
    record = run / RUN_FILE
    if not record.is_file():
        raise InputError(run, f"not a training run (no {RUN_FILE})")
    try:
        data = json.loads(record.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(record, f"unreadable run record ({error})") from None
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise InputError(record, "not a noisepad run record")
    missing = [key for key in ("config_name", "config", "model_config") if key not in data]
    if missing or "model" not in data["config"]:
        raise InputError(record, f"run record lacks {', '.join(missing) or 'config.model'}")
    return data


def _trainer(run: Path, config: TrainConfig, steps: int, progress: bool, minutes: float | None):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint, Timer
    from lightning.pytorch.loggers import CSVLogger

    from training.artifacts import RunArtifacts

    recipe = config.recipe
    loggers = [CSVLogger(run, name="logs")]   # a version_N folder per session: resuming never overwrites
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger
        loggers.append(TensorBoardLogger(run / "logs", name="tensorboard"))
    except ImportError:
        pass
    gpu = torch.cuda.is_available()
    try:
        return pl.Trainer(
            default_root_dir=run, max_steps=steps, max_epochs=-1, accelerator="auto", devices="auto",
            precision=recipe.gpu_precision if gpu else "32-true", accumulate_grad_batches=recipe.accumulate,
            val_check_interval=recipe.validate_every * recipe.accumulate, check_val_every_n_epoch=None,
            logger=loggers, log_every_n_steps=10, enable_progress_bar=progress, enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[
                ModelCheckpoint(dirpath=run / "checkpoints", every_n_train_steps=recipe.checkpoint_every,
                                save_last=True, save_top_k=0, enable_version_counter=False, save_on_exception=True),
                RunArtifacts(run / MODEL_FILE, run / "samples", recipe.sample_every, recipe.sample_steps),
                # always on, so every checkpoint holds the run's training time and --minutes counts all sessions
                Timer(timedelta(minutes=minutes) if minutes else None),
            ],
        )
    except (ValueError, TypeError) as error:   # e.g. a precision Lightning does not know
        raise InputError(config.name, f"train: {error_line(error)}") from None


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
