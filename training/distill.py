"""`noisepad distill`: progressive distillation (Salimans & Ho, 2022) for v-diffusion.

Each round halves the sampling steps: a student, starting as a copy of its teacher, learns to
land in one DDIM step where the teacher lands in two; then it teaches the next round. What it
learns from are the first teacher's own one-shots, made once at the settings its file asks for,
so no dataset is needed. Guidance the teacher samples with is folded into the student, which
samples without it. The student's file records how it is sampled (DDIM, linear in t, its
steps), so presets and `generate` use that by default.

The run folder holds the teacher's one-shots (.npy) and the state (student, optimizer, round,
step: tensors and numbers only, loaded with weights_only). SIGTERM or Ctrl-C saves it; the
same command resumes. A flat loop, no Lightning: one model, one optimizer, one loss.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.errors import InputError
from engine.sample_batch import Item, sample_batch
from engine.modelfile import DrumDiffusion, copy_model, load_model, save_model
from engine.sampling import alpha_sigma, linear_ts, predict_x0, sample_ddim
from engine.settings import model_settings

STATE = "distill.pt"
SAMPLES = "teacher_samples.npy"
LABELS = "teacher_labels.npy"
SETUP = "distill.json"


@dataclass(frozen=True)
class DistillSetup:
    teacher: str
    steps: int = 4                 # the student's steps at the end
    iterations: int = 2000         # optimizer steps per round
    batch_size: int = 4
    learning_rate: float = 5e-5
    samples_per_class: int = 16    # teacher one-shots learnt from, per class
    seed: int = 0

    def rounds(self, teacher_steps: int) -> list[int]:
        """The student's steps in each round: half the teacher's, down to `steps`."""
        if self.steps < 1 or teacher_steps % self.steps or teacher_steps <= self.steps \
                or (teacher_steps // self.steps) & (teacher_steps // self.steps - 1):
            raise InputError(None, f"--steps {self.steps} must be the teacher's {teacher_steps} steps "
                                   "halved one or more times")
        return [teacher_steps >> r for r in range(1, int(math.log2(teacher_steps // self.steps)) + 1)]


def distill(setup: DistillSetup, run: Path, output: Path, device: str = "cpu", minutes: float | None = None,
            half: bool = False) -> Path | None:
    """Train (or resume) the run; write the student to `output` when its last round is done
    (`half`: its weights stored in fp16). Returns the output path, or None when stopped early
    (the run is saved)."""
    teacher = load_model(setup.teacher, device).float()
    settings = model_settings(teacher.config)
    rounds = setup.rounds(settings.steps)
    run.mkdir(parents=True, exist_ok=True)
    _check_setup(run, setup)
    samples, labels = _teacher_samples(run, teacher, setup, device)
    state = _load_state(run, device)
    student = _student(teacher, state)
    teachers = _teacher_of_round(teacher, state)
    optimizer = torch.optim.Adam(student.parameters(), lr=setup.learning_rate)
    if state and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    round_index, step = (int(state["round"]), int(state["step"])) if state else (0, 0)
    stop = _stop_requested()
    deadline = None if minutes is None else time.monotonic() + minutes * 60
    generator = torch.Generator().manual_seed(setup.seed + 7919 * round_index + step)
    while round_index < len(rounds):
        while step < setup.iterations:
            if stop["now"] or (deadline is not None and time.monotonic() > deadline):
                _save_state(run, student, optimizer, round_index, step, teachers)
                return None
            batch = torch.randint(len(samples), (setup.batch_size,), generator=generator)
            loss = distillation_loss(student, teachers, samples[batch].to(device), labels[batch].to(device),
                                     rounds[round_index], settings.guidance, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        round_index, step = round_index + 1, 0
        teachers = copy_model(student).eval().requires_grad_(False)   # the next round's teacher
        optimizer = torch.optim.Adam(student.parameters(), lr=setup.learning_rate)
        _save_state(run, student, optimizer, round_index, step, teachers)
    sampling = {"steps": rounds[-1], "sampler": "ddim", "schedule": "linear", "guidance": 1.0}
    final = DrumDiffusion(replace(teacher.config, sampling=sampling))
    final.load_state_dict(student.state_dict())
    return save_model(final, output, torch.float16 if half else torch.float32)


def distillation_loss(student: DrumDiffusion, teacher: DrumDiffusion, x: torch.Tensor, labels: torch.Tensor,
                      student_steps: int, guidance: float, generator: torch.Generator) -> torch.Tensor:
    """One DDIM step of the student from t to t_next against two of the teacher's (via the
    midpoint), as a prediction of the data: truncated-SNR weighted squared error."""
    ts = linear_ts(student_steps)
    i = int(torch.randint(student_steps, (1,), generator=generator))
    t, t_next = float(ts[i]), float(ts[i + 1])
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    alpha, sigma = (float(v) for v in alpha_sigma(t))
    z = alpha * x + sigma * noise
    class_ids = labels if teacher.config.conditional else None
    with torch.no_grad():
        guided = teacher.conditioning(class_ids, guidance)
        z_next = sample_ddim(_velocity(teacher, guided), z, torch.tensor([t, (t + t_next) / 2, t_next]))
        alpha_next, sigma_next = (float(v) for v in alpha_sigma(t_next))
        ratio = sigma_next / sigma
        target = (z_next - ratio * z) / (alpha_next - ratio * alpha)
    predicted = predict_x0(_velocity(student, student.conditioning(class_ids, 1.0)), z, t)
    weight = max(1.0, (alpha / sigma) ** 2) if sigma > 0 else 1.0
    return weight * torch.mean((predicted - target) ** 2)


def _velocity(model: DrumDiffusion, conditioning: dict):
    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        return model.velocity(x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype), **conditioning)

    return velocity


def _teacher_samples(run: Path, teacher: DrumDiffusion, setup: DistillSetup, device: str):
    """The first teacher's one-shots (in the net's units), made once and kept in the run."""
    if not (run / SAMPLES).is_file():
        classes = list(teacher.config.classes) or [None]
        items = [Item(setup.seed + 1000 * c + i, None if name is None else teacher.class_index(name))
                 for c, name in enumerate(classes) for i in range(setup.samples_per_class)]
        settings = model_settings(teacher.config)
        audio = np.concatenate([sample_batch(teacher, items[i:i + 8], settings) for i in range(0, len(items), 8)])
        np.save(run / SAMPLES, audio * teacher.config.data_scale)
        np.save(run / LABELS, np.array([item.class_index or 0 for item in items]))
    samples = torch.from_numpy(np.load(run / SAMPLES, allow_pickle=False)).float()
    return samples, torch.from_numpy(np.load(run / LABELS, allow_pickle=False)).long()


def _check_setup(run: Path, setup: DistillSetup) -> None:
    path = run / SETUP
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != asdict(setup):
            raise InputError(run, f"holds a distillation with other settings ({saved}); use another folder")
    else:
        path.write_text(json.dumps(asdict(setup), indent=1) + "\n")


def _load_state(run: Path, device: str) -> dict | None:
    path = run / STATE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # a corrupt or foreign file: refuse rather than start over silently
        raise InputError(path, f"cannot read the distillation state ({str(error).splitlines()[0]})") from None


def _student(teacher: DrumDiffusion, state: dict | None) -> DrumDiffusion:
    student = copy_model(teacher).train().requires_grad_(True)
    if state:
        student.load_state_dict(state["student"])
    return student


def _teacher_of_round(teacher: DrumDiffusion, state: dict | None) -> DrumDiffusion:
    if state and "teacher" in state:
        round_teacher = copy_model(teacher)
        round_teacher.load_state_dict(state["teacher"])
        return round_teacher.eval().requires_grad_(False)
    return teacher.eval().requires_grad_(False)


def _save_state(run: Path, student, optimizer, round_index: int, step: int, teacher) -> None:
    state = {"student": student.state_dict(), "optimizer": optimizer.state_dict(), "round": round_index,
             "step": step, "teacher": teacher.state_dict()}
    temp = run / (STATE + ".tmp")
    torch.save(state, temp)
    temp.replace(run / STATE)


def _stop_requested() -> dict:
    """A flag SIGTERM and Ctrl-C set, so the loop saves before it ends."""
    flag = {"now": False}

    def handler(signum, frame) -> None:
        flag["now"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag
