"""How one-shots are sampled: plain data, importable without torch (the instrument reads it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from engine.errors import InputError
from engine.postprocess import Finish

SAMPLERS = ("dpmpp_2m", "ddim", "vsampler")
SCHEDULES = ("linear", "karras")
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Settings:
    """How a one-shot is sampled. Items of one batch share these."""

    steps: int = 16
    sampler: str = "dpmpp_2m"
    schedule: str = "linear"        # ignored by vsampler, which always steps linearly in t
    guidance: float = 1.0           # classifier-free guidance scale (1: none, half the cost); see RESULTS.md
    strength: float = 1.0           # variation: how far from its source a one-shot may go
    finish: Finish = field(default_factory=Finish)

    def check(self) -> None:
        if self.sampler not in SAMPLERS:
            raise InputError(None, f"unknown sampler '{self.sampler}' (choose from {', '.join(SAMPLERS)})")
        if self.schedule not in SCHEDULES:
            raise InputError(None, f"unknown schedule '{self.schedule}' (choose from {', '.join(SCHEDULES)})")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise InputError(None, f"steps must be a whole number from 1 to 1000, not {self.steps!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise InputError(None, f"strength must lie in [0, 1], not {self.strength}")
        if not math.isfinite(self.guidance) or self.guidance < 0:
            raise InputError(None, f"guidance must be 0 or more, not {self.guidance}")

    def describe(self) -> dict:
        return asdict(self)


def model_settings(config) -> Settings:
    """The settings a model file asks to be sampled with (a ModelConfig's `sampling`), the
    defaults for the rest."""
    settings = Settings(**config.sampling)
    settings.check()
    return settings
