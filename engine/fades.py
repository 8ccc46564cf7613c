"""Fades: every fade in noisepad is a raised cosine, and these are it."""

from __future__ import annotations

import numpy as np


def fade_in(frames: int) -> np.ndarray:
    """From exactly 0 (the first sample) towards 1, over `frames`; reversed, a fade-out that
    ends on exactly 0."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(frames) / frames)


def fade_out(frames: int) -> np.ndarray:
    """From exactly 1 (flat at first, so an attack stays intact) towards 0, over `frames`."""
    return np.cos(0.5 * np.pi * np.arange(frames) / frames) ** 2
