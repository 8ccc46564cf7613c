"""noisepad distill: progressive distillation's target, its run folder, and the student's file."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from engine.modelconfig import read_config
from engine.modelfile import DrumDiffusion, load_model, save_model
from engine.sampling import alpha_sigma, linear_ts, sample_ddim
from noisepad_cli import main
from instrument.preset import load_preset
from tests.tiny_models import tiny_model, write_kit_preset


@pytest.fixture
def teacher(tmp_path):
    """A tiny class-conditional model that asks to be sampled in 2 DDIM steps."""
    model = tiny_model(("kick", "snare"))
    sampled = DrumDiffusion(replace(model.config, sampling={"steps": 2, "sampler": "ddim"}))
    sampled.load_state_dict(model.state_dict())
    return save_model(sampled, tmp_path / "teacher.safetensors")


def test_the_target_makes_one_ddim_step_land_where_two_of_the_teachers_do():
    from training.distill import distillation_loss

    torch.manual_seed(0)
    model = tiny_model(("kick",)).float()
    x, labels = torch.randn(2, 2, 1024) * 0.3, torch.zeros(2, dtype=torch.long)
    captured = {}

    class Recording(torch.nn.Module):   # the real student, its prediction recorded
        def __init__(self):
            super().__init__()
            self.inner = model
            self.config = model.config

        def conditioning(self, *args):
            return model.conditioning(*args)

        def velocity(self, z, t, **conditioning):
            captured["z"], captured["t"] = z, float(t[0])
            return model.velocity(z, t, **conditioning)

    generator = torch.Generator().manual_seed(1)
    loss = distillation_loss(Recording(), model, x, labels, 2, 1.0, generator).detach()
    z, t = captured["z"], captured["t"]
    t_next = 0.5 if t == 1.0 else 0.0
    velocity = lambda x_t, s: model.velocity(x_t, torch.full((2,), s), **model.conditioning(labels, 1.0))
    two = sample_ddim(velocity, z, torch.tensor([t, (t + t_next) / 2, t_next]))
    # the student's own DDIM step from z with the loss's zero-error prediction lands on `two`
    alpha, sigma = (float(v) for v in alpha_sigma(t))
    alpha_next, sigma_next = (float(v) for v in alpha_sigma(t_next))
    with torch.no_grad():
        predicted = alpha * z - sigma * velocity(z, t)
        two = two.detach()
    weight = max(1.0, (alpha / sigma) ** 2)
    ratio = sigma_next / sigma
    target = (two - ratio * z) / (alpha_next - ratio * alpha)
    assert math.isclose(float(loss), weight * float(torch.mean((predicted - target) ** 2)), rel_tol=1e-4)
    landed = alpha_next * target + sigma_next * (z - alpha * target) / sigma
    torch.testing.assert_close(landed, two, atol=1e-4, rtol=1e-4)


def test_distill_writes_a_student_that_presets_sample_as_its_file_says(teacher, tmp_path, capsys):
    student = tmp_path / "student.safetensors"
    args = ["distill", str(teacher), "-o", str(student), "--steps", "1", "--iterations", "3",
            "--samples-per-class", "2", "--device", "cpu", "--half"]
    assert main(args) == 0
    assert 0.4 < student.stat().st_size / teacher.stat().st_size < 0.6   # fp16 weights
    assert read_config(student).sampling == {"steps": 1, "sampler": "ddim", "schedule": "linear", "guidance": 1.0}
    weights = [(a - b).abs().max() for a, b in zip(load_model(teacher).state_dict().values(),
                                                    load_model(student).state_dict().values())]
    assert max(weights) > 0                                # it trained
    preset = load_preset(write_kit_preset(tmp_path / "kit.yaml", student, {"kick": "notes: [36], class: kick"}))
    assert (preset.pads[0].spec.settings.steps, preset.pads[0].spec.settings.sampler) == (1, "ddim")
    preset = load_preset(write_kit_preset(tmp_path / "kit.yaml", student, {"kick": "notes: [36], class: kick, steps: 3"}))
    assert preset.pads[0].spec.settings.steps == 3         # a preset still says what it wants
    assert "samples in 1 DDIM steps" in capsys.readouterr().out


def test_a_student_lands_in_one_step_nearer_the_teachers_two_than_the_teachers_own_one(teacher, tmp_path):
    student_file = tmp_path / "student.safetensors"
    assert main(["distill", str(teacher), "-o", str(student_file), "--steps", "1", "--iterations", "100",
                 "--lr", "1e-3", "--samples-per-class", "4", "--device", "cpu"]) == 0
    teacher_model, student = load_model(teacher), load_model(student_file)
    noise = torch.randn(8, 2, 1024, generator=torch.Generator().manual_seed(99))
    labels = torch.tensor([0, 1] * 4)

    def sampled(model, steps):
        conditioning = model.conditioning(labels, 1.0)
        velocity = lambda x, t: model.velocity(x, torch.full((len(x),), t), **conditioning)
        with torch.no_grad():
            return sample_ddim(velocity, noise, linear_ts(steps))

    target = sampled(teacher_model, 2)
    teachers_own = (sampled(teacher_model, 1) - target).square().mean().sqrt()
    students = (sampled(student, 1) - target).square().mean().sqrt()
    assert students < 0.5 * teachers_own


def test_a_stopped_distillation_resumes_and_refuses_other_settings(teacher, tmp_path, capsys):
    student = tmp_path / "student.safetensors"
    base = ["distill", str(teacher), "-o", str(student), "--steps", "1", "--samples-per-class", "2", "--device", "cpu"]
    assert main(base + ["--iterations", "4", "--minutes", "0"]) == 0
    assert "run the same command to go on" in capsys.readouterr().out and not student.exists()
    state = torch.load(tmp_path / "student.run" / "distill.pt", weights_only=True)
    assert (state["round"], state["step"]) == (0, 0)
    assert main(base + ["--iterations", "4"]) == 0 and student.exists()
    assert main(base + ["--iterations", "5"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_steps_that_do_not_halve_the_teachers_are_refused(teacher, tmp_path, capsys):
    assert main(["distill", str(teacher), "-o", str(tmp_path / "s.safetensors"), "--steps", "3"]) == 2
    assert "halved one or more times" in capsys.readouterr().err


def test_a_model_file_with_unknown_sampling_settings_is_refused(tmp_path, capsys):
    model = tiny_model(("kick",))
    bad = DrumDiffusion(replace(model.config, sampling={"stepz": 4}))
    bad.load_state_dict(model.state_dict())
    save_model(bad, tmp_path / "bad.safetensors")
    assert main(["generate", "--model", str(tmp_path / "bad.safetensors"), "--class", "kick", "-n", "1",
                 "-o", str(tmp_path / "out")]) == 2
    assert "unknown sampling settings stepz" in capsys.readouterr().err
