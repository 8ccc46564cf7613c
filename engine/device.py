"""Which torch device and dtype to generate on."""

from __future__ import annotations

import torch

from engine.errors import InputError

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(requested: str | None = None) -> torch.device:
    """cuda if present, else mps, else cpu; an explicit request must exist."""
    if requested is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise InputError(None, f"unknown device '{requested}' (cpu, cuda, cuda:N or mps)") from None
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        raise InputError(None, f"device '{requested}' is not available on this machine")
    return device


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp16/bf16 only where they pay off: on a GPU. On the CPU they are slow, so fp32 is used."""
    if precision not in PRECISIONS:
        raise InputError(None, f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")
    if device.type == "cpu" and precision != "fp32":
        raise InputError(None, f"precision {precision} needs a GPU; use fp32 on the CPU")
    return PRECISIONS[precision]
