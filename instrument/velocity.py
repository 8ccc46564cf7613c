"""Velocity curves: MIDI velocity 0-127 to an amplitude, precomputed as a 128-entry table."""

from __future__ import annotations

import numpy as np

# name -> exponent applied to velocity/127; "fixed" ignores velocity
CURVES = {"linear": 1.0, "soft": 0.5, "hard": 2.0, "fixed": 0.0}


def velocity_table(curve: str | float) -> np.ndarray:
    exponent = CURVES[curve] if isinstance(curve, str) else float(curve)
    table = (np.arange(128) / 127.0) ** exponent
    table[0] = 0.0 if exponent > 0 else 1.0
    return table.astype(np.float32)
