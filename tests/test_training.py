"""Training the `tiny` config on CPU for real: loss falls, runs resume, fine-tune and export."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
import yaml

from engine.modelfile import DrumDiffusion, load_model
from noisepad_cli import main
from tests.drum_files import write_class_folders
from training.config import load_config
from training.dataset import load_split, read_manifest
from training.objective import v_loss
from training.run import LAST_CHECKPOINT, _initialise, read_checkpoint


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    source = write_class_folders(root / "hits", per_class=4)
    assert main(["dataset", str(source), "-o", str(root / "data"), "--length", "4096"]) == 0
    return root / "data"


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "tiny"
    # 45: the last 5 steps fall after the last checkpoint (every 10) and must still be saved
    assert main(["train", str(dataset), "--config", "tiny", "-o", str(run), "--steps", "45", "--quiet"]) == 0
    return run


def last_checkpoint(run) -> dict:
    return read_checkpoint(run / LAST_CHECKPOINT)


def fixed_noise_loss(model: DrumDiffusion, dataset) -> float:
    audio, labels = map(torch.from_numpy, load_split(dataset, read_manifest(dataset), "train"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return sum(v_loss(model, audio, labels, 0.0, generator).item() for _ in range(8)) / 8


def test_a_few_steps_of_tiny_lower_the_loss(dataset, trained):
    model = load_model(trained / "model.safetensors")
    torch.manual_seed(0)
    untrained = DrumDiffusion(model.config).eval()   # the same data scale, so the losses compare
    before, after = fixed_noise_loss(untrained, dataset), fixed_noise_loss(model, dataset)
    assert after < 0.8 * before, f"loss {before:.3f} -> {after:.3f}"


def test_a_run_holds_checkpoints_samples_and_logs(trained):
    checkpoint = last_checkpoint(trained)
    assert checkpoint["global_step"] == 45
    record = json.loads((trained / "run.json").read_text())
    assert record["model_config"]["classes"] == ["kick", "snare", "hat"]
    samples = sorted(p.name for p in (trained / "samples" / "step0000040").iterdir())
    assert samples == ["hat.png", "hat.wav", "kick.png", "kick.wav", "snare.png", "snare.wav"]
    metrics = (trained / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    assert "train_loss" in metrics[0] and "val_loss" in metrics[0] and len(metrics) > 4


def test_running_the_same_command_again_resumes(dataset, trained):
    first_samples = trained / "samples" / "step0000020"
    stamp = first_samples.stat().st_mtime_ns
    assert main(["train", str(dataset), "--config", "tiny", "-o", str(trained), "--steps", "50", "--quiet"]) == 0
    checkpoint = last_checkpoint(trained)
    assert checkpoint["global_step"] == 50
    assert (trained / "samples" / "step0000050").is_dir()
    assert first_samples.stat().st_mtime_ns == stamp, "the resumed run started over"
    assert (trained / "logs" / "version_0" / "metrics.csv").is_file(), "resuming kept the first session's log"
    assert "train_loss" in (trained / "logs" / "version_1" / "metrics.csv").read_text()


def test_export_writes_an_engine_model_file(trained, tmp_path, capsys):
    assert main(["export", str(trained), "-o", str(tmp_path / "full.safetensors")]) == 0
    assert main(["export", str(trained), "-o", str(tmp_path / "half.safetensors"), "--half"]) == 0
    full, half = load_model(tmp_path / "full.safetensors"), load_model(tmp_path / "half.safetensors")
    assert full.config.classes == ("kick", "snare", "hat")
    assert os.path.getsize(tmp_path / "half.safetensors") < 0.6 * os.path.getsize(tmp_path / "full.safetensors")
    for (name, a), (_, b) in zip(full.state_dict().items(), half.state_dict().items()):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3, msg=name)
    assert main(["generate", "--model", str(tmp_path / "full.safetensors"), "--class", "kick", "-n", "1",
                 "-o", str(tmp_path), "--steps", "2", "--quiet"]) == 0


def test_fine_tuning_starts_from_the_given_model(dataset, trained, tmp_path):
    init = tmp_path / "init.safetensors"
    assert main(["export", str(trained), "-o", str(init)]) == 0
    fresh = DrumDiffusion(load_model(init).config)
    _initialise(fresh, init)
    for (name, a), (_, b) in zip(fresh.state_dict().items(), load_model(init).state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)

    run = tmp_path / "fine"
    assert main(["train", str(dataset), "--config", "tiny", "-o", str(run), "--steps", "5", "--init", str(init), "--quiet"]) == 0
    assert json.loads((run / "run.json").read_text())["init"] == str(init)
    tuned = load_model(run / "model.safetensors")
    assert fixed_noise_loss(tuned, dataset) < 1.2 * fixed_noise_loss(load_model(init), dataset)


def training_seconds(run) -> tuple[int, float]:
    checkpoint = last_checkpoint(run)
    return checkpoint["global_step"], checkpoint["callbacks"]["Timer"]["time_elapsed"]["train"]


def test_minutes_bound_the_training_time_of_all_sessions_together(dataset, tmp_path, capsys):
    run = tmp_path / "timed"
    command = ["train", str(dataset), "--config", "tiny", "-o", str(run), "--steps", "100000", "--quiet"]
    assert main(command + ["--minutes", "0.05"]) == 0
    steps, seconds = training_seconds(run)
    assert 0 < steps < 100000 and seconds >= 3.0, (steps, seconds)   # stopped by its time, not its steps
    assert (run / "model.safetensors").is_file(), "the steps since the last checkpoint were saved"

    assert main(command + ["--minutes", "0.05"]) == 0   # its time is spent: nothing more to train
    assert training_seconds(run)[0] == steps
    assert main(command + ["--minutes", "0.1"]) == 0    # three more seconds
    more_steps, more_seconds = training_seconds(run)
    assert more_steps > steps and more_seconds >= 6.0

    assert main(command + ["--minutes", "0"]) == 2
    assert "--minutes must be more than 0" in capsys.readouterr().err


def test_fine_tuning_matches_class_embeddings_by_name(trained, tmp_path):
    init = tmp_path / "init.safetensors"
    assert main(["export", str(trained), "-o", str(init)]) == 0
    source = load_model(init)   # classes kick, snare, hat
    model = DrumDiffusion(replace(source.config, classes=("snare", "tom", "kick")))
    untouched = model.class_embedding.weight[1].clone()
    _initialise(model, init)
    rows, source_rows = model.class_embedding.weight, source.class_embedding.weight
    torch.testing.assert_close(rows[0], source_rows[1])   # snare
    torch.testing.assert_close(rows[2], source_rows[0])   # kick
    torch.testing.assert_close(rows[1], untouched)        # tom is new: left as initialised


def test_a_resumed_run_trains_at_its_new_learning_rate(dataset, tmp_path, capsys):
    config, run = tmp_path / "mine.yaml", tmp_path / "run"
    tiny = load_config_text("tiny")
    config.write_text(tiny)
    assert main(["train", str(dataset), "--config", str(config), "-o", str(run), "--steps", "4", "--quiet"]) == 0
    config.write_text(tiny.replace("learning_rate: 0.001", "learning_rate: 0.0002\n  weight_decay: 0.05"))
    assert main(["train", str(dataset), "--config", str(config), "-o", str(run), "--steps", "6", "--quiet"]) == 0
    group = last_checkpoint(run)["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.0002) and group["weight_decay"] == pytest.approx(0.05)
    assert json.loads((run / "run.json").read_text())["config"]["train"]["learning_rate"] == pytest.approx(0.0002)

    assert main(["train", str(dataset), "--config", str(config), "-o", str(run), "--init", str(run / "model.safetensors")]) == 2
    assert "was started without --init; --init only applies to a new RUN folder" in capsys.readouterr().err


def test_a_config_that_does_not_fit_the_data_length(dataset, tmp_path, capsys):
    code = main(["train", str(dataset), "--config", "default", "-o", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "4096 samples" in err and "32768" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_a_folder_that_is_not_a_run(dataset, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("mine")
    assert main(["export", str(tmp_path / "other"), "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert main(["train", str(dataset), "--config", "tiny", "-o", str(tmp_path / "other"), "--quiet"]) == 2
    assert "is not a run" in capsys.readouterr().err
    assert (tmp_path / "other" / "file.txt").read_text() == "mine"


def test_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--config", "tiny", "-o", str(tmp_path / "run")]) == 2
    assert "not a dataset" in capsys.readouterr().err


@pytest.mark.parametrize("setting, problem", [
    ("sample_every: 0", "train.sample_every: must lie in [1,"), ("batch_size: 2.5", "train.batch_size: must be a whole number"),
    ("gpu_precision: fast", "train.gpu_precision: one of"), ("learning_rate: high", "train.learning_rate: must be a number"),
    ("speed: 3", "train.speed: unknown setting"),
])
def test_a_config_with_a_bad_setting(dataset, tmp_path, capsys, setting, problem):
    config = tmp_path / "mine.yaml"
    config.write_text(load_config_text("tiny").split("train:")[0] + f"train:\n  {setting}\n")
    assert main(["train", str(dataset), "--config", str(config), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{config}: {problem}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def load_config_text(name: str) -> str:
    from training.config import config_path
    return config_path(name).read_text()


def test_an_unknown_config(dataset, tmp_path, capsys):
    assert main(["train", str(dataset), "--config", "huge", "-o", str(tmp_path / "run")]) == 2
    assert "no such training config" in capsys.readouterr().err


def test_sigterm_saves_the_run_and_the_same_command_resumes(dataset, tmp_path):
    run = tmp_path / "stopped"
    command = [sys.executable, "-m", "noisepad_cli", "train", str(dataset), "--config", "tiny", "-o", str(run),
               "--steps", "100000", "--quiet"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.ckpt"], "no stray copies of the state"
    stopped_at = last_checkpoint(run)["global_step"]
    assert stopped_at >= 10
    assert main(["train", str(dataset), "--config", "tiny", "-o", str(run), "--steps", str(stopped_at + 3), "--quiet"]) == 0
    assert last_checkpoint(run)["global_step"] == stopped_at + 3


def test_a_damaged_checkpoint_is_refused_in_one_line(dataset, trained, tmp_path, capsys):
    run = tmp_path / "damaged"
    shutil.copytree(trained, run)
    (run / LAST_CHECKPOINT).write_bytes(b"not a checkpoint")
    assert main(["train", str(dataset), "--config", "tiny", "-o", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "last.ckpt: cannot resume from this checkpoint" in err and len(err.strip().splitlines()) == 1


def test_a_config_on_a_base_changes_only_what_it_names_and_its_rate_decays(dataset, tmp_path):
    config, run = tmp_path / "decaying.yaml", tmp_path / "run"
    config.write_text("base: tiny\ntrain:\n  warmup_steps: 2\n  decay_steps: 8\n  final_lr_fraction: 0.1\n")
    assert main(["train", str(dataset), "--config", str(config), "-o", str(run), "--steps", "12", "--quiet"]) == 0
    recorded = json.loads((run / "run.json").read_text())["config"]
    tiny = yaml.safe_load(load_config_text("tiny"))
    assert recorded["model"] == tiny["model"] and recorded["train"]["batch_size"] == tiny["train"]["batch_size"]
    group = last_checkpoint(run)["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.1 * tiny["train"]["learning_rate"])


def test_a_base_beside_the_config_comes_before_a_built_in_one(tmp_path):
    (tmp_path / "tiny.yaml").write_text("base: tiny\ntrain:\n  learning_rate: 0.123\n")
    (tmp_path / "variant.yaml").write_text("base: tiny\ntrain:\n  noise_shift: 0.5\n")
    variant = load_config(str(tmp_path / "variant.yaml"))
    built_in = load_config("tiny")
    assert variant.recipe.learning_rate == 0.123 and variant.recipe.noise_shift == 0.5
    assert variant.model == built_in.model and variant.recipe.batch_size == built_in.recipe.batch_size


def test_shifted_noise_levels_move_training_towards_more_or_less_noise():
    from training.objective import noise_levels
    generator = torch.Generator().manual_seed(0)
    plain, more, less = (noise_levels(20000, shift, generator).median().item() for shift in (1.0, 3.0, 1 / 3))
    assert abs(plain - 0.5) < 0.02 and more > 0.75 and less < 0.25


def test_augmented_one_shots_keep_their_shape_and_are_quieter_or_repitched(dataset):
    from training.config import Recipe
    from training.module import augment
    audio, labels = map(torch.from_numpy, load_split(dataset, read_manifest(dataset), "train"))
    torch.manual_seed(0)
    quieter = augment(audio, labels, Recipe(augment_gain_db=12))[0]
    peaks, new_peaks = audio.abs().amax(dim=(1, 2)), quieter.abs().amax(dim=(1, 2))
    assert quieter.shape == audio.shape and torch.all(new_peaks <= peaks + 1e-6) and torch.any(new_peaks < 0.7 * peaks)
    spectrum = lambda x: torch.fft.rfft(x.mean(1), dim=-1).abs()
    shifted = augment(audio, labels, Recipe(augment_pitch=3))[0]
    assert shifted.shape == audio.shape and not torch.allclose(spectrum(shifted), spectrum(audio), rtol=0.05)


@pytest.mark.parametrize("settings", ["min_snr_gamma: 5", "noise_shift: 0.5", "augment_gain_db: 6\n  augment_pitch: 1"])
def test_recipe_options_train(dataset, tmp_path, settings):
    config, run = tmp_path / "option.yaml", tmp_path / "run"
    config.write_text(f"base: tiny\ntrain:\n  {settings}\n")
    assert main(["train", str(dataset), "--config", str(config), "-o", str(run), "--steps", "3", "--quiet"]) == 0
    assert last_checkpoint(run)["global_step"] == 3
    assert all(torch.isfinite(w).all() for w in load_model(run / "model.safetensors").state_dict().values())


def test_the_ema_runs_its_own_layers_not_the_trained_models():
    from tests.tiny_models import tiny_model
    from training.config import Recipe
    from training.module import DiffusionTraining

    model = tiny_model(("kick",)).float()
    training = DiffusionTraining(model, Recipe())
    x, t = torch.randn(1, 2, 1024), torch.full((1,), 0.5)
    conditioning = model.conditioning(torch.zeros(1, dtype=torch.long))
    before = training.ema_model.velocity(x, t, **conditioning).detach()
    with torch.no_grad():
        for parameter in model.net.parameters():
            parameter.add_(0.05)   # the model trains on; the EMA has not been updated
    assert not torch.allclose(model.velocity(x, t, **conditioning), before)
    torch.testing.assert_close(training.ema_model.velocity(x, t, **conditioning).detach(), before)
